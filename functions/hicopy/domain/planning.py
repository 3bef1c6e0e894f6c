"""Planning a copy (the Prepare task): check the image sets, resolve their versions, split the selection into chunks.

Submit plans again from the same source version right before each call (``chunk_plan``), so that a source that
changed since Prepare is caught instead of copied; ``selection`` builds the chunks themselves. A source whose version
moved on since Prepare (an ``UpdateImageSetMetadata`` with ``includeStudyImageSets`` bumps every primary image set of
the study) is re-planned on its new latest version (``replan_on_new_source_version``), bounded, unless the job pinned
the version.
"""

from __future__ import annotations

from hicopy.domain.ports import ImageSetInfo, ImagingPort
from hicopy.domain.selection import CopyPlan, index_metadata, plan_chunks
from hicopy.domain.state import ImageSetVersion, Plan, WorkflowState
from hicopy.domain.statuses import Verdict, verdict
from hicopy.errors import ImageSetConflict, ImageSetNotFound, InvalidRequest, StaleVersion, UnexpectedImageSetStatus


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
    copy_plan = chunk_plan(imaging, state, source.version_id, frame_limit)
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
    status = f"{info.state}/{info.workflow_status}"
    if info.state == "DELETED" or info.workflow_status in ("DELETING", "DELETED"):
        raise ImageSetNotFound(f"{role} image set {info.image_set_id} is deleted ({status})")
    if pinned_version is not None and pinned_version != info.version_id:
        raise StaleVersion(
            f"{role} versionId {pinned_version} is not the latest version ({info.version_id}) of image set "
            f"{info.image_set_id}; CopyImageSet only accepts the latest version"
        )
    action, why = verdict("prepare", info.state, info.workflow_status, info.storage_tier)
    if action is Verdict.FAIL:
        raise UnexpectedImageSetStatus(f"{role} image set {info.image_set_id} is {status}: {why}")
    if action is Verdict.WAIT:
        raise ImageSetConflict(f"{role} image set {info.image_set_id} is locked or busy ({status}): {why}")
    return info


def chunk_plan(imaging: ImagingPort, state: WorkflowState, source_version_id: str, frame_limit: int) -> CopyPlan:
    """The job's selection, split into chunks, from the metadata of the given version of its source."""
    job = state.job
    metadata = imaging.get_metadata(job.datastoreId, job.source.imageSetId, source_version_id)
    return plan_chunks(index_metadata(metadata), instances=job.instances, series=job.series, frame_limit=frame_limit)


def planned(state: WorkflowState) -> Plan:
    """The plan Prepare made; the later tasks never run without one."""
    if state.plan is None:
        raise InvalidRequest("the job has not been prepared")
    return state.plan


#: How many times Submit re-plans a job on a newer source version before it fails ``StaleVersion``.
MAX_SOURCE_REPLANS = 3


def replan_on_new_source_version(imaging: ImagingPort, state: WorkflowState, latest_version_id: str) -> WorkflowState:
    """The job planned again on the source's new latest version, or ``StaleVersion``.

    A job that pinned the source version fails: it asked for that version. Otherwise, before the first chunk is
    submitted the plan is simply made again on the new version (the job asked for the latest); once chunks were
    copied, the new version must yield exactly the same chunks (same instances, same frames), so that the copy stays
    one selection from one content. At most ``MAX_SOURCE_REPLANS`` times per job.
    """
    plan, job = planned(state), state.job
    old = plan.source.versionId or ""
    if job.source.versionId is not None:
        raise StaleVersion(
            f"source image set {plan.source.imageSetId} changed since the job was planned (version {old} -> "
            f"{latest_version_id}) and the job pinned version {job.source.versionId}"
        )
    if plan.sourceReplans >= MAX_SOURCE_REPLANS:
        raise StaleVersion(
            f"source image set {plan.source.imageSetId} changed {plan.sourceReplans + 1} times while the job ran "
            f"(now version {latest_version_id})"
        )
    after = chunk_plan(imaging, state, latest_version_id, plan.frameLimit)
    if state.chunkIndex > 0 or state.completed:
        before = chunk_plan(imaging, state, old, plan.frameLimit)
        if after.chunks != before.chunks:
            raise StaleVersion(
                f"source image set {plan.source.imageSetId} changed since the job was planned (version {old} -> "
                f"{latest_version_id}) and its new version no longer yields the chunks already being copied"
            )
    replanned = plan.model_copy(
        update={
            "source": ImageSetVersion(imageSetId=plan.source.imageSetId, versionId=latest_version_id),
            "chunkCount": after.chunk_count,
            "totalFrames": after.total_frames,
            "totalInstances": after.total_instances,
            "wholeCopy": after.chunks[0].whole,
            "sourceReplans": plan.sourceReplans + 1,
        }
    )
    return state.model_copy(update={"plan": replanned})
