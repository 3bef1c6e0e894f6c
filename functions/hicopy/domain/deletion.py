"""Deleting the source (the DeleteSource task, post-import delete-after only): once every chunk was COPIED, delete the
non-primary source image set, paced like a copy (its own DeleteImageSet slot and turn).

The message that started the job is never trusted for this: its trigger only says a deletion was asked for. The
source is deleted only when the import planner's record of the job (written before it queued the job) asks for it and
matches what this execution copied (data store, source and its version, destination, a whole copy), and when the
destination version the last chunk wrote holds every SOP Instance of that source version. Otherwise nothing is
deleted, and the success event says why (``sourceDeletion: REFUSED``).
"""

from __future__ import annotations

from typing import Any

from hicopy.clock import Clock
from hicopy.domain.pacing import Pacer, take_turn
from hicopy.domain.planning import planned
from hicopy.domain.ports import ImageSetDeleterPort, ImagingPort, PlanRecordPort
from hicopy.domain.selection import index_metadata
from hicopy.domain.state import SourceDeletion, WorkflowState
from hicopy.errors import InvalidRequest


def delete_source(
    state: WorkflowState,
    deleter: ImageSetDeleterPort,
    pacer: Pacer,
    clock: Clock,
    *,
    plans: PlanRecordPort,
    imaging: ImagingPort,
) -> WorkflowState:
    """Delete the source image set after every chunk was COPIED (post-import delete-after), only when the planner
    planned it and the destination provably holds all of it."""
    if state.sourceDeletion is None or state.sourceDeletion.status != "PENDING" or not state.done:
        raise InvalidRequest("DeleteSource ran before the copy completed")
    refusal = refusal_of(state, plans, imaging)
    if refusal is None:
        take_turn(state, pacer, clock)
        refusal = _source_changed(state, imaging)  # read again right before the call: nothing added meanwhile
    if refusal is not None:
        return _with(state, SourceDeletion(status="REFUSED", message=f"the source was not deleted: {refusal}"))
    deleter.delete_image_set(state.job.datastoreId, state.job.source.imageSetId)
    return _with(state, SourceDeletion(status="DELETED"))


def refusal_of(state: WorkflowState, plans: PlanRecordPort, imaging: ImagingPort) -> str | None:
    """Why the source must not be deleted, or None when the planner's record and the destination allow it."""
    job, plan = state.job, planned(state)
    record = plans.get(state.job_id)
    if record is None:
        return "the import planner did not plan this job (a deletion asked for by a message is never honoured)"
    if not record.delete_source:
        return "the import planner did not plan this job's source for deletion"
    if record.import_job_id != str(state.trigger.model_dump().get("importJobId", "")):
        return "the job's import job is not the one the planner planned it for"
    if (record.datastore_id, record.source_image_set_id) != (job.datastoreId, plan.source.imageSetId):
        return "the job's source is not the image set the planner planned"
    if record.destination_image_set_id != job.destination_image_set_id:
        return "the job's destination is not the one the planner planned"
    if not (record.whole_copy and plan.wholeCopy and not job.has_selection):
        return "the job is not a copy of the whole source"
    if record.source_version_id is None or record.source_version_id != plan.source.versionId:
        return f"the source version copied ({plan.source.versionId}) is not the version the planner planned"
    destination = state.destination
    if destination is None or destination.versionId is None:
        return "no destination version to check"
    source_uids = _sop_uids(imaging.get_metadata(job.datastoreId, plan.source.imageSetId, plan.source.versionId))
    copied = _sop_uids(imaging.get_metadata(job.datastoreId, destination.imageSetId, destination.versionId))
    missing = source_uids - copied
    if not source_uids or missing:
        return (
            f"version {destination.versionId} of the destination image set {destination.imageSetId} misses "
            f"{len(missing)} of the source's {len(source_uids)} instances"
        )
    return None


def _source_changed(state: WorkflowState, imaging: ImagingPort) -> str | None:
    plan = planned(state)
    latest = imaging.get_image_set(state.job.datastoreId, plan.source.imageSetId).version_id
    if latest != plan.source.versionId:
        return f"the source changed since it was copied (version {plan.source.versionId} -> {latest})"
    return None


def _with(state: WorkflowState, deletion: SourceDeletion) -> WorkflowState:
    return state.model_copy(update={"sourceDeletion": deletion, "pace": None})


def _sop_uids(metadata: dict[str, Any]) -> set[str]:
    return {ref.sop_uid for ref in index_metadata(metadata).instances}
