"""AwaitCopy's failures and Publish: the one terminal event, with the reason a failed task left."""

import json

import pytest

from hicopy.contract import FAILED, SUCCEEDED
from hicopy.domain.awaiting import await_copy
from hicopy.domain.backoff import Backoff
from hicopy.domain.outcome import outcome_event, publish_outcome
from hicopy.domain.planning import prepare
from hicopy.domain.state import Awaiting, SfnError
from hicopy.domain.submission import submit
from hicopy.errors import CopyFailed, CopyStillInProgress
from tests.support.contracts import assert_valid_event
from tests.support.fakes import FakeClock, FakePublishedMarker, FakePublisher, FakeSubmissions
from tests.unit.workflow_support import BACKOFF, DS, DST, state


def test_copy_failed_surfaces_the_service_message_in_the_failure_event(imaging, pacer):
    clock = FakeClock()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    st = submit(st, imaging, FakeSubmissions(), pacer, clock)
    msg = "INVALID_REQUEST:  Series of SourceImageSet and DestinationImageSet don't match."
    imaging.finish(DST, "COPY_FAILED", msg)
    with pytest.raises(CopyFailed) as exc:
        await_copy(
            st.model_copy(update={"awaiting": Awaiting(checks=2, waitSeconds=10)}), imaging, clock, backoff=BACKOFF
        )
    cause = json.dumps({"errorMessage": str(exc.value), "errorType": "CopyFailed"})
    failed = st.model_copy(update={"error": SfnError(Error="CopyFailed", Cause=cause)})
    detail_type, detail = outcome_event(failed, clock, "arn:exec")
    assert detail_type == FAILED and detail["reason"] == {"code": "CopyFailed", "message": msg}
    assert detail["statusChecks"] == 3 and detail["failedChunk"] == 0 and detail["chunksCompleted"] == 0
    assert_valid_event(detail_type, detail)


def test_failure_before_planning_still_produces_a_valid_event():
    st = state().model_copy(update={"error": SfnError(Error="States.Timeout", Cause="timed out")})
    detail_type, detail = outcome_event(st, FakeClock(), None)
    assert detail_type == FAILED and detail["reason"]["code"] == "Timeout" and detail["chunks"] == 0
    assert_valid_event(detail_type, detail)


def test_publish_outcome_puts_exactly_one_event(imaging):
    pub = FakePublisher()
    st = state().model_copy(update={"error": SfnError(Error="ImageSetNotFound", Cause="gone")})
    publish_outcome(st, pub, FakeClock(), None)
    assert len(pub.events) == 1 and pub.events[0][1]["reason"]["code"] == "ImageSetNotFound"


def test_a_retried_or_failure_path_publish_never_sends_a_second_event():
    pub, marker = FakePublisher(), FakePublishedMarker()
    ok = state()
    assert publish_outcome(ok, pub, FakeClock(), None, marker) == SUCCEEDED
    failed = ok.model_copy(update={"error": SfnError(Error="RuntimeError", Cause="crashed after publishing")})
    assert publish_outcome(failed, pub, FakeClock(), None, marker) is None
    assert [t for t, _ in pub.events] == [SUCCEEDED] and marker.published == {"job-1": SUCCEEDED}


def _failed(st, exc, error):
    cause = json.dumps({"errorMessage": str(exc), "errorType": error})
    return st.model_copy(update={"error": SfnError(Error=error, Cause=cause)})


def test_a_failed_merge_reports_the_copy_failed_version_it_produced_not_the_old_one(imaging, pacer):
    clock = FakeClock()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    before = st.destination.versionId
    st = submit(st, imaging, FakeSubmissions(), pacer, clock)
    produced = st.submission.destination.versionId
    st = await_copy(st, imaging, clock, backoff=BACKOFF)  # the first wait
    imaging.finish(DST, "COPY_FAILED", "INVALID_REQUEST: nope")
    with pytest.raises(CopyFailed) as exc:
        await_copy(st, imaging, clock, backoff=BACKOFF)
    _, detail = outcome_event(_failed(st, exc.value, "CopyFailed"), clock, None)
    assert produced != before
    assert detail["destination"] == {"imageSetId": DST, "versionId": produced}


def test_a_wait_budget_that_runs_out_counts_the_status_checks_it_made(imaging, pacer):
    clock = FakeClock()
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    st = submit(st, imaging, FakeSubmissions(), pacer, clock)
    budget = Backoff(first=5, rate=2.0, cap=120, max_attempts=6)
    # six waits spent the budget; six checks found it copying
    spent = Awaiting(checks=6, waitSeconds=60, waits=6, budgetSeconds=budget.budget_seconds)
    st = st.model_copy(update={"awaiting": spent})
    with pytest.raises(CopyStillInProgress) as exc:  # the 7th check, after the last wait the budget allows
        await_copy(st, imaging, clock, backoff=budget)
    _, detail = outcome_event(_failed(st, exc.value, "CopyStillInProgress"), clock, None)
    assert detail["reason"]["code"] == "CopyWaitBudgetExhausted" and detail["statusChecks"] == 7
    assert "is still" in detail["reason"]["message"] and "{" not in detail["reason"]["message"]
    assert_valid_event(FAILED, detail)
