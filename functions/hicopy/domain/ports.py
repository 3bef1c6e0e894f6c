"""Every interface the domain needs from the outside world, in one place. Adapters in ``hicopy.adapters`` implement
them with boto3; tests use in-memory fakes or the HealthImaging emulator behind the real adapter.

The ports speak the domain's vocabulary (job IDs, chunk numbers, actions): how a record is keyed in the state table
is the adapter's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


# --- HealthImaging ----------------------------------------------------------------------------------------------
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
    """What the copy workflow reads and calls in HealthImaging."""

    def get_image_set(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> ImageSetInfo: ...

    def get_metadata(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> dict[str, Any]: ...

    def copy_image_set(self, request: CopyRequest) -> CopyStarted: ...

    def copies_created_since(self, datastore_id: str, source_image_set_id: str, since: float) -> list[ImageSetInfo]:
        """Image sets (other than the source) created shortly after ``since`` whose latest version is a copy."""
        ...


class ImageSetDeleterPort(Protocol):
    def delete_image_set(self, datastore_id: str, image_set_id: str) -> str: ...


class PlannerImagingPort(Protocol):
    """What the import planner asks HealthImaging about an import's image sets."""

    def is_primary(self, datastore_id: str, image_set_id: str) -> bool | None: ...

    def series_of(self, datastore_id: str, image_set_id: str) -> list[str]:
        """Series Instance UIDs in the image set's metadata."""
        ...

    def primary_for_series(self, datastore_id: str, series_uid: str, exclude: str) -> str | None:
        """The primary image set holding ``series_uid`` (other than ``exclude``), if any."""
        ...


class ImportJobsPort(Protocol):
    def get_import_job(self, datastore_id: str, job_id: str) -> dict[str, Any]: ...


class ImportOutputPort(Protocol):
    def read(self, uri: str) -> bytes | None:
        """The object at ``s3://bucket/key``, or None if it does not exist."""
        ...


# --- events and queues ------------------------------------------------------------------------------------------
class EventPublisherPort(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Put one event on the bus; raise ``EventPublishFailed`` when it was not accepted."""
        ...


class MessageSenderPort(Protocol):
    """Sends one message to a queue (the job queue, or the dead-letter queue of rejected jobs)."""

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str: ...


# --- the state table --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaceKey:
    """One GCRA cell of the account-wide pacing (see ``hicopy.domain.pacing``)."""

    action: str  # the rate-limited API action, e.g. CopyImageSet
    turn: bool = False  # False: the slots reserved ahead (Pace); True: the turns taken right before calling


class PaceStorePort(Protocol):
    """Stores one theoretical arrival time per ``PaceKey`` with compare-and-set semantics."""

    def read(self, key: PaceKey) -> float | None: ...

    def compare_and_set(self, key: PaceKey, expected: float | None, new: float) -> bool:
        """Store ``new`` if the stored value is still ``expected``; False if another caller won the race."""
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


class PublishedMarkerPort(Protocol):
    """Remembers that a job's terminal event was published, so that no second one is."""

    def seen(self, job_id: str) -> bool: ...

    def mark(self, job_id: str, now: float, *, detail_type: str) -> None: ...


class ImportMarkerPort(Protocol):
    """Remembers that an import job was planned, so that a redelivered event plans nothing more."""

    def seen(self, datastore_id: str, import_job_id: str) -> bool: ...

    def mark(self, datastore_id: str, import_job_id: str, now: float, *, status: str, jobs: int) -> None: ...


# --- waking a waiting execution (HealthImaging's copy events) --------------------------------------------------
@dataclass(frozen=True)
class CopyVersion:
    """The destination image set version a copy writes (what a copy event names and a waiter waits for)."""

    datastore_id: str
    image_set_id: str
    version_id: str


class WakeStorePort(Protocol):
    """Where a waiting task's token and a copy event meet, whichever comes first (see ``hicopy.domain.waking``)."""

    def park(self, version: CopyVersion, token: str, now: float) -> bool:
        """Store ``token`` for ``version`` and take the version's "seen" mark: True if an event was seen."""
        ...

    def mark(self, version: CopyVersion, now: float) -> str | None:
        """Mark ``version`` as seen and take the token parked on it, if any."""
        ...


class TaskWakerPort(Protocol):
    def wake(self, token: str) -> bool:
        """End the callback wait of ``token`` (success); False when that wait already ended (woken or timed out)."""
        ...
