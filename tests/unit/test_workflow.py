import json

import pytest

from hicopy.domain import workflow
from hicopy.domain.events import FAILED, SUCCEEDED
from hicopy.domain.job import Trigger, parse_job
from hicopy.domain.pacing import InMemoryPaceStore, Pacer
from hicopy.domain.state import SfnError, SourceDeletion, WorkflowState
from hicopy.errors import (
    CopyFailed,
    CopyStillInProgress,
    ImageSetConflict,
    InvalidRequest,
    ServiceThrottled,
    SlotMissed,
    StaleVersion,
    SubmitOutcomeUnknown,
)
from tests.support.contracts import assert_valid_event
from tests.support.fakes import FakeClock, FakeImaging, FakeMarker, FakePublisher, FakeSubmissions, metadata

DS, SRC, DST = "a" * 32, "b" * 32, "c" * 32
S1 = "1.2.840.9"


def state(**job):
    j = parse_job({"jobId": "job-1", "datastoreId": DS, "source": {"imageSetId": SRC}, **job})
    return WorkflowState(job=j, trigger=Trigger(type="sqs"), receivedAt="2026-11-27T00:00:00.000Z")


@pytest.fixture
def pacer():
    return Pacer(InMemoryPaceStore(), rate=0.25)


@pytest.fixture
def imaging():
    fake = FakeImaging()
    fake.add(SRC, version=2, meta=metadata({S1: {f"{S1}.{n}": 1 for n in range(1, 6)}}))
    fake.add(DST, version=7)
    return fake


def run_chunks(st, imaging, clock, subs=None):
    subs = subs or FakeSubmissions()
    pacer = Pacer(InMemoryPaceStore(), rate=0.25)
    while not st.done:
        st = workflow.pace(st, pacer, clock)
        st = workflow.submit(st, imaging, subs, pacer, clock)
        dest = st.submission.destination.imageSetId
        with pytest.raises(CopyStillInProgress):
            workflow.await_copy(st, imaging, clock, retry_count=0)
        imaging.finish(dest)
        st = workflow.await_copy(st, imaging, clock, retry_count=1)
    return st


def test_whole_copy_to_a_new_image_set(imaging):
    clock = FakeClock()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    assert st.plan.chunkCount == 1 and st.plan.wholeCopy and st.plan.source.versionId == "2"
    st = run_chunks(st, imaging, clock)
    req = imaging.copies[0]
    assert req.copiable_attributes is None and req.destination_image_set_id is None and req.source_version_id == "2"
    assert st.done and st.completed[0].statusChecks == 2
    detail_type, detail = workflow.outcome_event(st, clock, "arn:exec")
    assert detail_type == SUCCEEDED and detail["destination"]["imageSetId"] == st.destination.imageSetId
    assert detail["statusChecks"] == 2 and detail["chunks"] == 1
    assert_valid_event(detail_type, detail)


def test_merge_into_existing_uses_its_fresh_latest_version(imaging):
    clock = FakeClock()
    st = workflow.prepare(
        state(destination={"imageSetId": DST}, instances=[f"{S1}.2"], force=True),
        imaging,
        allowed_datastores=frozenset({DS}),
        frame_limit=1000,
    )
    imaging.sets[DST].version = 8  # someone wrote meanwhile: Submit must use 8, not the planned 7
    st = run_chunks(st, imaging, clock)
    req = imaging.copies[0]
    assert req.destination_version_id == "8" and req.force
    assert json.loads(req.copiable_attributes)["Study"]["Series"] == {S1: {"Instances": {f"{S1}.2": {}}}}
    assert st.destination.versionId == "9"


def test_chunked_copy_creates_then_fills_one_destination(imaging):
    clock = FakeClock()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=2)
    assert st.plan.chunkCount == 3 and not st.plan.wholeCopy
    st = run_chunks(st, imaging, clock)
    first, *rest = imaging.copies
    assert first.destination_image_set_id is None
    assert {r.destination_image_set_id for r in rest} == {st.destination.imageSetId}
    assert [r.destination_version_id for r in rest] == ["1", "2"]
    _, detail = workflow.outcome_event(st, clock, None)
    assert detail["chunks"] == 3 and detail["chunksCompleted"] == 3 and len(detail["completedChunks"]) == 3


def test_pace_spaces_submissions_and_submit_sleeps_the_remainder(imaging, pacer):
    clock = imaging.clock = FakeClock()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    a = workflow.pace(st, pacer, clock)
    b = workflow.pace(st, pacer, clock)
    c = workflow.pace(st, pacer, clock)
    assert [a.pace.slot, b.pace.slot, c.pace.slot] == pytest.approx([clock.t, clock.t + 4.12, clock.t + 8.24])  # +3 %
    # The Wait state ends DISPATCH_LEAD (2 s) early, at most 1 s more: Submit does its reads, then sleeps the rest.
    assert (a.pace.waitSeconds, b.pace.waitSeconds, c.pace.waitSeconds) == (0, 2, 6)
    workflow.submit(a, imaging, FakeSubmissions(), pacer, clock)
    clock.t += b.pace.waitSeconds
    workflow.submit(b, imaging, FakeSubmissions(), pacer, clock)
    assert clock.slept == [pytest.approx(2.12)] and len(imaging.copies) == 2
    assert imaging.copy_times == [a.pace.slot, pytest.approx(b.pace.slot)]


def test_a_late_caller_delays_the_next_one_instead_of_throttling_it(imaging, pacer):
    """The turn: calls never come closer than the quota allows (+2 %), whatever the slots said."""
    clock = imaging.clock = FakeClock()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    a, b = workflow.pace(st, pacer, clock), workflow.pace(st, pacer, clock)
    clock.t = a.pace.slot + 3.0  # a's Lambda started 3 s late (a cold start), b is on time after it
    workflow.submit(a, imaging, FakeSubmissions(), pacer, clock)
    clock.t = b.pace.slot
    workflow.submit(b, imaging, FakeSubmissions(), pacer, clock)
    first, second = imaging.copy_times
    assert second - first == pytest.approx(4.08) and second > b.pace.slot


def test_a_caller_too_far_behind_the_turns_takes_a_new_slot(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    mine = workflow.pace(st, pacer, clock)
    # Late calls of other executions took the account's turns up to 40 s from now (the stored turn TAT).
    pacer.store.values[f"{workflow.COPY_ACTION}#call"] = clock.t + 40.0
    with pytest.raises(SlotMissed, match=r"would wait 40\.0 s for the account's next turn"):
        workflow.submit(mine, imaging, subs, pacer, clock)
    assert imaging.copies == [] and subs.records == {}  # not called, intent abandoned: the retry starts afresh
    # The Catch puts the error in $.missedSlot; Pace counts the miss and reserves a new slot.
    missed = mine.model_copy(update={"missedSlot": SfnError(Error="SlotMissed", Cause="...")})
    again = workflow.pace(missed, pacer, clock)
    assert again.pace.missed == 1 and again.missedSlot is None and again.pace.slot > mine.pace.slot
    assert workflow.pace(again, pacer, clock).pace.missed == 0  # a normal Pace (next chunk) starts counting afresh


def test_a_chunk_that_keeps_missing_its_turn_fails(imaging, pacer):
    clock = FakeClock()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    st = workflow.pace(st, pacer, clock)
    for n in range(1, workflow.MAX_MISSED_SLOTS + 1):
        st = workflow.pace(st.model_copy(update={"missedSlot": SfnError(Error="SlotMissed", Cause="")}), pacer, clock)
        assert st.pace.missed == n
    with pytest.raises(SlotMissed, match="missed its turn 9 times in a row"):
        workflow.pace(st.model_copy(update={"missedSlot": SfnError(Error="SlotMissed", Cause="")}), pacer, clock)


def test_unconfigured_datastore_is_refused(imaging):
    with pytest.raises(InvalidRequest, match="not one this orchestrator is configured for"):
        workflow.prepare(state(), imaging, allowed_datastores=frozenset({"f" * 32}), frame_limit=1000)


def test_pinned_stale_version_is_terminal(imaging):
    with pytest.raises(StaleVersion, match="versionId 1 is not the latest version \\(2\\)"):
        workflow.prepare(
            state(source={"imageSetId": SRC, "versionId": "1"}),
            imaging,
            allowed_datastores=frozenset({DS}),
            frame_limit=1000,
        )


def test_locked_source_is_a_retryable_conflict(imaging):
    imaging.sets[SRC].state, imaging.sets[SRC].status = "LOCKED", "UPDATING"
    with pytest.raises(ImageSetConflict):
        workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)


def test_submit_never_copies_twice_for_the_same_chunk(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    first = workflow.submit(st, imaging, subs, pacer, clock)
    again = workflow.submit(st, imaging, subs, pacer, clock)  # e.g. the Lambda was retried after the call
    assert len(imaging.copies) == 1 and again.submission.replayed
    assert again.submission.destination == first.submission.destination


def crashed_after_call(imaging, subs, st, clock, pacer):
    """Submit wrote its intent and called CopyImageSet, then died before recording the result."""
    from hicopy.domain.ports import SubmissionRecord

    dest = st.destination.imageSetId if st.destination else None
    before = imaging.get_image_set(DS, dest).version_id if dest else None
    subs.begin(
        SubmissionRecord(
            job_id="job-1",
            chunk=0,
            status="SUBMITTING",
            started_at=clock.now(),
            destination_image_set_id=dest,
            destination_version_before=before,
        )
    )


def test_retry_after_a_crash_adopts_the_copy_into_an_existing_destination(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(
        state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000
    )
    crashed_after_call(imaging, subs, st, clock, pacer)
    workflow.submit(st, imaging, FakeSubmissions(), pacer, clock)  # the lost call (another store: it really happened)
    again = workflow.submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 1 and again.submission.replayed
    assert again.submission.destination.versionId == "8" and subs.records[("job-1", 0)].status == "SUBMITTED"


def lost_copy(imaging, st, clock, pacer):
    """The call an earlier attempt made (recorded in another store: it really happened)."""
    return workflow.submit(st, imaging, FakeSubmissions(), pacer, clock)


def complete(imaging, image_set_id):
    imaging.sets[image_set_id].meta = imaging.sets[SRC].meta
    imaging.finish(image_set_id)


def test_retry_after_a_crash_adopts_the_new_image_set_holding_its_instances(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    lost = lost_copy(imaging, st, clock, pacer)
    with pytest.raises(ImageSetConflict, match="waiting for copies in flight"):
        workflow.submit(st, imaging, subs, pacer, clock)  # still COPYING: cannot tell yet whether it is ours
    complete(imaging, lost.submission.destination.imageSetId)
    again = workflow.submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 1 and again.submission.destination == lost.submission.destination


def test_retry_after_a_crash_ignores_other_copies(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    other = lost_copy(imaging, st, clock, pacer)  # someone else's copy of other data, created meanwhile
    imaging.finish(other.submission.destination.imageSetId)  # COPIED, but without our instances
    again = workflow.submit(st, imaging, subs, pacer, clock)
    assert not again.submission.replayed and len(imaging.copies) == 2


def test_retry_after_a_crash_before_the_call_calls_once(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(
        state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000
    )
    crashed_after_call(imaging, subs, st, clock, pacer)  # ...but the call never reached the service
    again = workflow.submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 1 and not again.submission.replayed


def test_ambiguous_crash_refuses_to_guess(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    for _ in range(2):  # two completed copies of the same instances: cannot tell which is ours
        complete(imaging, lost_copy(imaging, st, clock, pacer).submission.destination.imageSetId)
    with pytest.raises(SubmitOutcomeUnknown):
        workflow.submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 2


def test_a_lost_response_keeps_the_intent_so_the_retry_reconciles(imaging, pacer):
    from hicopy.errors import ServiceCallInterrupted

    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(
        state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000
    )

    real_copy = imaging.copy_image_set

    def served_then_lost(request):
        real_copy(request)
        raise ServiceCallInterrupted("CopyImageSet: Read timeout")

    imaging.copy_image_set = served_then_lost
    with pytest.raises(ServiceCallInterrupted):
        workflow.submit(st, imaging, subs, pacer, clock)
    imaging.copy_image_set = real_copy
    again = workflow.submit(st, imaging, subs, pacer, clock)
    assert again.submission.replayed and len(imaging.copies) == 1


def test_throttled_submit_can_be_retried(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    imaging.fail_with.append(ServiceThrottled("ThrottlingException: slow down"))
    with pytest.raises(ServiceThrottled):
        workflow.submit(st, imaging, subs, pacer, clock)
    assert workflow.submit(st, imaging, subs, pacer, clock).submission is not None and len(imaging.copies) == 1


def test_a_retried_throttled_call_waits_for_its_turn(imaging, pacer):
    """Throttled by another client in the account: Step Functions retries Submit after a jittered delay, and the
    retry takes a turn like any other call instead of going out at a random moment."""
    clock, subs = FakeClock(), FakeSubmissions()
    imaging.clock = clock
    st = workflow.pace(
        workflow.prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000), pacer, clock
    )
    imaging.fail_with.append(ServiceThrottled("ThrottlingException: slow down"))
    throttled_at = clock.t
    with pytest.raises(ServiceThrottled):
        workflow.submit(st, imaging, subs, pacer, clock)
    clock.t += 1.3  # the retrier's jittered delay
    workflow.submit(st, imaging, subs, pacer, clock)
    assert imaging.copy_times == [pytest.approx(throttled_at + 4.08)]  # the next turn, not 1.3 s later


def test_copy_failed_surfaces_the_service_message_in_the_failure_event(imaging, pacer):
    clock = FakeClock()
    st = workflow.prepare(
        state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000
    )
    st = workflow.submit(st, imaging, FakeSubmissions(), pacer, clock)
    msg = "INVALID_REQUEST:  Series of SourceImageSet and DestinationImageSet don't match."
    imaging.finish(DST, "COPY_FAILED", msg)
    with pytest.raises(CopyFailed) as exc:
        workflow.await_copy(st, imaging, clock, retry_count=2)
    cause = json.dumps({"errorMessage": str(exc.value), "errorType": "CopyFailed"})
    failed = st.model_copy(update={"error": SfnError(Error="CopyFailed", Cause=cause)})
    detail_type, detail = workflow.outcome_event(failed, clock, "arn:exec")
    assert detail_type == FAILED and detail["reason"] == {"code": "CopyFailed", "message": msg}
    assert detail["statusChecks"] == 3 and detail["failedChunk"] == 0 and detail["chunksCompleted"] == 0
    assert_valid_event(detail_type, detail)


def test_failure_before_planning_still_produces_a_valid_event():
    st = state().model_copy(update={"error": SfnError(Error="States.Timeout", Cause="timed out")})
    detail_type, detail = workflow.outcome_event(st, FakeClock(), None)
    assert detail_type == FAILED and detail["reason"]["code"] == "Timeout" and detail["chunks"] == 0
    assert_valid_event(detail_type, detail)


def test_publish_outcome_puts_exactly_one_event(imaging):
    pub = FakePublisher()
    st = state().model_copy(update={"error": SfnError(Error="ImageSetNotFound", Cause="gone")})
    workflow.publish_outcome(st, pub, FakeClock(), None)
    assert len(pub.events) == 1 and pub.events[0][1]["reason"]["code"] == "NotFound"


def test_a_retried_or_failure_path_publish_never_sends_a_second_event():
    pub, marker = FakePublisher(), FakeMarker()
    ok = state()
    assert workflow.publish_outcome(ok, pub, FakeClock(), None, marker) == SUCCEEDED
    failed = ok.model_copy(update={"error": SfnError(Error="RuntimeError", Cause="crashed after publishing")})
    assert workflow.publish_outcome(failed, pub, FakeClock(), None, marker) is None
    assert [t for t, _ in pub.events] == [SUCCEEDED] and marker.keys == {"outcome#job-1": {"detailType": SUCCEEDED}}


class FakeDeleter:
    def __init__(self, clock):
        self.clock, self.deleted = clock, []

    def delete_image_set(self, datastore_id, image_set_id):
        self.deleted.append((image_set_id, self.clock.now()))
        return "DELETING"


def copied_with_pending_deletion():
    return state().model_copy(update={"done": True, "sourceDeletion": SourceDeletion(status="PENDING")})


def test_the_source_deletion_takes_its_own_slot_and_turn(pacer):
    clock = FakeClock()
    st = workflow.pace(copied_with_pending_deletion(), pacer, clock)
    assert pacer.store.read(workflow.DELETE_ACTION) is not None and pacer.store.read(workflow.COPY_ACTION) is None
    start = clock.t
    pacer.store.values[f"{workflow.DELETE_ACTION}#call"] = start + 5.0  # another deletion went out late, just now
    deleter = FakeDeleter(clock)
    out = workflow.delete_source(st, deleter, pacer, clock)
    assert deleter.deleted == [(SRC, pytest.approx(start + 5.0))]  # waited for the turn instead of calling early
    assert out.sourceDeletion.status == "DELETED" and out.pace is None


def test_a_source_deletion_too_far_behind_the_turns_takes_a_new_slot(pacer):
    clock = FakeClock()
    st = workflow.pace(copied_with_pending_deletion(), pacer, clock)
    pacer.store.values[f"{workflow.DELETE_ACTION}#call"] = clock.t + 40.0
    deleter = FakeDeleter(clock)
    with pytest.raises(SlotMissed, match="DeleteImageSet for the slot"):
        workflow.delete_source(st, deleter, pacer, clock)
    assert deleter.deleted == []
