import itertools
import threading

import pytest

from hicopy.domain.pacing import CALL_MARGIN, DEFAULT_MARGIN, InMemoryPaceStore, Pacer, reserve
from hicopy.errors import PacingContention

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
