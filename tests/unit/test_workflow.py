"""The copy workflow step by step, as the state machine runs it: Prepare, then Pace, Submit and AwaitCopy per chunk."""

import json

from hicopy.contract import SUCCEEDED
from hicopy.domain.awaiting import await_copy
from hicopy.domain.outcome import outcome_event
from hicopy.domain.pacing import InMemoryPaceStore, Pacer, pace
from hicopy.domain.planning import prepare
from hicopy.domain.submission import submit
from tests.support.contracts import assert_valid_event
from tests.support.fakes import FakeClock, FakeSubmissions
from tests.unit.workflow_support import BACKOFF, DS, DST, S1, state


def run_chunks(st, imaging, clock, subs=None):
    subs = subs or FakeSubmissions()
    pacer = Pacer(InMemoryPaceStore(), rate=0.25)
    while not st.done:
        st = pace(st, pacer, clock)
        st = submit(st, imaging, subs, pacer, clock)
        dest = st.submission.destination.imageSetId
        st = await_copy(st, imaging, clock, backoff=BACKOFF)
        assert st.awaiting is not None and st.awaiting.checks == 0  # just submitted: the first wait, no check
        st = await_copy(st, imaging, clock, backoff=BACKOFF)
        assert st.awaiting is not None and st.awaiting.checks == 1  # still copying: wait, then check again
        imaging.finish(dest)
        st = await_copy(st, imaging, clock, backoff=BACKOFF)
        assert st.awaiting is None
    return st


def test_whole_copy_to_a_new_image_set(imaging):
    clock = FakeClock()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    assert st.plan.chunkCount == 1 and st.plan.wholeCopy and st.plan.source.versionId == "2"
    st = run_chunks(st, imaging, clock)
    req = imaging.copies[0]
    assert req.copiable_attributes is None and req.destination_image_set_id is None and req.source_version_id == "2"
    assert st.done and st.completed[0].statusChecks == 2
    detail_type, detail = outcome_event(st, clock, "arn:exec")
    assert detail_type == SUCCEEDED and detail["destination"]["imageSetId"] == st.destination.imageSetId
    assert detail["statusChecks"] == 2 and detail["chunks"] == 1
    assert_valid_event(detail_type, detail)


def test_merge_into_existing_uses_its_fresh_latest_version(imaging):
    clock = FakeClock()
    st = prepare(
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
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=2)
    assert st.plan.chunkCount == 3 and not st.plan.wholeCopy
    st = run_chunks(st, imaging, clock)
    first, *rest = imaging.copies
    assert first.destination_image_set_id is None
    assert {r.destination_image_set_id for r in rest} == {st.destination.imageSetId}
    assert [r.destination_version_id for r in rest] == ["1", "2"]
    _, detail = outcome_event(st, clock, None)
    assert detail["chunks"] == 3 and detail["chunksCompleted"] == 3 and len(detail["completedChunks"]) == 3
