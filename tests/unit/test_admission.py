"""Admission (issue #13): the pure decisions — horizon, lanes, start turns, deferral delays, tickets, the age limit."""

from __future__ import annotations

import json
import random

import pytest

from hicopy.domain.admission import Admission, AdmissionPolicy, Ticket
from hicopy.domain.pacing import COPY_ACTION, InMemoryPaceStore, Pacer
from hicopy.domain.ports import PaceKey
from hicopy.errors import BacklogExpired
from tests.support.fakes import FakeClock


def _admission(booked: float = 0.0, clock: FakeClock | None = None, **policy: float) -> Admission:
    store = InMemoryPaceStore()
    if booked:
        store.values[PaceKey(COPY_ACTION)] = (clock or FakeClock()).now() + booked
    return Admission(store, copy_rate=0.25, policy=AdmissionPolicy(**policy), rng=random.Random(1))  # type: ignore[arg-type]


def test_an_empty_schedule_admits() -> None:
    clock = FakeClock()
    decision = _admission().decide("bulk", Ticket("m-1", clock.now()), clock)
    assert decision.admitted and decision.horizon == 0.0


def test_the_horizon_is_what_pace_reserved() -> None:
    clock, store = FakeClock(), InMemoryPaceStore()
    pacer, admission = Pacer(store, rate=0.25), Admission(store, copy_rate=0.25)
    for _ in range(10):
        pacer.reserve(COPY_ACTION, clock.now())
    assert admission.horizon(clock.now()) == pytest.approx(10 * 4.12)


def test_a_booked_schedule_defers_bulk_but_admits_interactive() -> None:
    clock = FakeClock()
    admission = _admission(booked=300.0, clock=clock)
    ticket = Ticket("m-1", clock.now())
    bulk = admission.decide("bulk", ticket, clock)
    assert not bulk.admitted and bulk.ticket == Ticket("m-1", clock.now(), 1) and 15 <= bulk.delay <= 30
    assert admission.decide("interactive", ticket, clock).admitted


def test_an_interactive_job_waits_too_beyond_its_window() -> None:
    clock = FakeClock()
    decision = _admission(booked=1000.0, clock=clock).decide("interactive", Ticket("m-1", clock.now()), clock)
    assert not decision.admitted and decision.delay == 10


def test_bulk_delays_double_up_to_sqs_maximum() -> None:
    clock = FakeClock()
    admission = _admission(booked=3600.0, clock=clock)
    delays = [admission.decide("bulk", Ticket("m", clock.now(), n), clock).delay for n in range(12)]
    assert delays[0] <= 30 and 450 <= delays[-1] <= 900 and max(delays) <= 900
    assert delays[5] > delays[1]


def test_older_jobs_are_admitted_first() -> None:
    clock = FakeClock()
    admission = _admission(booked=80.0, clock=clock)  # beyond the 60 s bulk window
    assert not admission.decide("bulk", Ticket("young", clock.now()), clock).admitted
    assert admission.decide("bulk", Ticket("old", clock.now() - 86400), clock).admitted
    policy = AdmissionPolicy()
    ages = [0, 60, 3600, 86400, 7 * 86400, 14 * 86400, 30 * 86400]
    windows = [policy.window("bulk", a) for a in ages]
    assert windows == sorted(windows) and windows[0] == 60 and windows[-1] == 180


def test_starts_are_paced_to_keep_reads_within_quota() -> None:
    """2 starts/s, burst 5: the 6th start at the same instant waits its turn (0.5 s) in the consumer."""
    clock = FakeClock()
    admission = _admission()
    for n in range(6):
        assert admission.decide("bulk", Ticket(f"m-{n}", clock.now()), clock).admitted
    assert clock.slept == [pytest.approx(0.5)]


def test_a_start_that_would_wait_too_long_is_deferred() -> None:
    clock = FakeClock()
    admission = _admission(max_start_wait=0.0)
    results = [admission.decide("bulk", Ticket(f"m-{n}", clock.now()), clock).admitted for n in range(6)]
    assert results == [True] * 5 + [False] and clock.slept == []


def test_past_the_retention_the_job_is_rejected() -> None:
    clock = FakeClock()
    with pytest.raises(BacklogExpired, match="14 days"):
        _admission().decide("bulk", Ticket("m", clock.now() - 14 * 86400 - 1), clock)


def test_ticket_round_trip_and_clamping() -> None:
    ticket = Ticket("m-1", 1_800_000_000.5, 3)
    assert Ticket.of(message_id="m-9", sent_at=1_900_000_000.0, attribute=ticket.attribute()) == ticket
    # a first-seen time later than the message itself is clamped (a job cannot be made younger)
    assert Ticket.of(message_id="m-9", sent_at=1_700_000_000.0, attribute=ticket.attribute()).first_seen == 1.7e9
    for garbage in [
        "",
        "{",
        "[]",
        json.dumps({"messageId": "x"}),
        json.dumps({**json.loads(ticket.attribute()), "firstSeen": "nan"}),
        json.dumps({**json.loads(ticket.attribute()), "deferrals": -1}),
    ]:
        assert Ticket.of(message_id="m-9", sent_at=5.0, attribute=garbage) == Ticket("m-9", 5.0, 0), garbage


def test_drain_time_at_the_configured_rate() -> None:
    assert _admission().drain_seconds(900) == pytest.approx(3600 * 1.03)


@pytest.mark.parametrize("stored", ["corrupt", float("inf"), 30 * 24 * 3600.0])
def test_a_corrupt_or_absurd_schedule_item_does_not_stall_the_queue(stored: object) -> None:
    """A pacing item no admission could have booked (the wrong type, not finite, days ahead) is not a backlog: the
    job is admitted and Pace repairs the item when it reserves (deferring every job on it would stall the queue)."""
    from hicopy.domain.ports import CorruptPaceValue

    clock, store = FakeClock(), InMemoryPaceStore()
    value = CorruptPaceValue(stored) if isinstance(stored, str) else clock.now() + float(stored)  # type: ignore[arg-type]
    store.values[PaceKey(COPY_ACTION)] = value
    admission = Admission(store, copy_rate=0.25, rng=random.Random(1))
    assert admission.horizon(clock.now()) == 0.0
    assert admission.decide("bulk", Ticket("m-1", clock.now()), clock).admitted


def test_a_sender_written_ticket_nested_too_deep_is_ignored_not_a_crash() -> None:
    """``hicopyAdmission`` is a message attribute any sender can write: one nested 1,500 levels deep must not raise
    RecursionError out of the consumer (the message would be retried into the DLQ with no rejection event)."""
    deep = "[" * 1500 + "]" * 1500
    assert Ticket.of(message_id="m-1", sent_at=100.0, attribute=deep) == Ticket("m-1", 100.0)
