"""The execution state: one JSON object that every task of the state machine receives and returns.

Each Lambda task is invoked with ``{"state": $, "executionArn": $$.Execution.Id, "executionStartTime":
$$.Execution.StartTime, "retryCount": $$.State.RetryCount}``
and returns the next state. A ``Catch`` adds ``error`` (``{"Error", "Cause"}``) before the failure publisher runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hicopy.clock import parse_iso
from hicopy.domain.job import CopyJob, Trigger


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSetVersion(_Model):
    imageSetId: str
    versionId: str | None = None


class Plan(_Model):
    source: ImageSetVersion  # version resolved at planning time; every chunk copies from it
    destination: ImageSetVersion | None = None  # the job's destination (None: a new image set is created)
    chunkCount: int
    totalFrames: int
    totalInstances: int
    wholeCopy: bool
    frameLimit: int
    sourceReplans: int = 0  # times Submit re-planned on a newer source version (a study-wide update bumped it)


class Pace(_Model):
    slot: float  # epoch seconds (of the process clock) from which Submit may call
    waitSeconds: int  # whole seconds the state machine's Wait state sleeps first
    missed: int = 0  # slots this chunk (or deletion) already missed in a row (see ``SlotMissed``)


class Submission(_Model):
    chunk: int
    destination: ImageSetVersion  # the destination version this copy is writing
    submittedAt: str
    replayed: bool = False  # True when an earlier attempt's recorded submission was reused


class Awaiting(_Model):
    """The current chunk is still copying: ``checks`` status checks so far; the next one comes after at most
    ``waitSeconds`` (the callback wait's timeout), or as soon as HealthImaging's copy event wakes the execution.
    ``waits`` waits so far have charged ``budgetSeconds`` of the wait budget; ``onEvents``: this wait was sized for
    copy events that are flowing (``hicopy.domain.backoff.Backoff``)."""

    checks: int
    waitSeconds: int
    waits: int = 1
    budgetSeconds: float = 0.0
    onEvents: bool = False


class ChunkResult(_Model):
    index: int
    destination: ImageSetVersion
    statusChecks: int
    completedAt: str


class SfnError(BaseModel):
    model_config = ConfigDict(extra="allow")

    Error: str
    Cause: str | None = None


class SourceDeletion(_Model):
    """Deleting the source after a successful copy (post-import ``consolidate``/``promote`` with delete-after)."""

    status: str  # PENDING | DELETED | REFUSED (the planner's record or the destination did not allow it) | FAILED
    message: str | None = None


class WorkflowState(_Model):
    job: CopyJob
    trigger: Trigger
    receivedAt: str
    plan: Plan | None = None
    chunkIndex: int = 0
    destination: ImageSetVersion | None = None  # current destination (after the last completed chunk)
    pace: Pace | None = None
    submission: Submission | None = None
    awaiting: Awaiting | None = None
    completed: list[ChunkResult] = Field(default_factory=list)
    submittedAt: str | None = None  # first submission of the job
    done: bool = False
    sourceDeletion: SourceDeletion | None = None
    deletionError: SfnError | None = None  # set by the DeleteSource task's Catch
    missedSlot: SfnError | None = None  # set by the Catch that sends a task which missed its turn back to Pace
    verifications: int = 0  # times Verify found this chunk's copy still running after AwaitCopy's retries ran out
    verifyError: SfnError | None = None  # Verify's own error (PublishFailure reports the original one, ``error``)
    error: SfnError | None = None

    @property
    def job_id(self) -> str:
        assert self.job.jobId is not None, "the consumer always sets jobId"
        return self.job.jobId

    @property
    def delete_source_after_copy(self) -> bool:
        return bool(self.trigger.model_dump().get("deleteSourceAfterCopy"))

    def copy_seconds(self) -> float | None:
        """Seconds from the job's first submission to the completion of its last copied chunk (as AwaitCopy saw
        it), or None when nothing was both submitted and completed."""
        if self.submittedAt is None or not self.completed:
            return None
        return max(0.0, parse_iso(self.completed[-1].completedAt) - parse_iso(self.submittedAt))

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class TaskInput(_Model):
    """What the state machine passes to every Lambda task."""

    state: WorkflowState
    executionArn: str | None = None
    executionStartTime: str | None = None  # $$.Execution.StartTime (ISO 8601): Pace sizes slots to the deadline
    retryCount: int = 0
    verify: bool = False  # the Verify state: AwaitCopy's last check of the destination after a caught error
