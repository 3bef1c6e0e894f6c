"""Every interface the domain needs from the outside world, in one place. Adapters in ``hicopy.adapters`` implement
them with boto3; tests use in-memory fakes or the HealthImaging emulator behind the real adapter.

The ports speak the domain's vocabulary (job IDs, chunk numbers, actions): how a record is keyed in the state table
is the adapter's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


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
    storage_tier: str | None = None  # FREQUENT_ACCESS | ARCHIVE_INSTANT_ACCESS (absent from older answers)

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

    def get_metadata(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> dict[str, Any]:
        """GetImageSetMetadata's document, at least its outline (``Study.Series.<uid>.Instances.<uid>.ImageFrames``):
        the adapter drops the DICOM attributes while parsing (memory; the workflow reads only UIDs and frames)."""
        ...

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

    def version_of(self, datastore_id: str, image_set_id: str) -> str:
        """The image set's latest version."""
        ...

    def metadata_of(self, datastore_id: str, image_set_id: str) -> dict[str, Any]:
        """The image set's metadata document (latest version)."""
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


class ExecutionsPort(Protocol):
    """Starts the copy workflow's executions, one per job ID (the execution name), and reads one back."""

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
        """(execution ARN, started); ``started`` is False when an execution of that name already exists."""
        ...

    def input_of(self, execution_arn: str) -> dict[str, Any]:
        """The input the execution was started with."""
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


@dataclass(frozen=True)
class CorruptPaceValue:
    """A stored pacing value that is not a number (e.g. a string where a number belongs), kept exactly as found so
    that a conditional write replaces that value and nothing newer (``raw`` is the store's own representation)."""

    raw: Any


# What a pacing cell holds: nothing yet, a theoretical arrival time, or a value that is not one.
PaceValue = float | CorruptPaceValue | None


class PaceStorePort(Protocol):
    """Stores one theoretical arrival time per ``PaceKey`` with compare-and-set semantics."""

    def read(self, key: PaceKey) -> PaceValue: ...

    def compare_and_set(self, key: PaceKey, expected: PaceValue, new: float) -> bool:
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

    def claim(self, image_set_id: str, job_id: str, chunk: int, now: float) -> bool:
        """Record that the new image set ``image_set_id`` is the copy of (job, chunk), unless another (job, chunk)
        claimed it first: True if it is now (or already was) this one's, False if it is another's."""
        ...


@dataclass(frozen=True)
class PlannedCopy:
    """What the import planner planned for one job, recorded before the job is queued. The workflow deletes a
    source only for a job whose record says so and matches what it copied: never on what a message says."""

    job_id: str
    datastore_id: str
    import_job_id: str
    source_image_set_id: str
    source_version_id: str | None  # the version the import produced (None: unknown, never deleted)
    destination_image_set_id: str | None  # None: a copy into a new (primary) image set
    whole_copy: bool  # one job copies the whole source (no selection)
    delete_source: bool


class PlanRecordPort(Protocol):
    """The import planner's record of the jobs it planned (written by the planner, read by the workflow)."""

    def record(self, plan: PlannedCopy, now: float) -> None: ...

    def get(self, job_id: str) -> PlannedCopy | None: ...


class PublishedMarkerPort(Protocol):
    """Remembers that the terminal event of one *run* of a job was published, so that no second one is.

    A run is the job ID with the time the consumer received the job (``WorkflowState.receivedAt``): Step Functions
    lets an execution name be used again 90 days after its execution closed, and that new run gets its own event.
    A marker past its expiry counts as absent (DynamoDB's TTL deletes it only some time later)."""

    def seen(self, job_id: str, received_at: str, now: float) -> bool: ...

    def mark(self, job_id: str, received_at: str, now: float, *, detail_type: str) -> None: ...


@dataclass(frozen=True)
class EventIdentity:
    """What makes one terminal or rejection event *that* event (``hicopy.domain.delivery``): a job's run
    (``kind`` outcome, ``key`` the job ID, ``run`` its ``receivedAt``) or a rejected message (``kind`` rejection,
    ``key`` its message ID)."""

    kind: Literal["outcome", "rejection"]
    key: str
    run: str = ""


@dataclass(frozen=True)
class DeliveryState:
    """What the state table knows about one event: its delivery receipt (the detail-type our own rule saw on the
    bus) and the time of the latest put whose answer was lost."""

    received: str | None = None
    pending_since: float | None = None


class DeliveryReceiptPort(Protocol):
    """Delivery receipts of our own events (written by the receipt function, from the bus) and the pending puts
    whose outcome is unknown (written by the publisher). Both sides update one record; neither erases the other."""

    def state(self, identity: EventIdentity, now: float) -> DeliveryState: ...

    def pend(self, identity: EventIdentity, now: float) -> None:
        """Record that a put of the event was made at ``now`` and its answer lost."""
        ...

    def receive(self, identity: EventIdentity, now: float, *, detail_type: str) -> None:
        """Record that the event was seen on the bus."""
        ...


@dataclass(frozen=True)
class ImportMark:
    """What the planner recorded about an import: planned (its jobs queued), then reported (its events out)."""

    status: str  # the import job's status
    jobs: int  # how many copy jobs were planned
    job_ids: tuple[str, ...] = ()  # the first of them (what ``Import Job Planned`` lists)
    reported: bool = False


class RejectionMarkerPort(Protocol):
    """Remembers how far the rejection of one queue message got: ``KEPT`` (its dead-letter copy was sent), then
    ``PUBLISHED`` (its ``Copy Job Rejected`` was put), so that a redelivered message repeats neither."""

    def stage(self, message_id: str) -> str | None: ...

    def mark(self, message_id: str, now: float, *, stage: str) -> None: ...


@dataclass(frozen=True)
class ExecutionFacts:
    """What Step Functions says about an execution that ended (``DescribeExecution``)."""

    execution_arn: str
    status: str
    input: str | None  # the execution's input (JSON text), None when it was left out
    error: str | None = None


class ExecutionReaderPort(Protocol):
    """Reads an ended execution: its description, and the input of the last task state it entered."""

    def describe(self, execution_arn: str) -> ExecutionFacts: ...

    def last_task_input(self, execution_arn: str) -> tuple[str, str] | None:
        """(state name, input JSON) of the most recent task state entered, or None if none is in the history."""
        ...


class ImportMarkerPort(Protocol):
    """Remembers that an import job was planned and reported, so that a redelivered event plans nothing more and a
    retry after a failed report only reports."""

    def get(self, datastore_id: str, import_job_id: str, now: float) -> ImportMark | None: ...

    def mark(self, datastore_id: str, import_job_id: str, now: float, mark: ImportMark) -> None: ...


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


class EventsHeardPort(Protocol):
    """When a copy event of a data store was last heard (any image set): whether AwaitCopy may wait on events."""

    def heard(self, datastore_id: str, now: float) -> None:
        """Record that a copy event of ``datastore_id`` arrived at ``now``."""
        ...

    def last_heard(self, datastore_id: str) -> float | None:
        """When a copy event of ``datastore_id`` last arrived (None: not lately, or never)."""
        ...


class TaskWakerPort(Protocol):
    def wake(self, token: str) -> bool:
        """End the callback wait of ``token`` (success); False when that wait already ended (woken or timed out)."""
        ...
