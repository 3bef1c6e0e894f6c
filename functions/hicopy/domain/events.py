"""Completion events (design §3.2): exactly one per accepted job, on the custom bus.

Their detail-types are in ``hicopy.contract`` (``SUCCEEDED``, ``FAILED``, ``REJECTED``; the import planner's
``IMPORT_PLANNED`` and ``IMPORT_FAILURES``). The models below are the contract of their ``detail``;
``schemas/*.json`` are generated from them (``make schemas``) and every event the code emits is validated against
those files in the tests.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hicopy.contract import Policy

# 2.0: the terminal events were renamed ``Copy Job Succeeded`` / ``Copy Job Failed`` (1.0: ``Image Set Copy
# Succeeded`` / ``Image Set Copy Failed``, the latter spelled like HealthImaging's own event); details unchanged.
SCHEMA_VERSION: Literal["2.0"] = "2.0"

ORIGINAL_BODY_LIMIT = 8_192  # characters of a rejected message echoed in the event; the DLQ keeps all of it


class _Detail(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSetRefOut(_Detail):
    imageSetId: str | None = None
    versionId: str | None = None


class Reason(_Detail):
    code: str = Field(description="Stable reason code, e.g. CopyFailed, ImageSetNotFound, InvalidRequest, JobRejected")
    message: str = Field(description="Human-readable reason; for CopyFailed, the service's GetImageSet message")


class TriggerOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["sqs", "event", "import"]


class ChunkOut(_Detail):
    index: int
    destinationVersionId: str
    statusChecks: int


class SourceDeletionOut(_Detail):
    status: Literal["DELETED", "REFUSED", "FAILED"] = Field(
        description="DELETED; REFUSED: not deleted, because the import planner did not plan it or the destination "
        "does not hold every instance of the source (message says which); FAILED: DeleteImageSet failed"
    )
    message: str | None = None


class CopyOutcomeDetail(_Detail):
    """Detail of ``Copy Job Succeeded`` and ``Copy Job Failed``."""

    schemaVersion: Literal["2.0"] = SCHEMA_VERSION
    jobId: str
    correlationId: str | None = None
    datastoreId: str
    status: Literal["SUCCEEDED", "FAILED"]
    source: ImageSetRefOut
    destination: ImageSetRefOut | None = Field(
        default=None, description="The image set and the version this copy produced (absent if none was created)"
    )
    reason: Reason | None = None
    chunks: int = Field(description="Number of CopyImageSet calls the job was split into")
    chunksCompleted: int
    failedChunk: int | None = Field(default=None, description="0-based index of the chunk that failed")
    completedChunks: list[ChunkOut] = Field(default_factory=list)
    statusChecks: int
    promoteToPrimary: bool = False
    force: bool = False
    sourceDeletion: SourceDeletionOut | None = Field(
        default=None, description="Post-import delete-after: whether the source image set was deleted after the copy"
    )
    trigger: TriggerOut
    receivedAt: str
    submittedAt: str | None = None
    completedAt: str
    executionArn: str | None = None


class RejectedDetail(_Detail):
    """Detail of ``Copy Job Rejected``: the message was not a valid job; it is kept in the dead-letter queue."""

    schemaVersion: Literal["2.0"] = SCHEMA_VERSION
    jobId: str | None = None
    correlationId: str | None = None
    datastoreId: str | None = None
    status: Literal["REJECTED"] = "REJECTED"
    reason: Reason
    trigger: TriggerOut
    originalBody: str = Field(description=f"The message as received (first {ORIGINAL_BODY_LIMIT} characters)")
    originalBodyEncoding: Literal["utf-8", "base64"] = "utf-8"
    originalBodyTruncated: bool = False
    originalBodyBytes: int
    existingExecutionArn: str | None = Field(
        default=None, description="JobIdReused: the execution that already holds this job ID (for a different job)"
    )
    receivedAt: str
    completedAt: str


class FileFailureOut(_Detail):
    inputFile: str
    exceptionType: str
    message: str


class ImportFailuresDetail(_Detail):
    """Detail of ``Import Job Failures``: an import failed, or some of its files did (from ``failure.ndjson``).

    Counts only by default: file names (S3 keys, which often carry patient names) and the service's messages are
    listed only with the ``importReportDetails`` configuration, bounded so that the event always fits PutEvents."""

    schemaVersion: Literal["2.0"] = SCHEMA_VERSION
    importJobId: str
    datastoreId: str
    jobStatus: str
    failedFiles: int
    failuresByType: dict[str, int] = Field(
        default_factory=dict, description="Failed files per exception type (at most 20 types; the rest as 'Other')"
    )
    failureReportS3Uri: str | None = Field(
        default=None, description="Where failure.ndjson is: the complete list of failed files and their reasons"
    )
    outputS3Uri: str | None = None
    summary: dict[str, int] = Field(default_factory=dict, description="numberOf* counters of the job summary")
    message: str | None = Field(
        default=None, description="importReportDetails only: the import job's own message (first 1,024 characters)"
    )
    failures: list[FileFailureOut] | None = Field(
        default=None, description="importReportDetails only: the first failed files (at most 100, each bounded)"
    )
    failuresTruncated: bool | None = Field(
        default=None, description="importReportDetails only: true when failures lists fewer than failedFiles"
    )


class NeedsResolutionOut(_Detail):
    imageSetId: str
    primaryImageSetId: str
    conflictingAttributes: list[str] = Field(description="<Level>.<DICOM keyword>, e.g. Patient.PatientName")


class ImportPlannedDetail(_Detail):
    """Detail of ``Import Job Planned``: what the post-import policy did with an import's image sets."""

    schemaVersion: Literal["2.0"] = SCHEMA_VERSION
    importJobId: str
    datastoreId: str
    policy: Policy
    imageSets: int
    primaryImageSets: int
    nonPrimaryImageSets: int
    jobsPlanned: list[str] = Field(description="The planned jobs' IDs (the first 100)")
    jobsPlannedCount: int = Field(description="How many copy jobs were planned")
    jobsPlannedTruncated: bool = Field(description="True when jobsPlanned lists fewer than jobsPlannedCount")
    failedFiles: int
    warnings: int
    needsResolution: list[NeedsResolutionOut] = Field(
        default_factory=list,
        description="non-primary image sets the policy did not promote: they conflict with the primary image set "
        "holding their Series (resolve with UpdateImageSetMetadata, then promote); attribute names only",
    )


def excerpt(body: str | bytes) -> tuple[str, Literal["utf-8", "base64"], bool, int]:
    """A bounded, JSON-safe excerpt of a message body: (text, encoding, truncated, original size in bytes)."""
    raw = body.encode("utf-8", errors="surrogatepass") if isinstance(body, str) else body
    try:
        text = raw.decode("utf-8")
        encoding: Literal["utf-8", "base64"] = "utf-8"
    except UnicodeDecodeError:
        text = base64.b64encode(raw).decode("ascii")
        encoding = "base64"
    truncated = len(text) > ORIGINAL_BODY_LIMIT
    return text[:ORIGINAL_BODY_LIMIT], encoding, truncated, len(raw)


def dump(detail: BaseModel) -> dict[str, Any]:
    return detail.model_dump(mode="json", exclude_none=True)


SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "copy-job-succeeded": CopyOutcomeDetail,
    "copy-job-failed": CopyOutcomeDetail,
    "copy-job-rejected": RejectedDetail,
    "import-job-planned": ImportPlannedDetail,
    "import-job-failures": ImportFailuresDetail,
}
