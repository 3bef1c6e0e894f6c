"""Issue #12, items 5 and 8 at unit level: a completed copy is reported completed (AwaitCopy's outage budget and the
Verify step), and pacing is bounded (a slot the execution cannot live to use is refused; a corrupt pacing item is
repaired, never the reason every job fails)."""

from __future__ import annotations

import logging
import random

import pytest

from hicopy.domain.awaiting import MAX_VERIFICATIONS, await_copy
from hicopy.domain.backoff import nominal_delay
from hicopy.domain.outcome import outcome_event
from hicopy.domain.pacing import (
    COPY_ACTION,
    DEADLINE_RESERVE,
    InMemoryPaceStore,
    Pacer,
    pace,
    slot_deadline,
)
from hicopy.domain.planning import prepare
from hicopy.domain.ports import CorruptPaceValue, PaceKey
from hicopy.domain.state import SfnError
from hicopy.domain.submission import submit
from hicopy.errors import CopyFailed, CopyStillInProgress, ServiceInternalError, SlotBeyondDeadline
from infra.state_machine import (
    AWAIT_OUTAGE_SECONDS,
    AWAIT_TRANSIENT_BACKOFF_RATE,
    AWAIT_TRANSIENT_INTERVAL_SECONDS,
    AWAIT_TRANSIENT_MAX_ATTEMPTS,
    AWAIT_TRANSIENT_MAX_DELAY_SECONDS,
)
from tests.support.fakes import FakeClock, FakeSubmissions
from tests.unit.workflow_support import BACKOFF, DS, state

TIMEOUT = 48 * 3600.0
OUTAGE = SfnError(Error="ServiceInternalError", Cause='{"errorMessage": "InternalServerException: injected"}')


# ======================================================================== 5: AwaitCopy outlasts an outage


def test_await_copy_transient_budget_outlasts_a_30_minute_outage_under_full_jitter():
    """The retrier's total wait is a sum of uniform draws (full jitter): in 20,000 simulated runs it never falls short
    of the 30-minute outage (its expected value is twice that)."""
    first, rate, cap = AWAIT_TRANSIENT_INTERVAL_SECONDS, AWAIT_TRANSIENT_BACKOFF_RATE, AWAIT_TRANSIENT_MAX_DELAY_SECONDS
    caps = [nominal_delay(k, first, rate, cap) for k in range(AWAIT_TRANSIENT_MAX_ATTEMPTS)]
    assert sum(caps) / 2 >= 2 * AWAIT_OUTAGE_SECONDS
    assert AWAIT_OUTAGE_SECONDS >= 1800 and max(caps) <= AWAIT_TRANSIENT_MAX_DELAY_SECONDS  # bounded, each wait too
    rng = random.Random(12)
    shortest = min(sum(rng.uniform(0, c) for c in caps) for _ in range(20_000))
    assert shortest > AWAIT_OUTAGE_SECONDS, shortest


def _submitted(imaging, pacer):
    clock = FakeClock()
    st = prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    st = submit(pace(st, pacer, clock), imaging, FakeSubmissions(), pacer, clock)
    return st, clock, st.submission.destination.imageSetId


def test_verify_reports_a_copy_completed_during_the_outage_as_completed(imaging, pacer):
    st, clock, dest = _submitted(imaging, pacer)
    imaging.finish(dest)  # the copy completed while every status check failed
    caught = st.model_copy(update={"error": OUTAGE})
    verified = await_copy(caught, imaging, clock, backoff=BACKOFF, verify=True)
    assert verified.error is None and verified.done and verified.submission is None
    detail_type, detail = outcome_event(verified, clock, "arn:exec")
    assert detail_type == "Copy Job Succeeded", detail


def test_verify_sends_a_copy_still_running_back_to_waiting_a_bounded_number_of_times(imaging, pacer):
    st, clock, _ = _submitted(imaging, pacer)
    current = st.model_copy(update={"error": OUTAGE})
    for n in range(1, MAX_VERIFICATIONS + 1):
        current = await_copy(current, imaging, clock, backoff=BACKOFF, verify=True)
        assert current.error is None and current.submission is not None and current.verifications == n
        current = current.model_copy(update={"error": OUTAGE})  # AwaitCopy's next budget spent on the outage too
    with pytest.raises(CopyStillInProgress, match="failed with ServiceInternalError") as raised:
        await_copy(current, imaging, clock, backoff=BACKOFF, verify=True)
    assert raised.value.code == "CopyWaitBudgetExhausted"


def test_verify_reports_copy_failed_as_such_and_an_unreachable_service_as_the_original_error(imaging, pacer):
    st, clock, dest = _submitted(imaging, pacer)
    caught = st.model_copy(update={"error": OUTAGE})
    imaging.finish(dest, "COPY_FAILED", "INVALID_REQUEST: bad")
    with pytest.raises(CopyFailed, match="INVALID_REQUEST"):
        await_copy(caught, imaging, clock, backoff=BACKOFF, verify=True)

    class Down:
        def get_image_set(self, *args, **kwargs):
            raise ServiceInternalError("InternalServerException: still down")

    # Verify's own error propagates; the state machine records it in $.verifyError and reports $.error (the outage).
    with pytest.raises(ServiceInternalError):
        await_copy(caught, Down(), clock, backoff=BACKOFF, verify=True)


# ======================================================================== 8: pacing is bounded


def test_pace_refuses_a_slot_the_execution_cannot_live_to_use_and_stores_nothing():
    clock, store = FakeClock(), InMemoryPaceStore()
    pacer = Pacer(store, rate=0.25)
    started = clock.t - 3600.0
    deadline = slot_deadline(started, TIMEOUT)
    assert deadline == started + TIMEOUT - DEADLINE_RESERVE
    backlog = deadline - clock.t + 10.0  # the account's next slot is 10 s after the last one this execution can use
    store.values[PaceKey(COPY_ACTION)] = clock.t + backlog
    st = state()
    with pytest.raises(SlotBeyondDeadline, match="later than this execution can use it") as raised:
        pace(st, pacer, clock, started_at=started, timeout=TIMEOUT)
    assert raised.value.code == "SlotBeyondDeadline"
    assert store.values[PaceKey(COPY_ACTION)] == clock.t + backlog  # no slot taken from the jobs that can use one
    # A job started later (a later deadline) gets that slot.
    later = pace(st, pacer, clock, started_at=started + 3600.0, timeout=TIMEOUT)
    assert later.pace.slot == pytest.approx(clock.t + backlog)


def test_the_deadline_reserve_never_exceeds_half_a_short_timeout():
    assert slot_deadline(0.0, 3600.0) == 1800.0
    assert slot_deadline(0.0, 600.0) == 300.0


@pytest.mark.parametrize(
    "stored",
    [CorruptPaceValue({"S": "soon"}), CorruptPaceValue({"BOOL": True}), 1e300, float("inf"), 1_800_000_000.0 + 1e9],
    ids=["string", "bool", "absurd", "infinite", "decades ahead"],
)
def test_a_corrupt_pacing_item_is_repaired_not_a_failure_of_every_job(stored, caplog):
    clock, store = FakeClock(), InMemoryPaceStore()
    pacer = Pacer(store, rate=0.25)
    store.values[PaceKey(COPY_ACTION)] = stored
    with caplog.at_level(logging.WARNING, logger="hicopy.domain.pacing"):
        st = pace(state(), pacer, clock, started_at=clock.t, timeout=TIMEOUT)
    assert st.pace.slot == clock.t and st.pace.waitSeconds == 0  # reset to now: the slot is now
    assert store.values[PaceKey(COPY_ACTION)] == pytest.approx(clock.t + 4.12)
    assert any("pacing item repaired" in r.getMessage() for r in caplog.records)


def test_a_corrupt_turn_item_is_repaired_too():
    clock, store = FakeClock(), InMemoryPaceStore()
    pacer = Pacer(store, rate=0.25)
    store.values[PaceKey(COPY_ACTION, turn=True)] = CorruptPaceValue({"S": "x"})
    assert pacer.claim(COPY_ACTION, clock.t) == 0.0
    store.values[PaceKey(COPY_ACTION, turn=True)] = clock.t + 10 * 24 * 3600.0  # ten days ahead
    assert pacer.claim(COPY_ACTION, clock.t + 5.0) == 0.0


def test_repair_is_conditional_a_concurrent_writer_wins():
    """The repair is a compare-and-set on the corrupt value: when another caller replaced it first, the reservation
    works from what that caller stored."""
    clock = FakeClock()

    class Racing(InMemoryPaceStore):
        raced = False

        def compare_and_set(self, key, expected, new):
            if isinstance(expected, CorruptPaceValue) and not self.raced:
                self.raced = True
                self.values[key] = clock.t + 8.0  # another Pace repaired it and reserved two slots
                return False
            return super().compare_and_set(key, expected, new)

    store = Racing()
    store.values[PaceKey(COPY_ACTION)] = CorruptPaceValue({"S": "x"})
    grant = Pacer(store, rate=0.25).reserve(COPY_ACTION, clock.t, horizon=TIMEOUT)
    assert grant.slot == clock.t + 8.0


# ======================================================================== 9: the metadata's outline


@pytest.mark.parametrize("name", ["aws-samples-usdoppler-2023.json", "grand-challenge-ct-2025.json"])
def test_the_metadata_outline_keeps_every_uid_and_frame_count_and_no_dicom_attribute(name):
    from pathlib import Path

    from hicopy.adapters.healthimaging import metadata_outline
    from hicopy.domain.selection import index_metadata

    blob = (Path(__file__).resolve().parents[1] / "data" / "healthimaging" / "metadata" / name).read_bytes()
    whole, outline = metadata_outline(blob, whole=True), metadata_outline(blob)
    assert index_metadata(outline) == index_metadata(whole)  # the same series, instances (in order) and frames
    assert list(outline["Study"]["Series"]) == list(whole["Study"]["Series"])
    assert "DICOM" not in str(outline) and outline["Patient"] == {}  # no attribute, the patient's included
