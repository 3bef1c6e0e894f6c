"""A job's outcome (the Publish tasks): its one terminal event, built from the execution state and published once.

A failed task's error reaches Publish as Step Functions' ``Error``/``Cause`` pair; ``describe_error`` turns it back
into the failure event's reason (and the details ``with_details`` packed into the message, e.g. status checks).
"""

from __future__ import annotations

import json
from typing import Any

from hicopy.clock import Clock, iso
from hicopy.contract import FAILED, SUCCEEDED
from hicopy.domain.events import (
    ChunkOut,
    CopyOutcomeDetail,
    ImageSetRefOut,
    Reason,
    SourceDeletionOut,
    TriggerOut,
    dump,
)
from hicopy.domain.ports import EventPublisherPort, PublishedMarkerPort
from hicopy.domain.state import WorkflowState
from hicopy.errors import reason_code_for


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
    destination = state.destination or (state.submission.destination if state.submission else None)
    deletion: SourceDeletionOut | None = None
    if state.deletionError is not None:
        deletion = SourceDeletionOut(
            status="FAILED", message=describe_error(state.deletionError.Error, state.deletionError.Cause)[1]
        )
    elif state.sourceDeletion is not None and state.sourceDeletion.status == "DELETED":
        deletion = SourceDeletionOut(status="DELETED")
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
) -> str | None:
    """Publish the job's terminal event, unless one was already published for this run of the job (a retried
    Publish, or the failure path after a Publish that crashed once its event was out). Returns the detail-type, or
    None when it was skipped."""
    if marker is not None and marker.seen(state.job_id, state.receivedAt, clock.now()):
        return None
    detail_type, detail = outcome_event(state, clock, execution_arn)
    publisher.publish(detail_type, detail)
    if marker is not None:
        marker.mark(state.job_id, state.receivedAt, clock.now(), detail_type=detail_type)
    return detail_type


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
