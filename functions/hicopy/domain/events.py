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
    status: Literal["DELETED", "FAILED"]
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
    receivedAt: str
    completedAt: str


class FileFailureOut(_Detail):
    inputFile: str
    exceptionType: str
    message: str


class ImportFailuresDetail(_Detail):
    """Detail of ``Import Job Failures``: an import failed, or some of its files did (from ``failure.ndjson``)."""

    schemaVersion: Literal["2.0"] = SCHEMA_VERSION
    importJobId: str
    datastoreId: str
    jobStatus: str
    message: str | None = None
    failedFiles: int
    failures: list[FileFailureOut] = Field(description="The first 100 failed files")
    failuresTruncated: bool
    outputS3Uri: str | None = None
    summary: dict[str, int] = Field(default_factory=dict, description="numberOf* counters of the job summary")


class ImportPlannedDetail(_Detail):
    """Detail of ``Import Job Planned``: what the post-import policy did with an import's image sets."""

    schemaVersion: Literal["2.0"] = SCHEMA_VERSION
    importJobId: str
    datastoreId: str
    policy: Policy
    imageSets: int
    primaryImageSets: int
    nonPrimaryImageSets: int
    jobsPlanned: list[str]
    failedFiles: int
    warnings: int


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
