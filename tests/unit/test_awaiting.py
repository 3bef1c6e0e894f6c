"""AwaitCopy's schedule: one status check, then a wait of the next backoff step (full jitter), bounded budget."""

from __future__ import annotations

import random

import pytest

from hicopy.domain.awaiting import await_copy
from hicopy.domain.backoff import Backoff, nominal_delay
from hicopy.domain.planning import prepare
from hicopy.domain.state import Awaiting
from hicopy.domain.submission import submit
from hicopy.errors import CopyFailed, CopyStillInProgress
from tests.support.fakes import FakeClock, FakeSubmissions
from tests.unit.workflow_support import BACKOFF, DS, DST, state


@pytest.fixture
def copying(imaging, pacer):
    st = prepare(state(destination={"imageSetId": DST}), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    return submit(st, imaging, FakeSubmissions(), pacer, FakeClock())


def test_each_wait_is_the_next_backoff_step_with_full_jitter(copying, imaging):
    rng = random.Random(7)
    st, waits = copying, []
    for check in range(1, 9):
        st = await_copy(st, imaging, FakeClock(), backoff=BACKOFF, rng=rng.random)
        assert st.awaiting is not None and st.awaiting.checks == check
        nominal = nominal_delay(check - 1, 5, 2.0, 120)
        assert 1 <= st.awaiting.waitSeconds <= max(1, nominal)
        waits.append(st.awaiting.waitSeconds)
    assert len(set(waits)) > 1  # jittered, not fixed
    assert await_copy(st, imaging, FakeClock(), backoff=BACKOFF, rng=lambda: 1.0).awaiting.waitSeconds == 120  # cap


def test_the_wait_is_a_positive_whole_number_of_seconds(copying, imaging):
    """A callback's TimeoutSecondsPath must be a positive integer: a jitter of 0 waits 1 s."""
    st = await_copy(copying, imaging, FakeClock(), backoff=BACKOFF, rng=lambda: 0.0)
    assert st.awaiting == Awaiting(checks=1, waitSeconds=1)


def test_the_budget_is_the_former_retry_max_attempts(copying, imaging):
    backoff = Backoff(first=5, rate=2.0, cap=120, max_attempts=3)
    st = copying
    for _ in range(3):
        st = await_copy(st, imaging, FakeClock(), backoff=backoff)
    with pytest.raises(CopyStillInProgress, match="after 4 checks"):
        await_copy(st, imaging, FakeClock(), backoff=backoff)  # 1 + MaxAttempts checks, as the Retry gave


def test_copied_records_the_checks_and_clears_the_wait(copying, imaging):
    st = await_copy(copying, imaging, FakeClock(), backoff=BACKOFF)
    imaging.finish(DST)
    done = await_copy(st, imaging, FakeClock(), backoff=BACKOFF)
    assert done.awaiting is None and done.done and done.completed[0].statusChecks == 2


def test_copy_failed_after_a_wake_up_fails_with_the_service_message(copying, imaging):
    st = await_copy(copying, imaging, FakeClock(), backoff=BACKOFF)
    imaging.finish(DST, "COPY_FAILED", "INVALID_REQUEST: nope")
    with pytest.raises(CopyFailed, match="INVALID_REQUEST: nope"):
        await_copy(st, imaging, FakeClock(), backoff=BACKOFF)
