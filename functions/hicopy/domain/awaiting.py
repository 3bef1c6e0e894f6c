"""Awaiting a copy (the AwaitCopy task): read the destination version the current chunk writes.

Still copying returns the state with ``awaiting`` set: the state machine then waits for HealthImaging's copy event
(a callback wait whose timeout is the next backoff step, exponential with full jitter, ``hicopy.domain.backoff``)
and checks again. The event is only a hint: this status check is the truth. When the budget of checks is spent,
``CopyStillInProgress`` fails the job. COPIED moves to the next chunk (or marks the job done); COPY_FAILED fails the
job with the service's message.
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
from hicopy.errors import CopyFailed, CopyStillInProgress, InvalidRequest


def await_copy(
    state: WorkflowState,
    imaging: ImagingPort,
    clock: Clock,
    *,
    backoff: Backoff,
    rng: Callable[[], float] = random.random,
) -> WorkflowState:
    """Check the destination version written by this chunk. Still copying → ``awaiting`` (or, budget spent,
    ``CopyStillInProgress``)."""
    plan, sub = planned(state), state.submission
    if sub is None or sub.chunk != state.chunkIndex:
        raise InvalidRequest("AwaitCopy ran without a submission for the current chunk")
    dest = sub.destination
    info = imaging.get_image_set(state.job.datastoreId, dest.imageSetId, dest.versionId)
    checks = (state.awaiting.checks if state.awaiting is not None else 0) + 1
    if info.workflow_status == "COPY_FAILED":
        raise CopyFailed(
            with_details(
                info.message or "the service reported COPY_FAILED without a message",
                chunk=state.chunkIndex,
                chunks=plan.chunkCount,
                statusChecks=checks,
                destinationImageSetId=dest.imageSetId,
                destinationVersionId=dest.versionId,
            )
        )
    if info.locked or info.workflow_status in ("COPYING", "COPYING_WITH_READ_ONLY_ACCESS"):
        if backoff.spent(checks):
            raise CopyStillInProgress(
                f"chunk {state.chunkIndex + 1}/{plan.chunkCount}: image set {dest.imageSetId} version "
                f"{dest.versionId} is still {info.workflow_status} after {checks} checks"
            )
        wait = Awaiting(checks=checks, waitSeconds=backoff.jittered_wait(checks, rng))
        return state.model_copy(update={"awaiting": wait})
    if info.workflow_status != "COPIED":
        raise CopyFailed(
            with_details(
                f"unexpected workflow status {info.workflow_status} for the copied version",
                chunk=state.chunkIndex,
                chunks=plan.chunkCount,
                statusChecks=checks,
            )
        )
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
        }
    )
