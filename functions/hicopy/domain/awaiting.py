"""Awaiting a copy (the AwaitCopy task): read the destination version the current chunk writes.

Right after Submit the copy has only just started: AwaitCopy checks nothing and returns the first wait. Each wait
is a callback wait that HealthImaging's copy event ends early (``hicopy.domain.waking``); its timeout is the
fallback for a lost event, sized by ``hicopy.domain.backoff.Backoff``: the next backoff step with full jitter while
no copy event of the data store has been heard lately (polling), a long ``event_wait`` while they flow (the status
checks in between are skipped). After the wait, the status check is the truth; the event is only a hint.

What each status means is one table (``hicopy.domain.statuses``). Still copying → ``awaiting`` (the next wait);
when the waits have charged the whole budget, ``CopyStillInProgress`` fails the job. COPIED moves to the next chunk
(or marks the job done); COPY_FAILED fails the job with the service's message; any other status fails it naming
the status.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from hicopy.clock import Clock, iso
from hicopy.domain.backoff import Backoff
from hicopy.domain.outcome import with_details
from hicopy.domain.planning import planned
from hicopy.domain.ports import EventsHeardPort, ImagingPort
from hicopy.domain.state import Awaiting, ChunkResult, SourceDeletion, Submission, WorkflowState
from hicopy.domain.statuses import Verdict, verdict
from hicopy.errors import (
    CopyFailed,
    CopyStillInProgress,
    Handling,
    InvalidRequest,
    OrchestratorError,
    UnexpectedImageSetStatus,
)

# How many times Verify may send a still-running copy back to waiting (each after a whole transient retry budget of
# AwaitCopy was spent on an outage) before the job fails ``CopyWaitBudgetExhausted``.
MAX_VERIFICATIONS = 3


def await_copy(
    state: WorkflowState,
    imaging: ImagingPort,
    clock: Clock,
    *,
    backoff: Backoff,
    heard: EventsHeardPort | None = None,
    rng: Callable[[], float] = random.random,
    verify: bool = False,
) -> WorkflowState:
    """The first wait right after Submit (no status check); afterwards, check the destination version written by
    this chunk. Still copying → ``awaiting`` (or, budget spent, ``CopyStillInProgress``).

    ``heard``: when the data store's copy events were last heard (None: always poll).
    ``verify`` (the Verify state, after AwaitCopy's retries ran out on a transient error caught in ``state.error``):
    always a status check. COPIED → the same success state, the error cleared; still copying → the waiting state
    with the error cleared, at most ``MAX_VERIFICATIONS`` times; COPY_FAILED → ``CopyFailed``. Any error reading the
    image set propagates (the original error is reported).
    """
    if verify:
        cleared = state.model_copy(update={"error": None})
        checked = _check(cleared, imaging, clock, backoff=backoff, heard=heard, rng=rng)
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
    if state.awaiting is None:  # just submitted: the copy has only started (what ``checks_status`` tells callers)
        _submitted(state)
        return state.model_copy(update={"awaiting": _next_wait(state, 0, clock, backoff, heard, rng)})
    return _check(state, imaging, clock, backoff=backoff, heard=heard, rng=rng)


def checks_status(task_input: Mapping[str, Any]) -> bool:
    """Whether an AwaitCopy invocation with this task input (``{"state": ..., "verify": ...}``) reads the image set:
    always for Verify; otherwise only once a wait was drawn (right after Submit it draws the first wait)."""
    state = task_input.get("state")
    return bool(task_input.get("verify")) or (isinstance(state, Mapping) and state.get("awaiting") is not None)


def _submitted(state: WorkflowState) -> Submission:
    sub = state.submission
    if sub is None or sub.chunk != state.chunkIndex:
        raise InvalidRequest("AwaitCopy ran without a submission for the current chunk")
    return sub


def _events_flowing(state: WorkflowState, clock: Clock, backoff: Backoff, heard: EventsHeardPort | None) -> bool:
    """Whether a copy event of the job's data store was heard within the backoff's events window. A failure to
    read it is not the copy's: the wait falls back to polling."""
    if heard is None or backoff.event_wait <= 0:
        return False
    try:
        last = heard.last_heard(state.job.datastoreId)
    except OrchestratorError as e:
        if e.handling is Handling.TERMINAL:
            raise
        return False
    return last is not None and 0 <= clock.now() - last <= backoff.events_window


def _next_wait(
    state: WorkflowState,
    checks: int,
    clock: Clock,
    backoff: Backoff,
    heard: EventsHeardPort | None,
    rng: Callable[[], float],
) -> Awaiting:
    before = state.awaiting
    waits, charged = (before.waits, before.budgetSeconds) if before is not None else (0, 0.0)
    on_events = _events_flowing(state, clock, backoff, heard)
    seconds, charge = backoff.next_wait(waits, on_events, rng)
    return Awaiting(
        checks=checks, waitSeconds=seconds, waits=waits + 1, budgetSeconds=charged + charge, onEvents=on_events
    )


def _check(
    state: WorkflowState,
    imaging: ImagingPort,
    clock: Clock,
    *,
    backoff: Backoff,
    heard: EventsHeardPort | None,
    rng: Callable[[], float],
) -> WorkflowState:
    plan, sub = planned(state), _submitted(state)
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
        if state.awaiting is not None and backoff.spent(state.awaiting.budgetSeconds):
            raise CopyStillInProgress(  # with the checks: the failure event counts them
                with_details(
                    f"chunk {state.chunkIndex + 1}/{plan.chunkCount}: image set {dest.imageSetId} version "
                    f"{dest.versionId} is still {info.workflow_status} after {checks} checks",
                    **details,
                )
            )
        return state.model_copy(update={"awaiting": _next_wait(state, checks, clock, backoff, heard, rng)})
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
