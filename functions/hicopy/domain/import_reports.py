"""The import planner's two reports, ``Import Job Failures`` and ``Import Job Planned``: bounded so that each fits
PutEvents (256 KB an entry) whatever the import, and free of file names and service messages by default.

An import's ``failure.ndjson`` names every failed file by its S3 key, and keys often carry patient names or record
numbers; the reasons are the service's messages. By default the report gives counts (per exception type) and the
S3 location of ``failure.ndjson``, where the complete list stays; the ``importReportDetails`` configuration adds the
first failed files and the import job's message, each bounded.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from hicopy.contract import Policy
from hicopy.domain.events import FileFailureOut, ImportFailuresDetail, ImportPlannedDetail, NeedsResolutionOut, dump

MAX_LISTED_FAILURES = 100
MAX_LISTED_JOBS = 100
MAX_FAILURE_TYPES = 20
MAX_TEXT = 1024  # characters of one file name or message
MAX_REPORT_BYTES = 128 * 1024  # of a report's detail: half of PutEvents' entry limit, for the envelope and margin
OTHER = "Other"
_EXCEPTION_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")


def exception_type(value: str) -> str:
    """A failure's exception type as a counter key: a service token (``ValidationException``), else ``Other``."""
    return value if _EXCEPTION_TYPE.fullmatch(value) else OTHER


def count_by_type(types: list[str]) -> dict[str, int]:
    counts = Counter(exception_type(t) for t in types)
    top = [name for name, _ in counts.most_common() if name != OTHER][:MAX_FAILURE_TYPES]
    out = {name: counts[name] for name in sorted(top)}
    rest = sum(counts.values()) - sum(out.values())
    if rest:
        out[OTHER] = rest
    return out


def failures_report(
    *,
    import_job_id: str,
    datastore_id: str,
    job_status: str,
    message: str | None,
    failures: list[tuple[str, str, str]],  # (input file, exception type, message), as failure.ndjson has them
    failure_report_uri: str | None,
    output_uri: str | None,
    summary: dict[str, int],
    details: bool,
) -> dict[str, Any]:
    """Detail of ``Import Job Failures``."""
    detail = ImportFailuresDetail(
        importJobId=import_job_id,
        datastoreId=datastore_id,
        jobStatus=job_status,
        failedFiles=len(failures),
        failuresByType=count_by_type([t for _, t, _ in failures]),
        failureReportS3Uri=failure_report_uri if failures else None,
        outputS3Uri=output_uri,
        summary=summary,
    )
    if not details:
        return dump(detail)
    detail = detail.model_copy(update={"message": message[:MAX_TEXT] if message else None})
    listed: list[FileFailureOut] = []
    size = len(json.dumps(dump(detail)))
    for name, kind, text in failures[:MAX_LISTED_FAILURES]:
        entry = FileFailureOut(inputFile=name[:MAX_TEXT], exceptionType=kind[:MAX_TEXT], message=text[:MAX_TEXT])
        # Measured as the event will carry it (json.dumps escapes non-ASCII: up to 12 bytes a character).
        size += len(json.dumps(dump(entry))) + 1
        if size > MAX_REPORT_BYTES:
            break
        listed.append(entry)
    return dump(detail.model_copy(update={"failures": listed, "failuresTruncated": len(listed) < len(failures)}))


def planned_report(
    *,
    import_job_id: str,
    datastore_id: str,
    policy: Policy,
    image_sets: int,
    primary: int,
    non_primary: int,
    job_ids: list[str],
    job_count: int,
    failed_files: int,
    warnings: int,
    needs_resolution: Sequence[NeedsResolutionOut] = (),
) -> dict[str, Any]:
    """Detail of ``Import Job Planned``: counts, the first ``MAX_LISTED_JOBS`` job IDs, and the first
    ``MAX_LISTED_JOBS`` image sets that need a manual resolution (attribute names only)."""
    listed = job_ids[:MAX_LISTED_JOBS]
    return dump(
        ImportPlannedDetail(
            importJobId=import_job_id,
            datastoreId=datastore_id,
            policy=policy,
            imageSets=image_sets,
            primaryImageSets=primary,
            nonPrimaryImageSets=non_primary,
            jobsPlanned=listed,
            jobsPlannedCount=job_count,
            jobsPlannedTruncated=len(listed) < job_count,
            failedFiles=failed_files,
            warnings=warnings,
            needsResolution=list(needs_resolution[:MAX_LISTED_JOBS]),
        )
    )
