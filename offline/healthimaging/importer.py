"""DICOM import jobs: how imported instances land in image sets, and the job output written to S3.

Placement (devguide "understanding import jobs" / "understanding image sets"): the instances of each Series of the
import go
- into the existing primary image set of that Study/Series when Patient/Study/Series elements agree: a new version
  (``imageSetVersion`` > 1, workflow status UPDATED, event ``Image Set Updated``); re-imported SOP Instances replace
  the stored ones;
- into a new primary image set when the Series has none yet (version 1, CREATED, ``Image Set Created``);
- into a new NON-primary image set when the elements conflict with the existing primary (``isPrimary`` false).
Emulator choice: one image set per Series of the import (a primary image set is one series), and one version per
image set per job.

Output, under ``<outputS3Uri><datastoreId>-DicomImport-<jobId>/`` (the job's ``outputS3Uri`` in GetDICOMImportJob and
in events): ``job-output-manifest.json`` (``jobSummary`` with ``imageSetsSummary[]`` entries ``imageSetId``,
``imageSetVersion``, ``isPrimary``, ``numberOfMatchedSOPInstances``), ``SUCCESS/success.ndjson``,
``FAILURE/failure.ndjson`` and ``WARNING/warning.ndjson``. Emulator choice: an ndjson file is written only when it
has lines. A FAILED job imports nothing and still writes its manifest.

Order: image set events, then (``manifest_delay`` = 0) the S3 writes and ``Import Job Completed``/``Failed``; with
``manifest_delay`` > 0 the job event comes first and the writes happen ``manifest_delay`` clock seconds later (a
timer the emulator's background ticker runs, or the next API call / ``tick()``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from offline.healthimaging import errors
from offline.healthimaging.dicom import Metadata, level_conflict, merge_into, select, series_map, study_uid_of
from offline.healthimaging.events import emit_image_set_event, import_job_event
from offline.healthimaging.seeding import SeededImageSet, SeedSpec, check_metadata
from offline.healthimaging.store import ACTIVE, ImageSet, ImportJob, Store, Version, WriteEffect

ImportSource = SeedSpec | SeededImageSet | Mapping[str, Any]
Writer = Callable[[str, bytes], None]
SERVER_ERRORS = ("InternalServerException", "InternalFailure", "ServiceUnavailableException")
DEFAULT_ROLE = "arn:aws:iam::{account}:role/HealthImagingImportRole"


@dataclass
class ImportPlan:
    """What an import job does when it runs."""

    image_sets: Sequence[ImportSource] = field(default_factory=lambda: [SeedSpec(series=1, instances_per_series=2)])
    failures: Sequence[tuple[str, str, str]] = ()  # (inputFile, exceptionType, message)
    warnings: Sequence[tuple[str, str, str]] = ()  # (SOP Instance UID or inputFile, warning type, message)
    write_manifest: Writer | None = None  # None: the emulator's S3 writer (boto3 put_object)
    manifest_delay: float = 0.0
    job_status: str = "COMPLETED"
    message: str | None = None


def job_folder(output_s3_uri: str, datastore_id: str, job_id: str) -> str:
    prefix = output_s3_uri if output_s3_uri.endswith("/") else output_s3_uri + "/"
    return f"{prefix}{datastore_id}-DicomImport-{job_id}/"


def new_job(
    store: Store,
    now: float,
    datastore_id: str,
    *,
    input_s3_uri: str,
    output_s3_uri: str,
    job_name: str | None = None,
    data_access_role_arn: str | None = None,
    client_token: str | None = None,
) -> ImportJob:
    store.active_datastore(datastore_id)
    job_id = store.new_id()
    while job_id in store.jobs:
        job_id = store.new_id()
    job = ImportJob(
        job_id=job_id,
        datastore_id=datastore_id,
        job_name=job_name or f"import-{job_id[:8]}",
        status="SUBMITTED",
        data_access_role_arn=data_access_role_arn or DEFAULT_ROLE.format(account=store.account),
        input_s3_uri=input_s3_uri,
        output_s3_uri=job_folder(output_s3_uri, datastore_id, job_id),
        submitted_at=now,
        client_token=client_token,
    )
    store.jobs[job_id] = job
    return job


def _metadata_of(store: Store, source: ImportSource) -> Metadata:
    if isinstance(source, SeedSpec):
        return source.build(store)
    if isinstance(source, SeededImageSet):
        return dict(source.metadata)
    check_metadata(source)
    return dict(source)


def _split_by_series(metadata: Metadata) -> list[tuple[str, Metadata]]:
    return [(uid, select(metadata, {uid: list(s.get("Instances", {}))})) for uid, s in series_map(metadata).items()]


@dataclass
class _Touched:
    image_set: ImageSet
    version: Version
    created: bool
    sop_uids: list[str] = field(default_factory=list)


def run_import(store: Store, job: ImportJob, plan: ImportPlan, now: float) -> None:
    """Import ``plan`` into the job's data store, queue its events and S3 writes, and finish the job."""
    if plan.job_status not in ("COMPLETED", "FAILED"):
        raise ValueError("job_status must be COMPLETED or FAILED")
    parts: list[tuple[str, Metadata]] = []
    if plan.job_status == "COMPLETED":
        for source in plan.image_sets:
            parts.extend(_split_by_series(_metadata_of(store, source)))
        for series_uid, part in parts:  # refuse before changing anything
            target = store.primary_for(job.datastore_id, study_uid_of(part), series_uid)
            if target is not None and target.locked:
                raise errors.conflict(f"Primary image set {target.image_set_id} of series {series_uid} is LOCKED")

    touched: dict[str, _Touched] = {}
    file_image_set: dict[str, _Touched] = {}
    key_prefix = urlsplit(job.input_s3_uri).path.lstrip("/")
    if key_prefix and not key_prefix.endswith("/"):
        key_prefix += "/"
    for series_uid, part in parts:
        entry = _place(store, job.datastore_id, series_uid, part, touched, now)
        for sop_uid in series_map(part)[series_uid].get("Instances", {}):
            entry.sop_uids.append(sop_uid)
            file_image_set[f"{key_prefix}{sop_uid}.dcm"] = entry
    for entry in touched.values():
        emit_image_set_event(store, entry.image_set, entry.version)

    warned: dict[str, tuple[str, str]] = {}
    for file_or_sop, warning_type, message in plan.warnings:
        input_file = file_or_sop if file_or_sop in file_image_set else f"{key_prefix}{file_or_sop}.dcm"
        if input_file not in file_image_set:
            raise ValueError(f"warning for {file_or_sop!r}, which this import does not contain")
        warned[input_file] = (warning_type, message)

    success_lines, warning_lines = [], []
    for input_file, entry in file_image_set.items():
        response: dict[str, Any] = {"imageSetId": entry.image_set.image_set_id, "isPrimary": entry.version.is_primary}
        if input_file in warned:
            warning_type, message = warned[input_file]
            response = {
                "imageSetId": entry.image_set.image_set_id,
                "imageSetVersion": entry.version.version_id,
                "isPrimary": entry.version.is_primary,
                "warnings": [{"warning_reason_code": 45330, "type": warning_type, "message": message}],
            }
            warning_lines.append({"inputFile": input_file, "importResponse": response})
        else:
            success_lines.append({"inputFile": input_file, "importResponse": response})
    failure_lines = [{"inputFile": f, "exception": {"exceptionType": t, "message": m}} for f, t, m in plan.failures]
    server_errors = sum(1 for _, t, _ in plan.failures if t in SERVER_ERRORS)
    folder = job.output_s3_uri
    manifest = {
        "jobSummary": {
            "jobId": job.job_id,
            "datastoreId": job.datastore_id,
            "inputS3Uri": job.input_s3_uri,
            "outputS3Uri": folder,
            "successOutputS3Uri": f"{folder}SUCCESS/",
            "failureOutputS3Uri": f"{folder}FAILURE/",
            "warningsOutputS3Uri": f"{folder}WARNING/",
            "numberOfScannedFiles": len(file_image_set) + len(failure_lines),
            "numberOfImportedFiles": len(file_image_set),
            "numberOfFilesWithCustomerError": len(failure_lines) - server_errors,
            "numberOfFilesWithServerError": server_errors,
            "numberOfGeneratedImageSets": len(touched),
            "imageSetsSummary": [
                {
                    "imageSetId": entry.image_set.image_set_id,
                    "imageSetVersion": entry.version.version_id,
                    "isPrimary": entry.version.is_primary,
                    "numberOfMatchedSOPInstances": len(entry.sop_uids),
                }
                for entry in touched.values()
            ],
        }
    }
    writes = [
        WriteEffect(f"{folder}job-output-manifest.json", json.dumps(manifest, indent=2).encode(), plan.write_manifest)
    ]
    for name, lines in (
        ("SUCCESS/success.ndjson", success_lines),
        ("WARNING/warning.ndjson", warning_lines),
        ("FAILURE/failure.ndjson", failure_lines),
    ):
        if lines:
            body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
            writes.append(WriteEffect(f"{folder}{name}", body, plan.write_manifest))

    job.status, job.ended_at = plan.job_status, now
    if plan.job_status == "FAILED":
        job.message = errors.sanitize_message(plan.message or "Import job failed")
    event = import_job_event(store, job)
    if plan.manifest_delay > 0:
        store.emit(event)

        def write_later(_: float) -> None:
            for effect in writes:
                store.emit(effect)

        store.at(now + plan.manifest_delay, write_later)
    else:
        for effect in writes:
            store.emit(effect)
        store.emit(event)


def _place(
    store: Store, datastore_id: str, series_uid: str, part: Metadata, touched: dict[str, _Touched], now: float
) -> _Touched:
    primary = store.primary_for(datastore_id, study_uid_of(part), series_uid)
    if primary is not None and level_conflict(part, primary.latest.metadata, [series_uid]) is None:
        entry = touched.get(primary.image_set_id)
        if entry is not None:  # already changed by this job: same version
            entry.version.metadata = merge_into(entry.version.metadata, part, keep_destination_levels=False)
            return entry
        merged = merge_into(primary.latest.metadata, part, keep_destination_levels=False)
        version = store.new_version(primary, merged, now=now, state=ACTIVE, status="UPDATED")
        entry = _Touched(primary, version, created=False)
    else:
        created = store.new_image_set(
            datastore_id, part, now=now, is_primary=primary is None, state=ACTIVE, status="CREATED"
        )
        entry = _Touched(created, created.latest, created=True)
    touched[entry.image_set.image_set_id] = entry
    return entry
