"""Submitting a copy (the Submit task): call CopyImageSet for the current chunk, at most once per (job, chunk).

The guarantee is one unit, ``AtMostOnce``: before calling, a SUBMITTING record (with the destination's version before
the call) is written; after the call it becomes SUBMITTED. A retried Submit that finds SUBMITTED reuses that copy. One
that finds SUBMITTING (the previous attempt died around the call) reconciles with the service: the destination version
the copy would have created, or a new image set created since, is adopted; if the call never reached the service it
calls again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hicopy.clock import Clock, iso
from hicopy.domain.pacing import Pacer, take_turn
from hicopy.domain.planning import chunk_plan, planned, replan_on_new_source_version
from hicopy.domain.ports import CopyRequest, CopyStarted, ImagingPort, SubmissionRecord, SubmissionStorePort
from hicopy.domain.selection import Chunk, index_metadata
from hicopy.domain.state import ImageSetVersion, Submission, WorkflowState
from hicopy.errors import ImageSetConflict, ImageSetNotFound, ServiceCallInterrupted, StaleVersion, SubmitOutcomeUnknown

_COPY_STATUSES = ("COPYING", "COPIED", "COPY_FAILED")


def submit(
    state: WorkflowState, imaging: ImagingPort, submissions: SubmissionStorePort, pacer: Pacer, clock: Clock
) -> WorkflowState:
    """Start the copy of the current chunk, at most once per (job, chunk)."""
    plan = planned(state)
    job, k = state.job, state.chunkIndex
    source = imaging.get_image_set(job.datastoreId, plan.source.imageSetId)
    if source.version_id != plan.source.versionId:  # e.g. a study-wide metadata update bumped it: plan again
        state = replan_on_new_source_version(imaging, state, source.version_id)
        plan = planned(state)
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
    chunks = chunk_plan(imaging, state, plan.source.versionId or "", plan.frameLimit)
    if chunks.chunk_count != plan.chunkCount:
        raise StaleVersion("the source metadata no longer splits into the planned chunks")
    chunk = chunks.chunks[k]
    once = AtMostOnce(
        submissions,
        imaging,
        state,
        chunk,
        SubmissionRecord(
            job_id=state.job_id,
            chunk=k,
            status="SUBMITTING",
            started_at=clock.now(),
            destination_image_set_id=dest_id,
            destination_version_before=dest_version,
        ),
    )
    adopted = once.begin()
    if adopted is not None:
        return _submitted(state, adopted, replayed=True)
    with once.calling():
        if dest_locked:
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
        take_turn(state, pacer, clock)  # the reads are done: the call itself lands on the reserved slot
        started = imaging.copy_image_set(request)
    return _submitted(state, once.complete(started, clock.now()), replayed=False)


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


class AtMostOnce:
    """The at-most-once record of one (job, chunk) and its reconciliation with the service.

    ``begin`` writes the SUBMITTING record, or adopts the copy an earlier attempt started; ``calling`` wraps
    everything from there to the CopyImageSet call; ``complete`` records the call's answer (SUBMITTED).
    """

    def __init__(
        self,
        store: SubmissionStorePort,
        imaging: ImagingPort,
        state: WorkflowState,
        chunk: Chunk,
        intent: SubmissionRecord,
    ) -> None:
        self.store, self.imaging, self.state, self.chunk, self.intent = store, imaging, state, chunk, intent

    def begin(self) -> SubmissionRecord | None:
        """Write the SUBMITTING record and return None, or return the copy an earlier attempt started (recorded
        SUBMITTED). An earlier attempt that never reached the service is forgotten, and this one starts afresh."""
        existing = self.store.begin(self.intent)
        if existing is None:
            return None
        adopted = self._reconcile(existing)
        if adopted is not None:
            if existing.status != "SUBMITTED":
                self.store.complete(adopted)
            return adopted
        self.store.abandon(self.intent.job_id, self.intent.chunk)
        if self.store.begin(self.intent) is not None:
            job_id, chunk = self.intent.job_id, self.intent.chunk
            raise ImageSetConflict(f"another Submit of chunk {chunk} of job {job_id} is running")
        return None

    @contextmanager
    def calling(self) -> Iterator[None]:
        """Any error up to and including the call abandons the SUBMITTING record (the copy did not start: the next
        attempt starts afresh), except ``ServiceCallInterrupted``: the request may have reached the service, so the
        record stays SUBMITTING and the retry reconciles."""
        try:
            yield
        except ServiceCallInterrupted:
            raise
        except Exception:
            self.store.abandon(self.intent.job_id, self.intent.chunk)
            raise

    def complete(self, started: CopyStarted, now: float) -> SubmissionRecord:
        done = SubmissionRecord(
            job_id=self.intent.job_id,
            chunk=self.intent.chunk,
            status="SUBMITTED",
            started_at=self.intent.started_at,
            destination_image_set_id=started.destination_image_set_id,
            destination_version_before=self.intent.destination_version_before,
            destination_version_id=started.destination_version_id,
            submitted_at=now,
        )
        self.store.complete(done)
        return done

    def _reconcile(self, record: SubmissionRecord) -> SubmissionRecord | None:
        """The copy an earlier attempt started, as a SUBMITTED record; None if that attempt never reached the
        service."""
        if record.status == "SUBMITTED" and record.destination_image_set_id and record.destination_version_id:
            return record
        ds = self.state.job.datastoreId
        if record.destination_image_set_id is not None and record.destination_version_before is not None:
            expected = str(int(record.destination_version_before) + 1)
            try:
                info = self.imaging.get_image_set(ds, record.destination_image_set_id, expected)
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
            source_id = planned(self.state).source.imageSetId
            created = self.imaging.copies_created_since(ds, source_id, record.started_at - 2)
            wanted = {ref.sop_uid for ref in self.chunk.instances}
            mine = [
                c
                for c in created
                if c.workflow_status == "COPIED" and wanted <= _sop_uids(self.imaging.get_metadata(ds, c.image_set_id))
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
            f"chunk {record.chunk} of job {record.job_id}: an earlier Submit attempt started at "
            f"{iso(record.started_at)} may have called CopyImageSet, and the service shows no single copy to adopt; "
            "not calling again to avoid a second copy. Check the destination's versions before resubmitting."
        )


def _sop_uids(metadata: dict[str, Any]) -> set[str]:
    return {ref.sop_uid for ref in index_metadata(metadata).instances}
