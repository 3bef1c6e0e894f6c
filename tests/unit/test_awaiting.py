"""AwaitCopy's schedule: the first wait right after Submit (no check), then a status check after each wait; the
waits are backoff steps with full jitter (polling) or long waits ended by copy events while the data store's events
flow; one budget for both."""

from __future__ import annotations

import random
from typing import Any

import pytest

from hicopy.domain.awaiting import await_copy, checks_status
from hicopy.domain.backoff import Backoff, nominal_delay
from hicopy.domain.planning import prepare
from hicopy.domain.state import Awaiting
from hicopy.domain.submission import submit
from hicopy.errors import AccessDenied, CopyFailed, CopyStillInProgress, ServiceInternalError
from tests.support.fakes import FakeClock, FakeSubmissions
from tests.unit.workflow_support import BACKOFF, DS, DST, state

ON_EVENTS = Backoff(first=5, rate=2.0, cap=120, max_attempts=BACKOFF.max_attempts, event_wait=90, events_window=900)


class Counting:
    """The fake HealthImaging, counting the status checks (GetImageSet)."""

    def __init__(self, imaging: Any) -> None:
        self.imaging, self.checks = imaging, 0

    def get_image_set(self, *args: Any) -> Any:
        self.checks += 1
        return self.imaging.get_image_set(*args)


class Heard:
    def __init__(self, at: float | None = None, error: Exception | None = None) -> None:
        self.at, self.error = at, error

    def heard(self, datastore_id: str, now: float) -> None:
        self.at = now

    def last_heard(self, datastore_id: str) -> float | None:
        if self.error is not None:
            raise self.error
        return self.at


@pytest.fixture
def copying(imaging, pacer):
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    return submit(st, imaging, FakeSubmissions(), pacer, FakeClock())


def test_right_after_submit_the_first_wait_comes_without_a_status_check(copying, imaging):
    counting = Counting(imaging)
    st = await_copy(copying, counting, FakeClock(), backoff=BACKOFF, rng=lambda: 1.0)
    assert counting.checks == 0
    assert st.awaiting == Awaiting(checks=0, waitSeconds=5, waits=1, budgetSeconds=2.5, onEvents=False)
    st = await_copy(st, counting, FakeClock(), backoff=BACKOFF, rng=lambda: 1.0)
    assert counting.checks == 1 and st.awaiting is not None and st.awaiting.checks == 1


def test_each_wait_is_the_next_backoff_step_with_full_jitter(copying, imaging):
    rng = random.Random(7)
    st, waits = copying, []
    for n in range(8):
        st = await_copy(st, imaging, FakeClock(), backoff=BACKOFF, rng=rng.random)
        assert st.awaiting is not None and st.awaiting.checks == n and st.awaiting.waits == n + 1
        assert 1 <= st.awaiting.waitSeconds <= max(1, nominal_delay(n, 5, 2.0, 120))
        waits.append(st.awaiting.waitSeconds)
    assert len(set(waits)) > 1  # jittered, not fixed
    assert await_copy(st, imaging, FakeClock(), backoff=BACKOFF, rng=lambda: 1.0).awaiting.waitSeconds == 120  # cap


def test_the_wait_is_a_positive_whole_number_of_seconds(copying, imaging):
    """A callback's TimeoutSecondsPath must be a positive integer: a jitter of 0 waits 1 s."""
    st = await_copy(copying, imaging, FakeClock(), backoff=BACKOFF, rng=lambda: 0.0)
    assert st.awaiting is not None and st.awaiting.waitSeconds == 1


def test_the_budget_is_the_former_retry_max_attempts(copying, imaging):
    """Polling spends the budget after exactly MaxAttempts waits, as the Retry did (the check right after Submit,
    which the Retry made, is skipped)."""
    backoff = Backoff(first=5, rate=2.0, cap=120, max_attempts=3)
    st = copying
    for _ in range(3):
        st = await_copy(st, imaging, FakeClock(), backoff=backoff)
    assert st.awaiting is not None and st.awaiting.waits == 3
    with pytest.raises(CopyStillInProgress, match="after 3 checks"):
        await_copy(st, imaging, FakeClock(), backoff=backoff)


def test_copied_records_the_checks_and_clears_the_wait(copying, imaging):
    st = await_copy(copying, imaging, FakeClock(), backoff=BACKOFF)
    imaging.finish(DST)
    done = await_copy(st, imaging, FakeClock(), backoff=BACKOFF)
    assert done.awaiting is None and done.done and done.completed[0].statusChecks == 1


def test_copy_failed_after_a_wake_up_fails_with_the_service_message(copying, imaging):
    st = await_copy(copying, imaging, FakeClock(), backoff=BACKOFF)
    imaging.finish(DST, "COPY_FAILED", "INVALID_REQUEST: nope")
    with pytest.raises(CopyFailed, match="INVALID_REQUEST: nope"):
        await_copy(st, imaging, FakeClock(), backoff=BACKOFF)


def test_while_the_data_stores_copy_events_flow_each_wait_is_the_event_wait(copying, imaging):
    """An event heard lately: the waits are long (the event ends them), whatever the backoff step; one status
    check per copy when the event comes."""
    clock = FakeClock()
    heard, counting = Heard(at=clock.now() - 60), Counting(imaging)
    st = await_copy(copying, counting, clock, backoff=ON_EVENTS, heard=heard, rng=lambda: 1.0)
    assert st.awaiting == Awaiting(checks=0, waitSeconds=90, waits=1, budgetSeconds=90.0, onEvents=True)
    st = await_copy(st, counting, clock, backoff=ON_EVENTS, heard=heard, rng=lambda: 1.0)  # timed out: lost event
    assert st.awaiting is not None and st.awaiting.waitSeconds == 90 and st.awaiting.budgetSeconds == 180.0
    imaging.finish(DST)
    done = await_copy(st, counting, clock, backoff=ON_EVENTS, heard=heard)
    assert done.done and counting.checks == 2


@pytest.mark.parametrize(
    ("heard", "why"),
    [
        (Heard(at=None), "never heard"),
        (Heard(at=FakeClock().now() - 901), "heard before the window"),
        (Heard(error=ServiceInternalError("DynamoDB 500")), "the read failed (a hint: polling)"),
    ],
)
def test_without_events_heard_lately_the_waits_are_the_backoff_steps(copying, imaging, heard, why):
    st = await_copy(copying, imaging, FakeClock(), backoff=ON_EVENTS, heard=heard, rng=lambda: 1.0)
    assert st.awaiting is not None and (st.awaiting.waitSeconds, st.awaiting.onEvents) == (5, False), why


def test_an_event_wait_of_zero_always_polls(copying, imaging):
    never = Backoff(first=5, rate=2.0, cap=120, max_attempts=10, event_wait=0, events_window=900)
    st = await_copy(copying, imaging, FakeClock(), backoff=never, heard=Heard(at=FakeClock().now()), rng=lambda: 1.0)
    assert st.awaiting is not None and not st.awaiting.onEvents and st.awaiting.waitSeconds == 5


def test_access_denied_reading_the_events_record_is_not_hidden(copying, imaging):
    with pytest.raises(AccessDenied):
        await_copy(copying, imaging, FakeClock(), backoff=ON_EVENTS, heard=Heard(error=AccessDenied("no GetItem")))


def test_waits_on_events_spend_the_same_budget(copying, imaging):
    """The budget is the expected total of MaxAttempts polling waits; waits on events charge their length, so a copy
    whose events never come is given up after about the same time, in fewer checks."""
    clock = FakeClock()
    backoff = Backoff(first=5, rate=2.0, cap=120, max_attempts=8, event_wait=90, events_window=10**9)
    heard, counting, st, waits = Heard(at=clock.now()), Counting(imaging), copying, 0
    with pytest.raises(CopyStillInProgress, match="after 3 checks"):
        while True:
            st = await_copy(st, counting, clock, backoff=backoff, heard=heard)
            waits += 1
    assert backoff.budget_seconds == 2.5 + 5 + 10 + 20 + 40 + 60 + 60 + 60
    assert st.awaiting is not None and st.awaiting.budgetSeconds >= backoff.budget_seconds
    # ceil(257.5 / 90) = 3 waits of 90 s; the check after the third finds the budget spent (polling: 8 checks)
    assert waits == 3 and counting.checks == 3


def test_verify_always_checks_even_before_the_first_wait(copying, imaging):
    counting = Counting(imaging)
    imaging.finish(DST)
    done = await_copy(copying, counting, FakeClock(), backoff=BACKOFF, verify=True)
    assert counting.checks == 1 and done.done


def test_checks_status_tells_which_invocations_read_the_image_set(copying, imaging):
    """The one home of "the first call after Submit reads nothing", for the bench and the fault hooks."""
    counting = Counting(imaging)
    first = {"state": copying.model_dump()}
    waiting = await_copy(copying, counting, FakeClock(), backoff=BACKOFF)
    assert not checks_status(first) and counting.checks == 0
    assert checks_status({"state": waiting.model_dump()}) and checks_status({**first, "verify": True})
