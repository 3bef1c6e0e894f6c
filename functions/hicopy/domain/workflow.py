"""The copy workflow, one function per state-machine task. No boto3 here: only ports (``hicopy.domain.ports``)."""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from hicopy.clock import Clock, iso
from hicopy.domain.events import (
    FAILED,
    SUCCEEDED,
    ChunkOut,
    CopyOutcomeDetail,
    ImageSetRefOut,
    Reason,
    SourceDeletionOut,
    TriggerOut,
    dump,
)
from hicopy.domain.pacing import Pacer
from hicopy.domain.ports import (
    CopyRequest,
    EventPublisherPort,
    ImageSetInfo,
    ImagingPort,
    SubmissionRecord,
    SubmissionStorePort,
)
from hicopy.domain.selection import Chunk, CopyPlan, index_metadata, plan_chunks
from hicopy.domain.state import ChunkResult, ImageSetVersion, Pace, Plan, SourceDeletion, Submission, WorkflowState
from hicopy.errors import (
    CopyFailed,
    CopyStillInProgress,
    ImageSetConflict,
    ImageSetNotFound,
    InvalidRequest,
    OrchestratorError,
    ServiceCallInterrupted,
    SlotMissed,
    StaleVersion,
    SubmitOutcomeUnknown,
    reason_code_for,
)

COPY_ACTION = "CopyImageSet"
DELETE_ACTION = "DeleteImageSet"
# The Wait state ends about DISPATCH_LEAD s before the slot, so that the Wait's end, the state transition, the Lambda
# start and Submit's reads happen before the slot; Submit then sleeps the rest (at most MAX_IN_LAMBDA_PACING_SLEEP).
DISPATCH_LEAD = 2.0
MAX_IN_LAMBDA_PACING_SLEEP = DISPATCH_LEAD + 1.0
# Longest a paced task waits in the Lambda for the account's next turn (a late caller ahead of it) before it gives
# up its slot and takes a new one (``SlotMissed``); and how many slots in a row a chunk may miss before it fails.
MAX_TURN_WAIT = 30.0
MAX_MISSED_SLOTS = 8


# --- Prepare ----------------------------------------------------------------------------------------------------
def prepare(
    state: WorkflowState, imaging: ImagingPort, *, allowed_datastores: frozenset[str], frame_limit: int
) -> WorkflowState:
    """Resolve versions, check the image sets, and split the selection into chunks."""
    job = state.job
    if job.datastoreId not in allowed_datastores:
        raise InvalidRequest(f"data store {job.datastoreId} is not one this orchestrator is configured for")
    source = _usable(imaging.get_image_set(job.datastoreId, job.source.imageSetId), "source", job.source.versionId)
    destination: ImageSetVersion | None = None
    if job.destination_image_set_id:
        dest = _usable(
            imaging.get_image_set(job.datastoreId, job.destination_image_set_id),
            "destination",
            job.destination_version_id,
        )
        destination = ImageSetVersion(imageSetId=dest.image_set_id, versionId=dest.version_id)
    copy_plan = _chunk_plan(imaging, job.datastoreId, source.image_set_id, source.version_id, state, frame_limit)
    plan = Plan(
        source=ImageSetVersion(imageSetId=source.image_set_id, versionId=source.version_id),
        destination=destination,
        chunkCount=copy_plan.chunk_count,
        totalFrames=copy_plan.total_frames,
        totalInstances=copy_plan.total_instances,
        wholeCopy=copy_plan.chunks[0].whole,
        frameLimit=frame_limit,
    )
    return state.model_copy(update={"plan": plan, "destination": destination, "chunkIndex": 0, "done": False})


def _usable(info: ImageSetInfo, role: str, pinned_version: str | None) -> ImageSetInfo:
    if info.state == "DELETED":
        raise ImageSetNotFound(f"{role} image set {info.image_set_id} is deleted")
    if pinned_version is not None and pinned_version != info.version_id:
        raise StaleVersion(
            f"{role} versionId {pinned_version} is not the latest version ({info.version_id}) of image set "
            f"{info.image_set_id}; CopyImageSet only accepts the latest version"
        )
    if info.locked:
        raise ImageSetConflict(f"{role} image set {info.image_set_id} is locked ({info.workflow_status})")
    return info


def _chunk_plan(
    imaging: ImagingPort, datastore_id: str, image_set_id: str, version_id: str, state: WorkflowState, frame_limit: int
) -> CopyPlan:
    metadata = imaging.get_metadata(datastore_id, image_set_id, version_id)
    return plan_chunks(
        index_metadata(metadata), instances=state.job.instances, series=state.job.series, frame_limit=frame_limit
    )


# --- Pace -------------------------------------------------------------------------------------------------------
def pace(state: WorkflowState, pacer: Pacer, clock: Clock) -> WorkflowState:
    """Reserve an account-wide slot for the next rate-limited call (CopyImageSet, or DeleteImageSet when the source
    is to be deleted); the state machine waits the whole seconds, the calling task sleeps the rest."""
    missed = (state.pace.missed if state.pace else 0) + 1 if state.missedSlot is not None else 0
    if missed > MAX_MISSED_SLOTS:
        raise SlotMissed(
            f"{_paced_action(state)} missed its turn {missed} times in a row: the account's rate-limited calls run "
            f"more than {MAX_TURN_WAIT:g} s behind their schedule"
        )
    now = clock.now()
    grant = pacer.reserve(_paced_action(state), now)
    wait = grant.wait(now)
    whole = math.floor(wait - DISPATCH_LEAD) if wait > MAX_IN_LAMBDA_PACING_SLEEP else 0
    return state.model_copy(
        update={"pace": Pace(slot=grant.slot, waitSeconds=whole, missed=missed), "missedSlot": None}
    )


def _paced_action(state: WorkflowState) -> str:
    pending_delete = state.sourceDeletion is not None and state.sourceDeletion.status == "PENDING"
    return DELETE_ACTION if pending_delete else COPY_ACTION


def _take_turn(state: WorkflowState, pacer: Pacer, clock: Clock) -> None:
    """Sleep to the reserved slot, then wait for the account's turn (``Pacer.claim``), immediately before the call.

    A caller ahead that ran late delays this one by up to ``MAX_TURN_WAIT`` instead of making it throttled; beyond
    that, ``SlotMissed`` sends the task back to Pace for a new slot. Unpaced states (no slot) call at once.
    """
    if state.pace is None:
        return
    if (early := state.pace.slot - clock.now()) > 0:
        clock.sleep(min(early, MAX_IN_LAMBDA_PACING_SLEEP))
    action, waited = _paced_action(state), 0.0
    while (wait := pacer.claim(action, clock.now())) > 0:
        if waited + wait > MAX_TURN_WAIT:
            raise SlotMissed(
                f"{action} for the slot at {iso(state.pace.slot)} would wait {waited + wait:.1f} s for the account's "
                f"next turn (more than {MAX_TURN_WAIT:g} s): the calls ahead ran late; taking a new slot"
            )
        clock.sleep(wait)
        waited += wait


# --- Submit -----------------------------------------------------------------------------------------------------
def submit(
    state: WorkflowState, imaging: ImagingPort, submissions: SubmissionStorePort, pacer: Pacer, clock: Clock
) -> WorkflowState:
    """Start the copy of the current chunk, at most once per (job, chunk).

    Before calling, a SUBMITTING record (with the destination's version before the call) is written; after the call
    it becomes SUBMITTED. A retried Submit that finds SUBMITTED reuses that copy. One that finds SUBMITTING (the
    previous attempt died around the call) reconciles with the service: the destination version the copy would have
    created, or a new image set created since, is adopted; if the call never reached the service it calls again.
    """
    plan = _plan(state)
    job, k = state.job, state.chunkIndex
    source = imaging.get_image_set(job.datastoreId, plan.source.imageSetId)
    if source.version_id != plan.source.versionId:
        raise StaleVersion(
            f"source image set {source.image_set_id} changed since the job was planned "
            f"(version {plan.source.versionId} -> {source.version_id})"
        )
    dest_id = state.destination.imageSetId if state.destination else None
    dest_version: str | None = None
    dest_locked = False
    if dest_id is not None:
        dest = imaging.get_image_set(job.datastoreId, dest_id)
        dest_locked = dest.locked
        if k == 0 and job.destination_version_id is not None and dest.version_id != job.destination_version_id:
            raise StaleVersion(
                f"destination versionId {job.destination_version_id} is not the latest version ({dest.version_id})"
            )
        dest_version = dest.version_id
    chunks = _chunk_plan(
        imaging, job.datastoreId, plan.source.imageSetId, plan.source.versionId or "", state, plan.frameLimit
    )
    if chunks.chunk_count != plan.chunkCount:
        raise StaleVersion("the source metadata no longer splits into the planned chunks")
    chunk = chunks.chunks[k]
    intent = SubmissionRecord(
        job_id=state.job_id,
        chunk=k,
        status="SUBMITTING",
        started_at=clock.now(),
        destination_image_set_id=dest_id,
        destination_version_before=dest_version,
    )
    existing = submissions.begin(intent)
    if existing is not None:
        adopted = _reconcile(state, existing, imaging, chunk)
        if adopted is not None:
            if existing.status != "SUBMITTED":
                submissions.complete(adopted)
            return _submitted(state, adopted, replayed=True)
        submissions.abandon(state.job_id, k)  # the earlier attempt never reached the service: start over
        if submissions.begin(intent) is not None:
            raise ImageSetConflict(f"another Submit of chunk {k} of job {state.job_id} is running")
    if dest_locked:
        submissions.abandon(state.job_id, k)
        raise ImageSetConflict(f"destination image set {dest_id} is locked by another write")
    request = CopyRequest(
        datastore_id=job.datastoreId,
        source_image_set_id=plan.source.imageSetId,
        source_version_id=source.version_id,
        destination_image_set_id=dest_id,
        destination_version_id=dest_version,
        copiable_attributes=chunk.copiable_attributes(),
        force=job.force,
        promote_to_primary=job.promoteToPrimary and k == 0,
    )
    try:
        _take_turn(state, pacer, clock)  # the reads are done: the call itself lands on the reserved slot
    except SlotMissed:
        submissions.abandon(state.job_id, k)  # not called: the next attempt starts afresh
        raise
    try:
        started = imaging.copy_image_set(request)
    except ServiceCallInterrupted:
        raise  # the request may have reached the service: keep SUBMITTING, so that the retry reconciles
    except Exception:
        submissions.abandon(state.job_id, k)  # the service answered with an error: the copy did not start
        raise
    now = clock.now()
    done = SubmissionRecord(
        job_id=state.job_id,
        chunk=k,
        status="SUBMITTED",
        started_at=intent.started_at,
        destination_image_set_id=started.destination_image_set_id,
        destination_version_before=dest_version,
        destination_version_id=started.destination_version_id,
        submitted_at=now,
    )
    submissions.complete(done)
    return _submitted(state, done, replayed=False)


def _submitted(state: WorkflowState, record: SubmissionRecord, *, replayed: bool) -> WorkflowState:
    submitted_at = iso(record.submitted_at or record.started_at)
    submission = Submission(
        chunk=record.chunk,
        destination=ImageSetVersion(
            imageSetId=record.destination_image_set_id or "", versionId=record.destination_version_id
        ),
        submittedAt=submitted_at,
        replayed=replayed,
    )
    return state.model_copy(update={"submission": submission, "submittedAt": state.submittedAt or submitted_at})


_COPY_STATUSES = ("COPYING", "COPIED", "COPY_FAILED")


def _sop_uids(metadata: dict[str, Any]) -> set[str]:
    return {ref.sop_uid for ref in index_metadata(metadata).instances}


def _reconcile(
    state: WorkflowState, record: SubmissionRecord, imaging: ImagingPort, chunk: Chunk
) -> SubmissionRecord | None:
    """The copy an earlier attempt started, as a SUBMITTED record; None if that attempt never reached the service."""
    if record.status == "SUBMITTED" and record.destination_image_set_id and record.destination_version_id:
        return record
    ds = state.job.datastoreId
    if record.destination_image_set_id is not None and record.destination_version_before is not None:
        expected = str(int(record.destination_version_before) + 1)
        try:
            info = imaging.get_image_set(ds, record.destination_image_set_id, expected)
        except ImageSetNotFound:
            return None  # no new version: the earlier call did not start a copy
        if info.workflow_status in _COPY_STATUSES:
            return SubmissionRecord(
                job_id=record.job_id,
                chunk=record.chunk,
                status="SUBMITTED",
                started_at=record.started_at,
                destination_image_set_id=info.image_set_id,
                destination_version_before=record.destination_version_before,
                destination_version_id=info.version_id,
                submitted_at=record.started_at,
            )
    elif record.destination_image_set_id is None:
        plan = _plan(state)
        created = imaging.copies_created_since(ds, plan.source.imageSetId, record.started_at - 2)
        wanted = {ref.sop_uid for ref in chunk.instances}
        mine = [
            c
            for c in created
            if c.workflow_status == "COPIED" and wanted <= _sop_uids(imaging.get_metadata(ds, c.image_set_id))
        ]
        if len(mine) == 1:
            return SubmissionRecord(
                job_id=record.job_id,
                chunk=record.chunk,
                status="SUBMITTED",
                started_at=record.started_at,
                destination_image_set_id=mine[0].image_set_id,
                destination_version_id=mine[0].version_id,
                submitted_at=record.started_at,
            )
        if not mine and any(c.workflow_status == "COPYING" or c.locked for c in created):
            # A copy is still running: its metadata only tells whether it is ours once it completes.
            raise ImageSetConflict(
                f"chunk {record.chunk} of job {record.job_id}: waiting for copies in flight to finish to tell "
                "whether one of them is ours"
            )
        if not mine:
            return None  # nothing copied our instances: the earlier call did not start a copy that succeeded
    raise SubmitOutcomeUnknown(
        f"chunk {record.chunk} of job {record.job_id}: an earlier Submit attempt started at {iso(record.started_at)} "
        "may have called CopyImageSet, and the service shows no single copy to adopt; not calling again to avoid a "
        "second copy. Check the destination's versions before resubmitting."
    )


# --- AwaitCopy --------------------------------------------------------------------------------------------------
def await_copy(state: WorkflowState, imaging: ImagingPort, clock: Clock, *, retry_count: int) -> WorkflowState:
    """Check the destination version written by this chunk. Still copying → ``CopyStillInProgress`` (retried)."""
    plan, sub = _plan(state), state.submission
    if sub is None or sub.chunk != state.chunkIndex:
        raise InvalidRequest("AwaitCopy ran without a submission for the current chunk")
    dest = sub.destination
    info = imaging.get_image_set(state.job.datastoreId, dest.imageSetId, dest.versionId)
    checks = retry_count + 1
    if info.workflow_status == "COPY_FAILED":
        raise CopyFailed(
            _with_details(
                info.message or "the service reported COPY_FAILED without a message",
                chunk=state.chunkIndex,
                chunks=plan.chunkCount,
                statusChecks=checks,
                destinationImageSetId=dest.imageSetId,
                destinationVersionId=dest.versionId,
            )
        )
    if info.locked or info.workflow_status in ("COPYING", "COPYING_WITH_READ_ONLY_ACCESS"):
        raise CopyStillInProgress(
            f"chunk {state.chunkIndex + 1}/{plan.chunkCount}: image set {dest.imageSetId} version {dest.versionId} "
            f"is still {info.workflow_status} (check {checks})"
        )
    if info.workflow_status != "COPIED":
        raise CopyFailed(
            _with_details(
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
            "sourceDeletion": deletion,
        }
    )


# --- DeleteSource -----------------------------------------------------------------------------------------------
class ImageSetDeleterPort(Protocol):
    def delete_image_set(self, datastore_id: str, image_set_id: str) -> str: ...


def delete_source(state: WorkflowState, deleter: ImageSetDeleterPort, pacer: Pacer, clock: Clock) -> WorkflowState:
    """Delete the source image set after every chunk was COPIED (post-import delete-after). Only then."""
    if state.sourceDeletion is None or state.sourceDeletion.status != "PENDING" or not state.done:
        raise InvalidRequest("DeleteSource ran before the copy completed")
    _take_turn(state, pacer, clock)
    deleter.delete_image_set(state.job.datastoreId, state.job.source.imageSetId)
    return state.model_copy(update={"sourceDeletion": SourceDeletion(status="DELETED"), "pace": None})


# --- Publish ----------------------------------------------------------------------------------------------------
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


class PublishedMarkerPort(Protocol):
    def seen(self, key: str) -> bool: ...

    def mark(self, key: str, now: float, **attributes: str) -> None: ...


def publish_outcome(
    state: WorkflowState,
    publisher: EventPublisherPort,
    clock: Clock,
    execution_arn: str | None,
    marker: PublishedMarkerPort | None = None,
) -> str | None:
    """Publish the job's terminal event, unless one was already published (a retried Publish, or the failure path
    after a Publish that crashed once its event was out). Returns the detail-type, or None when it was skipped."""
    key = f"outcome#{state.job_id}"
    if marker is not None and marker.seen(key):
        return None
    detail_type, detail = outcome_event(state, clock, execution_arn)
    publisher.publish(detail_type, detail)
    if marker is not None:
        marker.mark(key, clock.now(), detailType=detail_type)
    return detail_type


# --- errors carried through Step Functions ----------------------------------------------------------------------
def _with_details(message: str, **details: Any) -> str:
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


def _plan(state: WorkflowState) -> Plan:
    if state.plan is None:
        raise InvalidRequest("the job has not been prepared")
    return state.plan


__all__ = [
    "OrchestratorError",
    "await_copy",
    "delete_source",
    "describe_error",
    "outcome_event",
    "pace",
    "prepare",
    "publish_outcome",
    "submit",
]
