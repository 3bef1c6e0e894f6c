"""A job's outcome (the Publish tasks): its one terminal event, built from the execution state and published once.

A failed task's error reaches Publish as Step Functions' ``Error``/``Cause`` pair; ``describe_error`` turns it back
into the failure event's reason (and the details ``with_details`` packed into the message, e.g. status checks).

The safety net (``publish_for_ended_execution``, the ExecutionEnded function) covers an execution that ended FAILED,
TIMED_OUT or ABORTED without its terminal event (no ``outcome#<jobId>`` marker): it publishes the outcome the
execution was publishing when it died (the input of PublishResult/PublishFailure: the copy's true result), or else a
failure event whose reason says how the execution ended, with the progress of the last task state it entered.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hicopy.clock import Clock, iso
from hicopy.contract import ENDED_WITHOUT_SUCCESS, FAILED, PUBLISH_STATES, SUCCEEDED
from hicopy.domain.delivery import RECEIPT_WINDOW_SECONDS, outcome_identity, put_tracked, receipt_of
from hicopy.domain.events import (
    ChunkOut,
    CopyOutcomeDetail,
    ImageSetRefOut,
    Reason,
    SourceDeletionOut,
    TriggerOut,
    dump,
)
from hicopy.domain.ports import (
    DeliveryReceiptPort,
    EventPublisherPort,
    ExecutionFacts,
    ExecutionReaderPort,
    PublishedMarkerPort,
)
from hicopy.domain.state import SfnError, WorkflowState
from hicopy.errors import (
    ExecutionAborted,
    ExecutionFailed,
    ExecutionTimedOut,
    OrchestratorError,
    reason_code_for,
)


def outcome_event(state: WorkflowState, clock: Clock, execution_arn: str | None) -> tuple[str, dict[str, Any]]:
    """The job's one terminal event: success, or failure with the reason taken from the caught error."""
    job, plan = state.job, state.plan
    completed = [
        ChunkOut(index=c.index, destinationVersionId=c.destination.versionId or "", statusChecks=c.statusChecks)
        for c in state.completed
    ]
    checks = sum(c.statusChecks for c in state.completed)
    reason: Reason | None = None
    failed_chunk: int | None = None
    if state.error is not None:
        code, message, details = describe_error(state.error.Error, state.error.Cause)
        reason = Reason(code=code, message=message)
        checks += int(details.get("statusChecks", 0))
        if plan is not None and state.chunkIndex < plan.chunkCount:
            failed_chunk = state.chunkIndex
    # The version the job last wrote: a submitted chunk's (a failed merge reports the COPY_FAILED version it produced,
    # not the destination's version before it), else the last completed chunk's.
    destination = (state.submission.destination if state.submission else None) or state.destination
    deletion: SourceDeletionOut | None = None
    if state.deletionError is not None:
        deletion = SourceDeletionOut(
            status="FAILED", message=describe_error(state.deletionError.Error, state.deletionError.Cause)[1]
        )
    elif state.sourceDeletion is not None and state.sourceDeletion.status == "DELETED":
        deletion = SourceDeletionOut(status="DELETED")
    elif state.sourceDeletion is not None and state.sourceDeletion.status == "REFUSED":
        deletion = SourceDeletionOut(status="REFUSED", message=state.sourceDeletion.message)
    detail = CopyOutcomeDetail(
        jobId=state.job_id,
        correlationId=job.correlationId,
        datastoreId=job.datastoreId,
        status="FAILED" if reason else "SUCCEEDED",
        source=ImageSetRefOut(
            imageSetId=job.source.imageSetId,
            versionId=plan.source.versionId if plan else job.source.versionId,
        ),
        destination=ImageSetRefOut(imageSetId=destination.imageSetId, versionId=destination.versionId)
        if destination
        else None,
        reason=reason,
        chunks=plan.chunkCount if plan else 0,
        chunksCompleted=len(state.completed),
        failedChunk=failed_chunk,
        completedChunks=completed,
        statusChecks=checks,
        promoteToPrimary=job.promoteToPrimary,
        force=job.force,
        sourceDeletion=deletion,
        trigger=TriggerOut.model_validate(state.trigger.model_dump()),
        receivedAt=state.receivedAt,
        submittedAt=state.submittedAt,
        completedAt=iso(clock.now()),
        executionArn=execution_arn,
    )
    return (FAILED if reason else SUCCEEDED), dump(detail)


def publish_outcome(
    state: WorkflowState,
    publisher: EventPublisherPort,
    clock: Clock,
    execution_arn: str | None,
    marker: PublishedMarkerPort | None = None,
    receipts: DeliveryReceiptPort | None = None,
    receipt_window: float = RECEIPT_WINDOW_SECONDS,
) -> str | None:
    """Publish the job's terminal event, unless one was already published for this run of the job (a retried
    Publish, or the failure path after a Publish that crashed once its event was out). Returns the detail-type, or
    None when it was skipped.

    With ``receipts`` (``hicopy.domain.delivery``), a put whose answer was lost is not repeated while its delivery
    receipt may still come, and one whose receipt came is only marked."""
    if marker is not None and marker.seen(state.job_id, state.receivedAt, clock.now()):
        return None
    identity = outcome_identity(state.job_id, state.receivedAt)
    delivered = receipt_of(identity, receipts, clock.now(), receipt_window) if receipts is not None else None
    if delivered is not None:
        if marker is not None:
            marker.mark(state.job_id, state.receivedAt, clock.now(), detail_type=delivered)
        return None
    detail_type, detail = outcome_event(state, clock, execution_arn)
    if receipts is not None:
        put_tracked(identity, lambda: publisher.publish(detail_type, detail), receipts, clock.now())
    else:
        publisher.publish(detail_type, detail)
    if marker is not None:
        marker.mark(state.job_id, state.receivedAt, clock.now(), detail_type=detail_type)
    return detail_type


# --- the safety net: an execution that ended without its terminal event -------------------------------------------
_END_ERRORS: dict[str, type[OrchestratorError]] = {
    "TIMED_OUT": ExecutionTimedOut,
    "ABORTED": ExecutionAborted,
    "FAILED": ExecutionFailed,
}


def ended_execution(detail: dict[str, Any]) -> ExecutionFacts:
    """The facts a ``Step Functions Execution Status Change`` event's detail carries (its ``input`` may be absent,
    or left out as too large: ``inputDetails.included`` false)."""
    included = (detail.get("inputDetails") or {}).get("included", True)
    raw_input = detail.get("input")
    return ExecutionFacts(
        execution_arn=str(detail["executionArn"]),
        status=str(detail.get("status")),
        input=raw_input if isinstance(raw_input, str) and included is not False else None,
        error=detail.get("error") if isinstance(detail.get("error"), str) else None,
    )


def _state_of(text: str | None) -> WorkflowState | None:
    if not text:
        return None
    try:
        return WorkflowState.model_validate_json(text)
    except ValueError:
        return None


def _end_reason(facts: ExecutionFacts) -> SfnError:
    cls = _END_ERRORS[facts.status]
    if facts.status == "TIMED_OUT":
        message = "the execution ran past the state machine's timeout (executionTimeoutHours)"
    elif facts.status == "ABORTED":
        message = "the execution was stopped (StopExecution)"
    else:
        message = f"the execution failed ({facts.error or 'no error name'})"
    message += " before it published its terminal event; the progress reported is that of its last task state"
    return SfnError(Error=cls.error_name(), Cause=message)


def _described(facts: ExecutionFacts, reader: ExecutionReaderPort) -> ExecutionFacts:
    """The event's facts completed by ``DescribeExecution`` (input, error); the status stays the event's: the
    description is eventually consistent and may still say RUNNING."""
    described = reader.describe(facts.execution_arn)
    return replace(facts, input=facts.input or described.input, error=facts.error or described.error)


def publish_for_ended_execution(
    facts: ExecutionFacts,
    reader: ExecutionReaderPort,
    publisher: EventPublisherPort,
    clock: Clock,
    marker: PublishedMarkerPort,
    receipts: DeliveryReceiptPort | None = None,
    receipt_window: float = RECEIPT_WINDOW_SECONDS,
) -> str | None:
    """The safety net's one terminal event for an execution that ended FAILED, TIMED_OUT or ABORTED, unless the job's
    terminal event is out already (the marker). Returns the detail-type published, or None."""
    if facts.status not in ENDED_WITHOUT_SUCCESS:
        return None
    last = reader.last_task_input(facts.execution_arn)
    state = _state_of(last[1]) if last else None
    from_publisher = state is not None and last is not None and last[0] in PUBLISH_STATES
    if state is None:  # no readable task state in the history: the execution's own input (the job as accepted)
        if facts.input is None:
            facts = _described(facts, reader)
        state = _state_of(facts.input)
    if state is None:
        raise ExecutionFailed("the ended execution's input is not a job state; no terminal event can be built")
    if not from_publisher:
        if marker.seen(state.job_id, state.receivedAt, clock.now()):
            return None
        if facts.status == "FAILED" and facts.error is None:
            facts = _described(facts, reader)
        state = state.model_copy(update={"error": _end_reason(facts)})
    return publish_outcome(state, publisher, clock, facts.execution_arn, marker, receipts, receipt_window)


# --- errors carried through Step Functions ----------------------------------------------------------------------
def with_details(message: str, **details: Any) -> str:
    """Encode details into an exception message so they survive Step Functions' ``Cause``."""
    return json.dumps({"message": message, "details": details}, separators=(",", ":"))


def describe_error(error: str, cause: str | None) -> tuple[str, str, dict[str, Any]]:
    """(reason code, message, details) from a Step Functions ``Error``/``Cause`` pair."""
    message = cause or error
    details: dict[str, Any] = {}
    try:
        payload = json.loads(cause) if cause else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "errorMessage" in payload:  # a Lambda error: {"errorMessage", "errorType", ...}
        message = str(payload["errorMessage"])
        try:
            inner = json.loads(message)
        except ValueError:
            inner = None
        if isinstance(inner, dict) and "message" in inner:
            message = str(inner["message"])
            details = dict(inner.get("details") or {})
    return reason_code_for(error), message, details
