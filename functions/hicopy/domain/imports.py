"""Post-import automation: read what a HealthImaging import job produced and plan copy jobs by policy.

Import output (facts §2) under the job's ``outputS3Uri``: ``job-output-manifest.json`` (``jobSummary`` with
``imageSetsSummary``), ``SUCCESS/success.ndjson``, ``WARNING/warning.ndjson`` and ``FAILURE/failure.ndjson``.
Readers here are tolerant: unknown fields are ignored, a missing ndjson file means "no records", and ndjson lines
may use the Python spellings ``True``/``False``/``None`` that the documentation's examples show.

Policies:
- ``none``: plan nothing (failures are still reported).
- ``consolidate``: fold every non-primary image set into the primary image set of the same Series (found with
  SearchImageSets), one merge job per Series, ``force`` as configured; a Series that has no primary image set yet
  gets a ``promoteToPrimary`` copy instead. The non-primary source can be deleted after its copy succeeded.
- ``promote``: a ``promoteToPrimary`` copy of every non-primary image set none of whose Series is in a primary
  image set yet; one that conflicts with a primary is not copied (the copy would end ``COPY_FAILED``):
  ``Import Job Planned`` lists it under ``needsResolution`` with the conflicting attribute names
  (``hicopy.domain.conflicts``; resolve with ``UpdateImageSetMetadata``, then promote).
Job IDs are derived from the import job and image set IDs, so a redelivered event plans the same IDs (and the
consumer starts no second execution for them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from hicopy.clock import Clock
from hicopy.contract import (
    DATASTORE_ID_PATTERN,
    HEALTHIMAGING_IMPORT_DETAIL_TYPES,
    IMPORT_FAILURES,
    IMPORT_PLANNED,
    Policy,
)
from hicopy.domain.conflicts import NeedsResolution, conflicting_attributes
from hicopy.domain.events import NeedsResolutionOut
from hicopy.domain.import_reports import MAX_LISTED_JOBS, failures_report, planned_report
from hicopy.domain.intake import TRIGGER_ATTRIBUTE
from hicopy.domain.ports import (
    EventPublisherPort,
    ImportJobsPort,
    ImportMark,
    ImportMarkerPort,
    ImportOutputPort,
    MessageSenderPort,
    PlannedCopy,
    PlannerImagingPort,
    PlanRecordPort,
)
from hicopy.errors import ImportOutputInvalid, InvalidRequest, ManifestNotReady, OrchestratorError

MANIFEST = "job-output-manifest.json"


@dataclass
class ImportedImageSet:
    image_set_id: str
    is_primary: bool | None = None
    version: int | None = None
    matched_instances: int | None = None


@dataclass(frozen=True)
class FileFailure:
    input_file: str
    exception_type: str
    message: str


@dataclass
class ImportResult:
    job_id: str
    datastore_id: str
    status: str
    message: str | None
    output_uri: str
    image_sets: list[ImportedImageSet] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)
    warnings: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    needs_resolution: list[NeedsResolution] = field(default_factory=list)  # what plan_jobs refused to promote
    failure_report_uri: str | None = None  # where failure.ndjson was read

    @property
    def non_primary(self) -> list[ImportedImageSet]:
        return [s for s in self.image_sets if s.is_primary is False]


# --- reading the import output ----------------------------------------------------------------------------------
_PY_LITERALS = re.compile(r"(?<![\w\"])(True|False|None)(?![\w\"])")


def loads_lenient(text: str) -> Any:
    """JSON, also accepting the Python literals ``True``/``False``/``None`` (as in the docs' ndjson examples)."""
    try:
        return json.loads(text)
    except ValueError:
        fixed = _PY_LITERALS.sub(lambda m: {"True": "true", "False": "false", "None": "null"}[m.group(1)], text)
        return json.loads(fixed)


def parse_ndjson(data: bytes | None) -> list[dict[str, Any]]:
    if not data:
        return []
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            value = loads_lenient(line)
            if isinstance(value, dict):
                records.append(value)
    return records


def _join(prefix: str, name: str) -> str:
    return prefix if prefix.endswith(name) else prefix.rstrip("/") + "/" + name


def _image_set_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("imageSetId") or obj.get("imagesetId")
    return str(value) if value else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def read_import_result(job: dict[str, Any], output: ImportOutputPort) -> ImportResult:
    """Read the manifest and the per-file results of an import job (``job`` = GetDICOMImportJob's jobProperties).

    Output that is not in the documented shape raises ``ImportOutputInvalid`` (never a bare KeyError/TypeError).
    """
    try:
        return _read_import_result(job, output)
    except (KeyError, TypeError, AttributeError, ValueError, UnicodeDecodeError) as exc:
        raise ImportOutputInvalid(
            f"import job {job.get('jobId')!s:.40}: output under {job.get('outputS3Uri')!s:.200} is not in the "
            f"documented shape ({type(exc).__name__})"
        ) from exc


def _read_import_result(job: dict[str, Any], output: ImportOutputPort) -> ImportResult:
    out_uri = str(job["outputS3Uri"])
    result = ImportResult(
        job_id=str(job["jobId"]),
        datastore_id=str(job["datastoreId"]),
        status=str(job.get("jobStatus", "")),
        message=job.get("message"),
        output_uri=out_uri,
    )
    raw = output.read(_join(out_uri, MANIFEST))
    if raw is None:
        if result.status == "FAILED":
            return result  # a failed job may write nothing
        raise ManifestNotReady(f"{_join(out_uri, MANIFEST)} is not there yet")
    summary = (loads_lenient(raw.decode("utf-8")) or {}).get("jobSummary") or {}
    result.summary = {k: v for k, v in summary.items() if k.startswith("numberOf")}
    by_id: dict[str, ImportedImageSet] = {}

    def note(obj: dict[str, Any]) -> None:
        image_set_id = _image_set_id(obj)
        if not image_set_id:
            return
        entry = by_id.setdefault(image_set_id, ImportedImageSet(image_set_id))
        primary = _bool(obj.get("isPrimary"))
        if primary is not None:
            entry.is_primary = primary if entry.is_primary is None else (entry.is_primary and primary)
        version = obj.get("imageSetVersion")
        if version is not None and re.fullmatch(r"[0-9]{1,20}", str(version)):  # ASCII digits only
            entry.version = max(entry.version or 0, int(version))
        if "numberOfMatchedSOPInstances" in obj:
            entry.matched_instances = int(obj["numberOfMatchedSOPInstances"])

    for item in summary.get("imageSetsSummary") or []:
        if isinstance(item, dict):
            note(item)
    success = summary.get("successOutputS3Uri") or _join(out_uri, "SUCCESS/")
    warning = summary.get("warningsOutputS3Uri") or _join(out_uri, "WARNING/")
    failure = summary.get("failureOutputS3Uri") or _join(out_uri, "FAILURE/")
    for record in parse_ndjson(output.read(_join(success, "success.ndjson"))):
        note(record.get("importResponse") or {})
    warnings = parse_ndjson(output.read(_join(warning, "warning.ndjson")))
    for record in warnings:
        note(record.get("importResponse") or {})
    result.warnings = len(warnings)
    result.failure_report_uri = _join(failure, "failure.ndjson")
    for record in parse_ndjson(output.read(result.failure_report_uri)):
        exc = record.get("exception") or {}
        result.failures.append(
            FileFailure(
                str(record.get("inputFile", "")), str(exc.get("exceptionType", "")), str(exc.get("message", ""))
            )
        )
    result.image_sets = list(by_id.values())
    return result


# --- planning ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedJob:
    job: dict[str, Any]  # a copy job (design §3.1)
    trigger: dict[str, Any]  # {type: import, importJobId, ...}
    source_version: str | None = None  # the source's version the import produced, when its output says

    def record(self, import_job_id: str, imaging: PlannerImagingPort) -> PlannedCopy:
        """What the workflow checks before it deletes the source (the message itself is never trusted for that)."""
        job, delete = self.job, bool(self.trigger.get("deleteSourceAfterCopy"))
        version = self.source_version
        if delete and version is None:
            version = imaging.version_of(job["datastoreId"], job["source"]["imageSetId"])
        return PlannedCopy(
            job_id=job["jobId"],
            datastore_id=job["datastoreId"],
            import_job_id=import_job_id,
            source_image_set_id=job["source"]["imageSetId"],
            source_version_id=version,
            destination_image_set_id=(job.get("destination") or {}).get("imageSetId"),
            whole_copy="series" not in job and "instances" not in job,
            delete_source=delete,
        )


def planned_job_id(import_job_id: str, image_set_id: str, suffix: str = "") -> str:
    return f"imp-{import_job_id[:32]}-{image_set_id}{suffix}"[:80]


def plan_jobs(
    result: ImportResult,
    imaging: PlannerImagingPort,
    *,
    policy: Policy,
    force: bool = False,
    delete_after: bool = False,
) -> list[PlannedJob]:
    if policy == "none" or result.status != "COMPLETED":
        return []
    for entry in result.image_sets:
        if entry.is_primary is None:
            entry.is_primary = imaging.is_primary(result.datastore_id, entry.image_set_id)
    jobs: list[PlannedJob] = []
    for entry in result.non_primary:
        base = {"datastoreId": result.datastore_id, "source": {"imageSetId": entry.image_set_id}}
        version = str(entry.version) if entry.version is not None else None
        trigger = {"type": "import", "importJobId": result.job_id, "policy": policy, "sourceIsPrimary": False}
        if policy == "promote":
            blocked = _conflicts(result.datastore_id, entry.image_set_id, imaging)
            if blocked is not None:  # the copy would end COPY_FAILED: resolve first (see hicopy.domain.conflicts)
                result.needs_resolution.append(blocked)
                continue
            jobs.append(
                PlannedJob(
                    {**base, "jobId": planned_job_id(result.job_id, entry.image_set_id), "promoteToPrimary": True},
                    {**trigger, "deleteSourceAfterCopy": delete_after},
                    version,
                )
            )
            continue
        series = imaging.series_of(result.datastore_id, entry.image_set_id)
        targets = [(uid, imaging.primary_for_series(result.datastore_id, uid, entry.image_set_id)) for uid in series]
        whole = len(series) == 1
        for n, (series_uid, primary) in enumerate(targets):
            suffix = "" if whole else f"-s{n + 1}"
            job: dict[str, Any] = {**base, "jobId": planned_job_id(result.job_id, entry.image_set_id, suffix)}
            if not whole:
                job["series"] = [series_uid]
            if primary is None:
                job["promoteToPrimary"] = True
                action = "promote"
            else:
                job["destination"] = {"imageSetId": primary}
                job["force"] = force
                action = "merge"
            # Delete the source only when one job copies all of it: never after a partial (per-series) copy.
            delete = delete_after and whole
            jobs.append(PlannedJob(job, {**trigger, "action": action, "deleteSourceAfterCopy": delete}, version))
    return jobs


def _conflicts(datastore_id: str, image_set_id: str, imaging: PlannerImagingPort) -> NeedsResolution | None:
    """The primary image set one of this non-primary set's Series is already in, and the attributes they disagree
    on; None when no primary holds any of its Series (a promote can go ahead)."""
    for series_uid in imaging.series_of(datastore_id, image_set_id):
        primary = imaging.primary_for_series(datastore_id, series_uid, image_set_id)
        if primary is not None:
            mine, theirs = imaging.metadata_of(datastore_id, image_set_id), imaging.metadata_of(datastore_id, primary)
            return NeedsResolution(image_set_id, primary, series_uid, conflicting_attributes(mine, theirs, series_uid))
    return None


def failures_detail(result: ImportResult, *, event_status: str, details: bool = False) -> dict[str, Any]:
    return failures_report(
        import_job_id=result.job_id,
        datastore_id=result.datastore_id,
        job_status=result.status or event_status,
        message=result.message,
        failures=[(f.input_file, f.exception_type, f.message) for f in result.failures],
        failure_report_uri=result.failure_report_uri,
        output_uri=result.output_uri,
        summary={k: int(v) for k, v in result.summary.items() if isinstance(v, int)},
        details=details,
    )


def planned_detail(result: ImportResult, mark: ImportMark, *, policy: Policy) -> dict[str, Any]:
    return planned_report(
        import_job_id=result.job_id,
        datastore_id=result.datastore_id,
        policy=policy,
        image_sets=len(result.image_sets),
        primary=sum(1 for s in result.image_sets if s.is_primary),
        non_primary=len(result.non_primary),
        job_ids=list(mark.job_ids),
        job_count=mark.jobs,
        failed_files=len(result.failures),
        warnings=result.warnings,
        needs_resolution=[
            NeedsResolutionOut(
                imageSetId=n.image_set_id,
                primaryImageSetId=n.primary_image_set_id,
                conflictingAttributes=n.conflicting_attributes,
            )
            for n in result.needs_resolution
        ],
    )


# --- the planner's one entry point ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannerSettings:
    allowed_datastores: frozenset[str]
    policy: Policy = "none"
    force: bool = False
    delete_after: bool = False
    manifest_wait_seconds: float = 120.0
    report_details: bool = False  # list failed files' names and the service's messages in Import Job Failures


@dataclass
class PlannerOutcome:
    import_job_id: str
    duplicate: bool = False
    planned: list[str] = field(default_factory=list)
    failures_reported: int = 0


def handle_import_event(
    event: dict[str, Any],
    settings: PlannerSettings,
    *,
    jobs_api: ImportJobsPort,
    output: ImportOutputPort,
    imaging: PlannerImagingPort,
    queue: MessageSenderPort,
    publisher: EventPublisherPort,
    marker: ImportMarkerPort,
    clock: Clock,
    plans: PlanRecordPort | None = None,
) -> PlannerOutcome:
    """Plan copy jobs for one ``Import Job Completed``/``Failed`` event; report failed files; never twice.

    Each job's plan is recorded (``plans``) before the job is queued: the workflow deletes a source only for a job
    recorded so. Without ``plans`` nothing is recorded, and so no source is ever deleted."""
    detail_type = str(event.get("detail-type", ""))
    detail = event.get("detail") or {}
    datastore_id, import_job_id = str(detail.get("datastoreId", "")), str(detail.get("jobId", ""))
    is_import_event = detail_type in HEALTHIMAGING_IMPORT_DETAIL_TYPES and re.match(DATASTORE_ID_PATTERN, datastore_id)
    if not is_import_event or not import_job_id:
        raise InvalidRequest(
            f"not a HealthImaging import job event: {detail_type!r} {datastore_id!r} {import_job_id!r}"
        )
    if datastore_id not in settings.allowed_datastores:
        raise InvalidRequest(f"data store {datastore_id} is not one this orchestrator is configured for")
    outcome = PlannerOutcome(import_job_id)
    mark = marker.get(datastore_id, import_job_id, clock.now())
    if mark is not None and mark.reported:
        outcome.duplicate = True
        return outcome
    job = jobs_api.get_import_job(datastore_id, import_job_id)
    job.setdefault("outputS3Uri", detail.get("outputS3Uri"))
    result = _read_with_patience(job, output, clock, settings.manifest_wait_seconds)
    if mark is None:
        # The plan first: once its jobs are queued and recorded, no report (however large, whatever the bus does)
        # can lose it, and a retry only reports.
        planned = plan_jobs(
            result, imaging, policy=settings.policy, force=settings.force, delete_after=settings.delete_after
        )
        for p in planned:
            if plans is not None:
                plans.record(p.record(result.job_id, imaging), clock.now())
            queue.send(
                json.dumps(p.job, separators=(",", ":")),
                {TRIGGER_ATTRIBUTE: json.dumps(p.trigger, separators=(",", ":"))},
            )
        ids = [p.job["jobId"] for p in planned]
        mark = ImportMark(status=result.status, jobs=len(ids), job_ids=tuple(ids[:MAX_LISTED_JOBS]))
        marker.mark(datastore_id, import_job_id, clock.now(), mark)
        outcome.planned = ids
    else:
        outcome.planned = list(mark.job_ids)
    _report(result, mark, settings, publisher, event_status=str(detail.get("jobStatus", "")))
    outcome.failures_reported = len(result.failures)
    marker.mark(datastore_id, import_job_id, clock.now(), ImportMark(**{**vars(mark), "reported": True}))
    return outcome


def _report(
    result: ImportResult,
    mark: ImportMark,
    settings: PlannerSettings,
    publisher: EventPublisherPort,
    *,
    event_status: str,
) -> None:
    """Publish both reports, each tried even if the other fails; then the first failure is raised (the planner's
    retry publishes them again, without planning again)."""
    reports: list[tuple[str, dict[str, Any]]] = []
    if result.failures or result.status == "FAILED":
        reports.append(
            (IMPORT_FAILURES, failures_detail(result, event_status=event_status, details=settings.report_details))
        )
    if result.status == "COMPLETED":
        reports.append((IMPORT_PLANNED, planned_detail(result, mark, policy=settings.policy)))
    failed: list[OrchestratorError] = []
    for detail_type, report in reports:
        try:
            publisher.publish(detail_type, report)
        except OrchestratorError as exc:
            failed.append(exc)
    if failed:
        raise failed[0]


def _read_with_patience(job: dict[str, Any], output: ImportOutputPort, clock: Clock, budget: float) -> ImportResult:
    """The manifest can appear after the event: retry with doubling waits for up to ``budget`` seconds."""
    waited, delay = 0.0, 2.0
    while True:
        try:
            return read_import_result(job, output)
        except ManifestNotReady:
            if waited >= budget:
                raise
            step = min(delay, budget - waited)
            clock.sleep(step)
            waited += step
            delay *= 2
