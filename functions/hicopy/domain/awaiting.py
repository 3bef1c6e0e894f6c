"""Awaiting a copy (the AwaitCopy task): read the destination version the current chunk writes.

What each status means is one table (``hicopy.domain.statuses``). Still copying returns the state with ``awaiting``
set: the state machine then waits for HealthImaging's copy event (a callback wait whose timeout is the next backoff
step, exponential with full jitter, ``hicopy.domain.backoff``) and checks again. The event is only a hint: this
status check is the truth. When the budget of checks is spent, ``CopyStillInProgress`` fails the job. COPIED moves
to the next chunk (or marks the job done); COPY_FAILED fails the job with the service's message; any other status
fails it naming the status.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hicopy.clock import Clock, iso
from hicopy.domain.backoff import Backoff
from hicopy.domain.outcome import with_details
from hicopy.domain.planning import planned
from hicopy.domain.ports import ImagingPort
from hicopy.domain.state import Awaiting, ChunkResult, SourceDeletion, WorkflowState
from hicopy.domain.statuses import Verdict, verdict
from hicopy.errors import CopyFailed, CopyStillInProgress, InvalidRequest, UnexpectedImageSetStatus

# How many times Verify may send a still-running copy back to waiting (each after a whole transient retry budget of
# AwaitCopy was spent on an outage) before the job fails ``CopyWaitBudgetExhausted``.
MAX_VERIFICATIONS = 3


def await_copy(
    state: WorkflowState,
    imaging: ImagingPort,
    clock: Clock,
    *,
    backoff: Backoff,
    rng: Callable[[], float] = random.random,
    verify: bool = False,
) -> WorkflowState:
    """Check the destination version written by this chunk. Still copying → ``awaiting`` (or, budget spent,
    ``CopyStillInProgress``).

    ``verify`` (the Verify state, after AwaitCopy's retries ran out on a transient error caught in ``state.error``):
    COPIED → the same success state, the error cleared; still copying → the waiting state with the error cleared, at
    most ``MAX_VERIFICATIONS`` times; COPY_FAILED → ``CopyFailed``. Any error reading the image set propagates (the
    original error is reported).
    """
    if verify:
        checked = await_copy(state.model_copy(update={"error": None}), imaging, clock, backoff=backoff, rng=rng)
        if checked.awaiting is None:
            return checked
        if state.verifications >= MAX_VERIFICATIONS:
            cause = state.error.Error if state.error else "an error"
            raise CopyStillInProgress(
                with_details(
                    f"chunk {state.chunkIndex + 1}: the copy is still running, and the status checks failed with "
                    f"{cause} {state.verifications + 1} times in a row (an outage): no longer waiting; the copy may "
                    "still complete",
                    statusChecks=checked.awaiting.checks,
                )
            )
        return checked.model_copy(update={"verifications": state.verifications + 1})
    plan, sub = planned(state), state.submission
    if sub is None or sub.chunk != state.chunkIndex:
        raise InvalidRequest("AwaitCopy ran without a submission for the current chunk")
    dest = sub.destination
    info = imaging.get_image_set(state.job.datastoreId, dest.imageSetId, dest.versionId)
    checks = (state.awaiting.checks if state.awaiting is not None else 0) + 1
    action, why = verdict("await_copy", info.state, info.workflow_status, info.storage_tier)
    details = {
        "chunk": state.chunkIndex,
        "chunks": plan.chunkCount,
        "statusChecks": checks,
        "destinationImageSetId": dest.imageSetId,
        "destinationVersionId": dest.versionId,
    }
    if action is Verdict.FAIL:
        if info.workflow_status == "COPY_FAILED":
            raise CopyFailed(
                with_details(info.message or "the service reported COPY_FAILED without a message", **details)
            )
        status = f"{info.state}/{info.workflow_status}"
        raise UnexpectedImageSetStatus(with_details(f"the version the copy writes is {status}: {why}", **details))
    if action is Verdict.WAIT:
        if backoff.spent(checks):
            raise CopyStillInProgress(  # with the checks: the failure event counts them
                with_details(
                    f"chunk {state.chunkIndex + 1}/{plan.chunkCount}: image set {dest.imageSetId} version "
                    f"{dest.versionId} is still {info.workflow_status} after {checks} checks",
                    **details,
                )
            )
        wait = Awaiting(checks=checks, waitSeconds=backoff.jittered_wait(checks, rng))
        return state.model_copy(update={"awaiting": wait})
    result = ChunkResult(index=state.chunkIndex, destination=dest, statusChecks=checks, completedAt=iso(clock.now()))
    next_index = state.chunkIndex + 1
    done = next_index >= plan.chunkCount
    deletion = SourceDeletion(status="PENDING") if done and state.delete_source_after_copy else None
    return state.model_copy(
        update={
            "completed": [*state.completed, result],
            "chunkIndex": next_index,
            "destination": dest,
            "done": done,
            "pace": None,
            "submission": None,
            "awaiting": None,
            "sourceDeletion": deletion,
            "verifications": 0,
        }
    )
