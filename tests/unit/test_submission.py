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
    with pytest.raises(ImageSetConflict, match="to finish copying to tell whether it is this job's copy"):
        submit(st, imaging, subs, pacer, clock)  # version 8 still COPYING: only its metadata tells whose it is
    merged(imaging, SOURCE_SOPS)
    again = submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 1 and again.submission.replayed
    assert again.submission.destination.versionId == "8" and subs.records[("job-1", 0)].status == "SUBMITTED"


SOURCE_SOPS = {f"{S1}.{n}": 1 for n in range(1, 6)}


def merged(imaging, added, status="COPIED", message=None):
    """The destination's version 8 completes holding version 7's instances plus ``added`` (Series S1)."""
    dst = imaging.sets[DST]
    if dst.version == 7:
        dst.version = 8  # another writer's merge (not through copy_image_set)
    dst.metas[8] = metadata({"1.2.3.4": {"1.2.3.4.1": 1}, S1: added})  # version 7 holds 1.2.3.4.1
    imaging.finish(DST, status, message)


def test_retry_never_adopts_another_writers_merge_into_the_same_destination(imaging, pacer):
    """The earlier attempt died before its call went out; meanwhile another writer merged other instances into the
    destination: version 8 is theirs. Adopting it would report a copy that never happened."""
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    merged(imaging, {"1.2.840.77.1": 1, "1.2.840.77.2": 1})
    with pytest.raises(SubmitOutcomeUnknown) as exc:
        submit(st, imaging, subs, pacer, clock)
    assert "version 8 of destination image set" in str(exc.value)
    assert "it holds 3 instances, 1 of the previous version's 1 and 0 of this chunk's 5 new ones, and 2 others" in str(
        exc.value
    )
    assert imaging.copies == [] and subs.records[("job-1", 0)].status == "SUBMITTING"


def test_retry_never_adopts_a_merge_holding_only_part_of_its_chunk(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    merged(imaging, dict(list(SOURCE_SOPS.items())[:3]))  # someone merged 3 of our 5 instances
    with pytest.raises(SubmitOutcomeUnknown, match="3 of this chunk's 5 new ones, and 0 others"):
        submit(st, imaging, subs, pacer, clock)
    assert imaging.copies == []


def test_retry_never_adopts_a_failed_merge_it_cannot_prove_is_its_own(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    merged(imaging, {}, status="COPY_FAILED", message="INVALID_REQUEST: Series don't match.")
    with pytest.raises(SubmitOutcomeUnknown, match=r"is COPY_FAILED \(INVALID_REQUEST: Series don't match.\)"):
        submit(st, imaging, subs, pacer, clock)
    assert imaging.copies == []


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


def test_retry_never_adopts_a_copy_holding_more_than_its_chunk(imaging, pacer):
    """Another application copied the whole source while this job copies a subset: that copy holds this job's
    instances and more. It is not this job's; the earlier call provably made no copy of exactly these: call again."""
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(instances=[f"{S1}.2"]), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    whole_st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    whole = submit(whole_st, imaging, FakeSubmissions(), pacer, clock)
    complete(imaging, whole.submission.destination.imageSetId)
    again = submit(st, imaging, subs, pacer, clock)
    assert not again.submission.replayed and len(imaging.copies) == 2
    assert again.submission.destination.imageSetId != whole.submission.destination.imageSetId


def test_retry_never_adopts_a_copy_created_before_its_record(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    imaging.clock = clock
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    earlier = lost_copy(imaging, st, clock, pacer)  # the same instances, copied by someone else just before
    complete(imaging, earlier.submission.destination.imageSetId)
    clock.t += 1.0
    crashed_after_call(imaging, subs, st, clock, pacer)
    again = submit(st, imaging, subs, pacer, clock)
    assert not again.submission.replayed and len(imaging.copies) == 2


def test_retry_never_adopts_a_copy_another_job_claimed(imaging, pacer):
    """Two jobs copy the same instances into new image sets; job-2's copy went out and was recorded (and claimed),
    job-1's attempt died before its call: job-2's image set holds exactly job-1's instances, but it is job-2's."""
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    other = st.model_copy(update={"job": st.job.model_copy(update={"jobId": "job-2"})})
    theirs = submit(other, imaging, subs, pacer, clock)  # the same store: its copy claims its new image set
    complete(imaging, theirs.submission.destination.imageSetId)
    assert subs.claims == {theirs.submission.destination.imageSetId: ("job-2", 0)}
    with pytest.raises(SubmitOutcomeUnknown, match="holding this chunk's instances is another job's"):
        submit(st, imaging, subs, pacer, clock)
    assert len(imaging.copies) == 1


def test_an_adopted_new_image_set_is_claimed_by_its_job(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    crashed_after_call(imaging, subs, st, clock, pacer)
    lost = lost_copy(imaging, st, clock, pacer)
    complete(imaging, lost.submission.destination.imageSetId)
    submit(st, imaging, subs, pacer, clock)
    assert subs.claims == {lost.submission.destination.imageSetId: ("job-1", 0)}


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
    with pytest.raises(ImageSetConflict):
        submit(st, imaging, subs, pacer, clock)  # the copy is still running: wait for it to tell whose it is
    merged(imaging, SOURCE_SOPS)
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
