"""Submitting a copy (the Submit task): call CopyImageSet for the current chunk, at most once per (job, chunk).

The guarantee is one unit, ``AtMostOnce``: before calling, a SUBMITTING record (with the destination's version before
the call) is written; after the call it becomes SUBMITTED. A retried Submit that finds SUBMITTED reuses that copy. One
that finds SUBMITTING (the previous attempt died around the call) reconciles with the service, and adopts only a copy
it can prove is its own: the destination's next version holding exactly the previous version's instances plus this
chunk's, or a new image set created since holding exactly this chunk's instances that no other job claimed. If the
call provably never started a copy it calls again; anything else fails ``SubmitOutcomeUnknown``, saying what it found.
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
        if self.intent.destination_image_set_id is None:
            # The service's answer proves the new image set is ours: claim it, so that no other job's reconciliation
            # adopts it. (A claim already taken means another job adopted it in the moment since the answer: that
            # job's adoption is the one that is wrong, and this job keeps its copy.)
            self.store.claim(started.destination_image_set_id, self.intent.job_id, self.intent.chunk, now)
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
        """The copy an earlier attempt started, as a SUBMITTED record, when it is provably that attempt's own; None
        if that attempt provably started no copy. Anything else is ``SubmitOutcomeUnknown`` (never a guess), and a
        candidate still copying is waited for (``ImageSetConflict``): only its metadata tells whose it is."""
        if record.status == "SUBMITTED" and record.destination_image_set_id and record.destination_version_id:
            return record
        if record.destination_image_set_id is not None and record.destination_version_before is not None:
            return self._reconcile_merge(record, record.destination_image_set_id, record.destination_version_before)
        if record.destination_image_set_id is None:
            return self._reconcile_new_image_set(record)
        raise self._unknown(record, "its record names no destination version to check")

    def _reconcile_merge(self, record: SubmissionRecord, dest_id: str, before: str) -> SubmissionRecord | None:
        """A merge creates the destination's next version: it is ours only if it holds exactly the previous
        version's instances plus this chunk's (another writer may have merged into the same destination)."""
        ds = self.state.job.datastoreId
        expected = str(int(before) + 1)
        try:
            info = self.imaging.get_image_set(ds, dest_id, expected)
        except ImageSetNotFound:
            return None  # no new version: the earlier call did not start a copy
        if info.locked or info.workflow_status in ("COPYING", "COPYING_WITH_READ_ONLY_ACCESS"):
            raise ImageSetConflict(
                f"chunk {record.chunk} of job {record.job_id}: waiting for version {expected} of destination image "
                f"set {dest_id} to finish copying to tell whether it is this job's copy"
            )
        where = f"version {expected} of destination image set {dest_id}"
        if info.workflow_status != "COPIED":
            said = f" ({info.message})" if info.message else ""
            raise self._unknown(record, f"{where} is {info.workflow_status}{said}: no proof that it is this copy")
        previous = _sop_uids(self.imaging.get_metadata(ds, dest_id, before))
        found = _sop_uids(self.imaging.get_metadata(ds, dest_id, expected))
        wanted = self._wanted()
        if found != previous | wanted:
            raise self._unknown(record, f"{where} is not this copy: {_compare(found, previous, wanted)}")
        return self._adopted(record, info.image_set_id, info.version_id, before)

    def _reconcile_new_image_set(self, record: SubmissionRecord) -> SubmissionRecord | None:
        """A copy into a new image set: ours only if it holds exactly this chunk's instances, was created after the
        SUBMITTING record, and no other job claimed it (a conditional write in the state table)."""
        ds = self.state.job.datastoreId
        source_id = planned(self.state).source.imageSetId
        created = self.imaging.copies_created_since(ds, source_id, record.started_at)
        if any(c.locked or c.workflow_status in ("COPYING", "COPYING_WITH_READ_ONLY_ACCESS") for c in created):
            # A copy is still running: its metadata only tells whether it is ours once it completes.
            raise ImageSetConflict(
                f"chunk {record.chunk} of job {record.job_id}: waiting for copies in flight to finish to tell "
                "whether one of them is ours"
            )
        wanted = self._wanted()
        copied = [c for c in created if c.workflow_status == "COPIED"]
        mine = [c for c in copied if _sop_uids(self.imaging.get_metadata(ds, c.image_set_id, c.version_id)) == wanted]
        if not mine:
            return None  # no copy of exactly our instances: the earlier call did not start a copy that succeeded
        if len(mine) > 1:
            raise self._unknown(record, f"{len(mine)} new image sets hold exactly this chunk's instances")
        candidate = mine[0]
        if not self.store.claim(candidate.image_set_id, record.job_id, record.chunk, record.started_at):
            raise self._unknown(
                record, f"the new image set {candidate.image_set_id} holding this chunk's instances is another job's"
            )
        return self._adopted(record, candidate.image_set_id, candidate.version_id, None)

    def _wanted(self) -> set[str]:
        return {ref.sop_uid for ref in self.chunk.instances}

    @staticmethod
    def _adopted(record: SubmissionRecord, image_set_id: str, version_id: str, before: str | None) -> SubmissionRecord:
        return SubmissionRecord(
            job_id=record.job_id,
            chunk=record.chunk,
            status="SUBMITTED",
            started_at=record.started_at,
            destination_image_set_id=image_set_id,
            destination_version_before=before,
            destination_version_id=version_id,
            submitted_at=record.started_at,
        )

    @staticmethod
    def _unknown(record: SubmissionRecord, found: str) -> SubmitOutcomeUnknown:
        return SubmitOutcomeUnknown(
            f"chunk {record.chunk} of job {record.job_id}: an earlier Submit attempt started at "
            f"{iso(record.started_at)} may have called CopyImageSet, and no copy is provably its own: {found}. "
            "Not calling again to avoid a second copy. Check the destination's versions before resubmitting."
        )


def _compare(found: set[str], previous: set[str], wanted: set[str]) -> str:
    """What a candidate version holds, against what this copy would have made (counts only: no UIDs)."""
    return (
        f"it holds {len(found)} instances, {len(found & previous)} of the previous version's {len(previous)} and "
        f"{len((found - previous) & wanted)} of this chunk's {len(wanted - previous)} new ones, and "
        f"{len(found - previous - wanted)} others"
    )


def _sop_uids(metadata: dict[str, Any]) -> set[str]:
    return {ref.sop_uid for ref in index_metadata(metadata).instances}
