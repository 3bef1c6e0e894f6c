"""Small interfaces the domain needs from the outside world. Adapters in ``hicopy.adapters`` implement them
with boto3; tests use in-memory fakes or the HealthImaging emulator behind the real adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ImageSetInfo:
    datastore_id: str
    image_set_id: str
    version_id: str
    state: str  # ACTIVE | LOCKED | DELETED
    workflow_status: str  # CREATED | COPYING | COPIED | COPY_FAILED | ...
    message: str | None = None
    is_primary: bool | None = None

    @property
    def locked(self) -> bool:
        return self.state == "LOCKED"


@dataclass(frozen=True)
class CopyRequest:
    datastore_id: str
    source_image_set_id: str
    source_version_id: str
    destination_image_set_id: str | None
    destination_version_id: str | None
    copiable_attributes: str | None
    force: bool = False
    promote_to_primary: bool = False


@dataclass(frozen=True)
class CopyStarted:
    destination_image_set_id: str
    destination_version_id: str
    source_version_id: str


@dataclass(frozen=True)
class ImageSetSummary:
    image_set_id: str
    version: str
    is_primary: bool | None
    created_at: float | None = None
    updated_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ImagingPort(Protocol):
    def get_image_set(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> ImageSetInfo: ...

    def get_metadata(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> dict[str, Any]: ...

    def copy_image_set(self, request: CopyRequest) -> CopyStarted: ...

    def copies_created_since(self, datastore_id: str, source_image_set_id: str, since: float) -> list[ImageSetInfo]:
        """Image sets (other than the source) created shortly after ``since`` whose latest version is a copy."""
        ...


class EventPublisherPort(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Put one event on the bus; raise ``EventPublishFailed`` when it was not accepted."""
        ...


@dataclass
class SubmissionRecord:
    job_id: str
    chunk: int
    status: str  # SUBMITTING | SUBMITTED
    started_at: float
    destination_image_set_id: str | None = None
    destination_version_before: str | None = None
    destination_version_id: str | None = None
    submitted_at: float | None = None


class SubmissionStorePort(Protocol):
    """Remembers, per (job, chunk), that a CopyImageSet call is being or was made: a retried Submit never starts a
    second copy."""

    def begin(self, record: SubmissionRecord) -> SubmissionRecord | None:
        """Store ``record`` (status SUBMITTING) unless one exists; return the existing record if there is one."""
        ...

    def complete(self, record: SubmissionRecord) -> None: ...

    def abandon(self, job_id: str, chunk: int) -> None:
        """Forget a SUBMITTING record whose call failed before the copy started."""
        ...
