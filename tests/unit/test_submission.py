"""Submit: at most one CopyImageSet call per (job, chunk), whatever crashed or was retried."""

import pytest

from hicopy.domain.pacing import pace
from hicopy.domain.planning import MAX_SOURCE_REPLANS, prepare
from hicopy.domain.state import ImageSetVersion
from hicopy.domain.submission import submit
from hicopy.errors import ImageSetConflict, ServiceThrottled, StaleVersion, SubmitOutcomeUnknown
from tests.support.fakes import FakeClock, FakeSubmissions, metadata
from tests.unit.workflow_support import DS, DST, S1, SRC, state


def test_submit_never_copies_twice_for_the_same_chunk(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    first = submit(st, imaging, subs, pacer, clock)
    again = submit(st, imaging, subs, pacer, clock)  # e.g. the Lambda was retried after the call
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
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    submit(st, imaging, FakeSubmissions(), pacer, clock)  # the lost call (another store: it really happened)
    again = submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 1 and again.submission.replayed
    assert again.submission.destination.versionId == "8" and subs.records[("job-1", 0)].status == "SUBMITTED"


def lost_copy(imaging, st, clock, pacer):
    """The call an earlier attempt made (recorded in another store: it really happened)."""
    return submit(st, imaging, FakeSubmissions(), pacer, clock)


def complete(imaging, image_set_id):
    imaging.sets[image_set_id].meta = imaging.sets[SRC].meta
    imaging.finish(image_set_id)


def test_retry_after_a_crash_adopts_the_new_image_set_holding_its_instances(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    lost = lost_copy(imaging, st, clock, pacer)
    with pytest.raises(ImageSetConflict, match="waiting for copies in flight"):
        submit(st, imaging, subs, pacer, clock)  # still COPYING: cannot tell yet whether it is ours
    complete(imaging, lost.submission.destination.imageSetId)
    again = submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 1 and again.submission.destination == lost.submission.destination


def test_retry_after_a_crash_ignores_other_copies(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    other = lost_copy(imaging, st, clock, pacer)  # someone else's copy of other data, created meanwhile
    imaging.finish(other.submission.destination.imageSetId)  # COPIED, but without our instances
    again = submit(st, imaging, subs, pacer, clock)
    assert not again.submission.replayed and len(imaging.copies) == 2


def test_retry_after_a_crash_before_the_call_calls_once(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)  # ...but the call never reached the service
    again = submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 1 and not again.submission.replayed


def test_ambiguous_crash_refuses_to_guess(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    for _ in range(2):  # two completed copies of the same instances: cannot tell which is ours
        complete(imaging, lost_copy(imaging, st, clock, pacer).submission.destination.imageSetId)
    with pytest.raises(SubmitOutcomeUnknown):
        submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 2


def test_a_lost_response_keeps_the_intent_so_the_retry_reconciles(imaging, pacer):
    from hicopy.errors import ServiceCallInterrupted

    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)

    real_copy = imaging.copy_image_set

    def served_then_lost(request):
        real_copy(request)
        raise ServiceCallInterrupted("CopyImageSet: Read timeout")

    imaging.copy_image_set = served_then_lost
    with pytest.raises(ServiceCallInterrupted):
        submit(st, imaging, subs, pacer, clock)
    imaging.copy_image_set = real_copy
    again = submit(st, imaging, subs, pacer, clock)
    assert again.submission.replayed and len(imaging.copies) == 1


def test_throttled_submit_can_be_retried(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    imaging.fail_with.append(ServiceThrottled("ThrottlingException: slow down"))
    with pytest.raises(ServiceThrottled):
        submit(st, imaging, subs, pacer, clock)
    assert submit(st, imaging, subs, pacer, clock).submission is not None and len(imaging.copies) == 1


def test_a_retried_throttled_call_waits_for_its_turn(imaging, pacer):
    """Throttled by another client in the account: Step Functions retries Submit after a jittered delay, and the
    retry takes a turn like any other call instead of going out at a random moment."""
    clock, subs = FakeClock(), FakeSubmissions()
    imaging.clock = clock
    st = pace(prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000), pacer, clock)
    imaging.fail_with.append(ServiceThrottled("ThrottlingException: slow down"))
    throttled_at = clock.t
    with pytest.raises(ServiceThrottled):
        submit(st, imaging, subs, pacer, clock)
    clock.t += 1.3  # the retrier's jittered delay
    submit(st, imaging, subs, pacer, clock)
    assert imaging.copy_times == [pytest.approx(throttled_at + 4.08)]  # the next turn, not 1.3 s later


# --- a source version bumped between Prepare and Submit (e.g. a study-wide metadata update) ----------------------
def _bump(imaging, image_set_id, times=1):
    """What UpdateImageSetMetadata with includeStudyImageSets does to every primary image set of the study."""
    imaging.sets[image_set_id].version += times


def test_a_source_bumped_by_a_study_wide_update_is_replanned_not_failed(imaging, pacer):
    clock = FakeClock()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    _bump(imaging, SRC)
    out = submit(st, imaging, FakeSubmissions(), pacer, clock)
    assert out.plan.source.versionId == "3" and out.plan.sourceReplans == 1
    assert [c.source_version_id for c in imaging.copies] == ["3"]  # the new latest version


def test_a_job_that_pinned_the_source_version_still_fails_stale(imaging, pacer):
    st = prepare(
        state(source={"imageSetId": SRC, "versionId": "2"}),
        imaging,
        allowed_datastores=frozenset({DS}),
        frame_limit=1000,
    )
    _bump(imaging, SRC)
    with pytest.raises(StaleVersion, match="pinned version 2"):
        submit(st, imaging, FakeSubmissions(), pacer, FakeClock())
    assert imaging.copies == []


def test_a_later_chunk_goes_on_only_if_the_new_version_yields_the_same_chunks(imaging, pacer):
    clock = FakeClock()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=2)  # 5 instances: 3 chunks
    st = st.model_copy(update={"chunkIndex": 1, "destination": ImageSetVersion(imageSetId=DST, versionId="7")})
    _bump(imaging, SRC)
    same = submit(st, imaging, FakeSubmissions(), pacer, clock)
    assert same.plan.source.versionId == "3" and same.plan.chunkCount == 3
    imaging.finish(DST)
    same = same.model_copy(update={"chunkIndex": 2, "submission": None})
    _bump(imaging, SRC)
    fewer = metadata({S1: {f"{S1}.{n}": 1 for n in range(1, 4)}})  # version 4: two instances were removed
    by_version = {"3": imaging.sets[SRC].meta, "4": fewer}
    read = imaging.get_metadata
    imaging.get_metadata = lambda ds, i, v=None: by_version[v] if i == SRC and v in by_version else read(ds, i, v)
    with pytest.raises(StaleVersion, match="no longer yields the chunks"):
        submit(same, imaging, FakeSubmissions(), pacer, clock)


def test_replanning_is_bounded(imaging, pacer):
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    for _ in range(MAX_SOURCE_REPLANS):
        _bump(imaging, SRC)
        st = submit(st, imaging, FakeSubmissions(), pacer, FakeClock()).model_copy(update={"submission": None})
    _bump(imaging, SRC)
    with pytest.raises(StaleVersion, match="changed 4 times"):
        submit(st, imaging, FakeSubmissions(), pacer, FakeClock())
