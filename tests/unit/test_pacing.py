import itertools
import threading

import pytest

from hicopy.domain.pacing import (
    CALL_MARGIN,
    COPY_ACTION,
    DEFAULT_MARGIN,
    MAX_MISSED_SLOTS,
    InMemoryPaceStore,
    Pacer,
    pace,
    reserve,
)
from hicopy.domain.planning import prepare
from hicopy.domain.ports import PaceKey
from hicopy.domain.state import SfnError
from hicopy.domain.submission import submit
from hicopy.errors import PacingContention, SlotMissed
from tests.support.fakes import FakeClock, FakeSubmissions
from tests.unit.workflow_support import DS, state

INTERVAL = 4.0 * (1 + DEFAULT_MARGIN)


def test_first_caller_goes_now_and_the_next_one_interval_later():
    a = reserve(None, 100.0, rate=0.25)
    b = reserve(a.tat, 100.0, rate=0.25)
    assert a.slot == 100.0 and b.slot == pytest.approx(100.0 + INTERVAL)


def test_idle_time_is_not_banked_beyond_the_burst():
    a = reserve(None, 0.0, rate=0.25, burst=2)
    later = reserve(a.tat, 1000.0, rate=0.25, burst=2)  # long idle
    second = reserve(later.tat, 1000.0, rate=0.25, burst=2)
    third = reserve(second.tat, 1000.0, rate=0.25, burst=2)
    assert later.slot == 1000.0 and second.slot == 1000.0  # burst of 2
    assert third.slot == pytest.approx(1000.0 + INTERVAL)


def test_slots_never_exceed_the_rate_over_any_window():
    tat, slots = None, []
    for now in [0, 0, 0.5, 1, 1, 30, 30, 30, 31]:
        r = reserve(tat, now, rate=0.25)
        tat = r.tat
        slots.append(r.slot)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= INTERVAL - 1e-9


class AtomicStore(InMemoryPaceStore):
    """compare-and-set is atomic in DynamoDB (a conditional write); model that for racing threads."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def compare_and_set(self, key, expected, new):
        with self.lock:
            return super().compare_and_set(key, expected, new)


def test_concurrent_reservations_are_fair_and_distinct():
    pacer = Pacer(AtomicStore(), rate=0.25)
    slots: list[float] = []

    def worker():
        for _ in range(25):
            slots.append(pacer.reserve("CopyImageSet", 0.0).slot)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(slots)
    assert len(set(ordered)) == 200  # every execution got its own slot
    assert ordered[-1] == pytest.approx(199 * INTERVAL)  # no gaps: the quota is used fully


def test_contention_is_a_named_retryable_error():
    class Never(InMemoryPaceStore):
        def compare_and_set(self, key, expected, new):
            return False

    with pytest.raises(PacingContention):
        Pacer(Never(), rate=1).reserve("k", 0.0, max_tries=3)


CALL_INTERVAL = 4.0 * (1 + CALL_MARGIN)


def test_a_turn_is_given_to_one_caller_and_the_others_are_told_how_long_to_wait():
    pacer = Pacer(InMemoryPaceStore(), rate=0.25)
    assert pacer.claim("CopyImageSet", 100.0) == 0.0
    assert pacer.claim("CopyImageSet", 100.0) == pytest.approx(CALL_INTERVAL)
    assert pacer.claim("CopyImageSet", 103.0) == pytest.approx(CALL_INTERVAL - 3.0)
    assert pacer.claim("CopyImageSet", 100.0 + CALL_INTERVAL) == 0.0
    assert pacer.claim("DeleteImageSet", 100.0) == 0.0  # one account-wide turn per action
    assert pacer.reserve("CopyImageSet", 100.0).slot == 100.0  # turns do not consume slots (separate TAT)


def test_racing_callers_never_share_a_turn():
    """Many Lambdas claim at once (threads on an atomic compare-and-set, as DynamoDB's conditional write): each turn
    goes to exactly one, and the admitted calls are never closer than the call interval."""
    lock = threading.Lock()
    now = [0.0]
    pacer = Pacer(AtomicStore(), rate=0.25)
    admitted: list[float] = []
    barrier = threading.Barrier(8)

    def caller():
        for _ in range(30):
            barrier.wait()
            if pacer.claim("CopyImageSet", now[0]) == 0.0:
                with lock:
                    admitted.append(now[0])
            barrier.wait()
            if threading.current_thread() is threads[0]:
                now[0] += 1.0  # virtual time advances 1 s per round, for everyone
            barrier.wait()

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == len(set(admitted))  # one caller per turn, never two at the same moment
    assert min(b - a for a, b in itertools.pairwise(admitted)) >= CALL_INTERVAL - 1e-9
    assert admitted == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]  # each turn went to the first second it was free


def test_calls_may_come_closer_than_slots_so_a_late_schedule_catches_up():
    with pytest.raises(ValueError):
        Pacer(InMemoryPaceStore(), rate=0.25, margin=0.01, call_margin=0.02)
    assert CALL_MARGIN < DEFAULT_MARGIN


# --- the workflow's side: the Pace task and the turn Submit takes -----------------------------------------------
def test_pace_spaces_submissions_and_submit_sleeps_the_remainder(imaging, pacer):
    clock = imaging.clock = FakeClock()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    a = pace(st, pacer, clock)
    b = pace(st, pacer, clock)
    c = pace(st, pacer, clock)
    assert [a.pace.slot, b.pace.slot, c.pace.slot] == pytest.approx([clock.t, clock.t + 4.12, clock.t + 8.24])  # +3 %
    # The Wait state ends DISPATCH_LEAD (2 s) early, at most 1 s more: Submit does its reads, then sleeps the rest.
    assert (a.pace.waitSeconds, b.pace.waitSeconds, c.pace.waitSeconds) == (0, 2, 6)
    submit(a, imaging, FakeSubmissions(), pacer, clock)
    clock.t += b.pace.waitSeconds
    submit(b, imaging, FakeSubmissions(), pacer, clock)
    assert clock.slept == [pytest.approx(2.12)] and len(imaging.copies) == 2
    assert imaging.copy_times == [a.pace.slot, pytest.approx(b.pace.slot)]


def test_a_late_caller_delays_the_next_one_instead_of_throttling_it(imaging, pacer):
    """The turn: calls never come closer than the quota allows (+2 %), whatever the slots said."""
    clock = imaging.clock = FakeClock()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    a, b = pace(st, pacer, clock), pace(st, pacer, clock)
    clock.t = a.pace.slot + 3.0  # a's Lambda started 3 s late (a cold start), b is on time after it
    submit(a, imaging, FakeSubmissions(), pacer, clock)
    clock.t = b.pace.slot
    submit(b, imaging, FakeSubmissions(), pacer, clock)
    first, second = imaging.copy_times
    assert second - first == pytest.approx(4.08) and second > b.pace.slot


def test_a_caller_too_far_behind_the_turns_takes_a_new_slot(imaging, pacer):
    clock, subs = FakeClock(), FakeSubmissions()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    mine = pace(st, pacer, clock)
    # Late calls of other executions took the account's turns up to 40 s from now (the stored turn TAT).
    pacer.store.values[PaceKey(COPY_ACTION, turn=True)] = clock.t + 40.0
    with pytest.raises(SlotMissed, match=r"would wait 40\.0 s for the account's next turn"):
        submit(mine, imaging, subs, pacer, clock)
    assert imaging.copies == [] and subs.records == {}  # not called, intent abandoned: the retry starts afresh
    # The Catch puts the error in $.missedSlot; Pace counts the miss and reserves a new slot.
    missed = mine.model_copy(update={"missedSlot": SfnError(Error="SlotMissed", Cause="...")})
    again = pace(missed, pacer, clock)
    assert again.pace.missed == 1 and again.missedSlot is None and again.pace.slot > mine.pace.slot
    assert pace(again, pacer, clock).pace.missed == 0  # a normal Pace (next chunk) starts counting afresh


def test_a_chunk_that_keeps_missing_its_turn_fails(imaging, pacer):
    clock = FakeClock()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    st = pace(st, pacer, clock)
    for n in range(1, MAX_MISSED_SLOTS + 1):
        st = pace(st.model_copy(update={"missedSlot": SfnError(Error="SlotMissed", Cause="")}), pacer, clock)
        assert st.pace.missed == n
    with pytest.raises(SlotMissed, match="missed its turn 9 times in a row"):
        pace(st.model_copy(update={"missedSlot": SfnError(Error="SlotMissed", Cause="")}), pacer, clock)
