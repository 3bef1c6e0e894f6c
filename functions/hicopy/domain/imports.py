"""Post-import automation: plan copy jobs by policy from what a HealthImaging import job produced (read by
``hicopy.domain.import_output``), and report it.

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
from hicopy.domain.import_output import ImportResult, read_import_result
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
from hicopy.errors import InvalidRequest, ManifestNotReady, OrchestratorError


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
