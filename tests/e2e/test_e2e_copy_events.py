"""HealthImaging's own copy events end AwaitCopy's waits early, through the real rule on the default bus, the
CopyWaker and ``.waitForTaskToken``; the status check stays the truth. A job succeeds whether its event comes on
time, early, late, twice, never, or names another version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hicopy.clock import parse_iso
from hicopy.contract import IMAGE_SET_COPIED, SUCCEEDED
from hicopy.domain.backoff import nominal_delay
from offline.runtime import LocalRuntime
from tests.e2e.helpers import only_event, put_copied, terminal_events

SCALE = 0.005  # 1 real second = 200 virtual seconds
COPY_SECONDS = 600.0  # long enough that the copy outlasts several backoff steps even on a loaded machine
FIRST_INTERVAL, RATE, MAX_DELAY = 5.0, 2.0, 120.0
EVENT_WAIT = 90  # polling.eventWaitSeconds (the default)


def _run(rt: LocalRuntime, job_id: str, **job: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    src = rt.seed_image_set(series=1, instances_per_series=2)
    rt.send_job({"jobId": job_id, "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}, **job})
    rt.run_until_idle(timeout=90)
    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event
    [execution] = rt.executions()
    return event, rt.state_attempts(execution.arn, "WaitForCopyEvent")


def _waits(rt: LocalRuntime) -> list[int]:
    """The backoff steps AwaitCopy drew (its outputs' ``awaiting.waitSeconds``), in order."""
    results = [i.result for i in rt.invocations_of("AwaitCopy") if i.ok]
    return [r["awaiting"]["waitSeconds"] for r in results if "awaiting" in r]


def _copy_calls(rt: LocalRuntime) -> int:
    return len([c for c in rt.emulator.calls_to("CopyImageSet") if c.error_code is None])


def test_the_copy_event_ends_the_wait_at_once(make_runtime: Callable[..., LocalRuntime]) -> None:
    """Three copies of 200 s: each is noticed within seconds of its end (the lag polling alone gives is up to the
    whole last step, 120 s), by a wait the event ended. Time runs only 20x faster here: the wake-up's real latency
    (a few Lambda calls in this process, on a loaded machine) must stay small in virtual seconds. (A wait whose
    timeout falls within that latency can still end by timeout: hence "at least two of three" woken.)"""
    rt = make_runtime(time_scale=0.05, copy_duration=200.0)
    sources = [rt.seed_image_set(series=1, instances_per_series=1) for _ in range(3)]
    for n, src in enumerate(sources):
        rt.send_job({"jobId": f"woken-{n}", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=120)
    events = terminal_events(rt)
    assert sorted(e["detail-type"] for e in events) == [SUCCEEDED] * 3
    woken = 0
    for event in events:
        dest = event["detail"]["destination"]
        copied_at = rt.emulator.image_set(rt.datastore_id, dest["imageSetId"], dest["versionId"])["updatedAt"]
        lag = parse_iso(event["detail"]["completedAt"]) - copied_at
        assert 0 <= lag <= 60, (event["detail"]["jobId"], lag)  # polling alone: up to 120 s
        execution = next(x for x in rt.executions() if x.name == event["detail"]["jobId"])
        waits = rt.state_attempts(execution.arn, "WaitForCopyEvent")
        assert event["detail"]["statusChecks"] == len(waits)  # one check after each wait (none right after Submit)
        woken += waits[-1]["error"] is None
    assert woken >= 2, woken
    assert _copy_calls(rt) == 3


def test_lost_events_fall_back_to_backoff_polling_with_full_jitter(make_runtime: Callable[..., LocalRuntime]) -> None:
    rt = make_runtime(time_scale=SCALE, copy_duration=COPY_SECONDS, emulator_options={"event_drop_fraction": 1.0})
    event, waits = _run(rt, "lost-1")
    assert not [e for e in rt.emulator.events if e.detail_type == IMAGE_SET_COPIED and e.delivered]
    assert len(waits) >= 4 and all(w["error"] == "States.Timeout" for w in waits), waits
    drawn = _waits(rt)
    assert len(drawn) == len(waits) == event["detail"]["statusChecks"]  # no check right after Submit
    bounds = [max(1.0, nominal_delay(k, FIRST_INTERVAL, RATE, MAX_DELAY)) for k in range(len(drawn))]
    assert all(1 <= w <= b for w, b in zip(drawn, bounds, strict=True)), (drawn, bounds)
    assert max(drawn[3:]) > FIRST_INTERVAL, drawn  # exponential growth beyond the first interval
    # each wait lasted (at least) its drawn step: the callback's timeout, scaled to real time
    for w, seconds in zip(waits, drawn, strict=True):
        assert (w["ended"] - w["scheduled"]).total_seconds() >= seconds * SCALE - 0.02  # ms timestamps
    assert _copy_calls(rt) == 1


def test_an_event_before_the_waiter_and_a_false_hint(make_runtime: Callable[..., LocalRuntime]) -> None:
    """A "copied" event for the version the copy will write, put before the job even starts: the first wait finds it
    and ends at once, the status check says COPYING (the event is a hint, not the truth), and the job goes on
    waiting until the real event. (20x time: a 1 s callback timeout must outlast the in-process Lambda call.)"""
    rt = make_runtime(time_scale=0.05, copy_duration=200.0)
    dst = rt.seed_image_set(series=1, instances_per_series=1)
    next_version = str(int(rt.emulator.image_set(rt.datastore_id, dst.image_set_id)["versionId"]) + 1)
    put_copied(rt, dst.image_set_id, next_version)
    rt.run_until_idle(timeout=30)  # delivered to the CopyWaker (asynchronously) before the job starts
    event, waits = _run(rt, "early-1", destination={"imageSetId": dst.image_set_id}, force=True)
    assert event["detail"]["destination"] == {"imageSetId": dst.image_set_id, "versionId": next_version}
    parks = [i.result for i in rt.invocations_of("CopyWaker") if i.ok and "taskToken" in i.event]
    assert parks[0] == {"woken": True} and len(parks) >= 2, parks  # the first waiter found the early event
    # ...whose wait ended at once (unless its 1-5 s timeout beat the in-process Lambda call on a loaded machine)
    assert len(waits) == len(parks) >= 2 and event["detail"]["statusChecks"] == len(waits)
    assert _copy_calls(rt) == 1


def test_duplicate_and_late_events(make_runtime: Callable[..., LocalRuntime]) -> None:
    """Every event delivered twice, 3 s late: one copy, one terminal event; a token is woken at most once."""
    rt = make_runtime(time_scale=SCALE, copy_duration=COPY_SECONDS, emulator_options={"event_delivery_delay": 3.0})
    sink = rt.emulator.event_sink
    assert sink is not None
    rt.emulator.event_sink = lambda t, d, r: (sink(t, d, r), sink(t, d, r))  # every event delivered twice
    event, _waits_seen = _run(rt, "twice-1")
    assert _copy_calls(rt) == 1  # one copy, one terminal event (only_event)
    dest = event["detail"]["destination"]
    hints = [
        i.result["outcome"]
        for i in rt.invocations_of("CopyWaker")
        if i.ok and "detail" in i.event and dest["imageSetId"] in i.event["detail"].values()
    ]
    assert len(hints) == 2 and hints.count("woken") <= 1 and "marked" in hints, hints


def test_an_event_that_names_another_version_wakes_no_one(make_runtime: Callable[..., LocalRuntime]) -> None:
    rt = make_runtime(time_scale=SCALE, copy_duration=COPY_SECONDS)
    sink = rt.emulator.event_sink
    assert sink is not None

    def another_version(detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        if detail_type == IMAGE_SET_COPIED:
            detail = {**detail, "imageSetVersion": str(int(detail["imageSetVersion"]) + 1)}
        sink(detail_type, detail, resources)

    rt.emulator.event_sink = another_version
    _event, waits = _run(rt, "other-version-1")
    assert all(w["error"] == "States.Timeout" for w in waits), waits  # found by polling, as without events
    assert _copy_calls(rt) == 1


def test_while_events_flow_a_copy_costs_one_status_check(make_runtime: Callable[..., LocalRuntime]) -> None:
    """A copy event of the data store heard lately (here: one for an image set no job waits for): the waits are
    ``polling.eventWaitSeconds`` (90 s) long and the copy's event ends the first one, so a 60 s copy is checked once,
    soon after its end."""
    rt = make_runtime(time_scale=0.1, copy_duration=60.0)
    other = rt.seed_image_set(series=1, instances_per_series=1)
    put_copied(rt, other.image_set_id, "2")
    rt.run_until_idle(timeout=30)
    event, waits = _run(rt, "flowing-1")
    drawn = _waits(rt)
    assert drawn == [EVENT_WAIT], drawn  # one wait, sized for events (polling's first step is at most 5 s)
    assert len(waits) == 1 and waits[0]["error"] is None, waits  # ended by the event, not by its timeout
    assert event["detail"]["statusChecks"] == 1
    # sooner than the wait's timeout could have noticed it (30 s after the copy's end); the rest is the real latency
    # of the in-process Lambda calls (event -> waker -> AwaitCopy -> Publish), scaled 10x
    assert 0 <= _lag(rt, event) < EVENT_WAIT - 60.0, _lag(rt, event)


def test_a_lost_event_while_events_flow_costs_at_most_the_event_wait(make_runtime: Callable[..., LocalRuntime]) -> None:
    """Events flow, but this copy's is lost: its 90 s wait times out and the status check finds it copied, 30 s after
    its end (never more than the event wait); one status check, as with the event."""
    rt = make_runtime(time_scale=0.05, copy_duration=60.0, emulator_options={"event_drop_fraction": 1.0})
    other = rt.seed_image_set(series=1, instances_per_series=1)
    put_copied(rt, other.image_set_id, "2")  # put on the bus by hand: the emulator's own events are all dropped
    rt.run_until_idle(timeout=30)
    event, waits = _run(rt, "flowing-lost-1")
    assert [w["error"] for w in waits] == ["States.Timeout"] and _waits(rt) == [EVENT_WAIT]
    assert event["detail"]["statusChecks"] == 1
    assert EVENT_WAIT - 60.0 - 1 <= _lag(rt, event) <= EVENT_WAIT, _lag(rt, event)


def _lag(rt: LocalRuntime, event: dict[str, Any]) -> float:
    """End of the copy (the destination version's ``updatedAt``) -> the terminal event's ``completedAt``."""
    dest = event["detail"]["destination"]
    copied_at = rt.emulator.image_set(rt.datastore_id, dest["imageSetId"], dest["versionId"])["updatedAt"]
    return float(parse_iso(event["detail"]["completedAt"]) - copied_at)
