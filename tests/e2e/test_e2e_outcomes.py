"""Issue #12 items 5 and 8 on the local runtime (the real template, state machine and handlers).

5. A completed copy is reported completed: AwaitCopy outlasts a 30-minute HealthImaging outage, and when its retries
   run out anyway, Verify reads the destination once more before the error becomes a failure event.
8. Pacing is bounded: a slot the execution cannot live to use fails the job with its own reason (one event, never
   TIMED_OUT), and a corrupt pacing item is repaired instead of failing every job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hicopy.contract import FAILED, SUCCEEDED
from hicopy.domain.awaiting import checks_status
from offline.runtime import LocalRuntime
from tests.e2e.helpers import only_event, terminal_events

OUTAGE_SECONDS = 1800.0


def _one_job(rt: LocalRuntime, job_id: str) -> None:
    src = rt.seed_image_set(series=1, instances_per_series=2)
    rt.send_job({"jobId": job_id, "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})


def _before(rt: LocalRuntime, construct_id: str, hook: Callable[[dict[str, Any]], None]) -> None:
    previous = rt.runner.on_start

    def on_start(spec: Any, event: Any) -> None:
        if previous is not None:
            previous(spec, event)
        if spec.construct_id == construct_id and isinstance(event, dict):
            hook(event)

    rt.runner.on_start = on_start


def _status_check_failure(rt: LocalRuntime) -> None:
    """The next GetImageSet (AwaitCopy's status check) answers HTTP 500."""
    rt.emulator.inject_fault("GetImageSet", "InternalServerException", times=1)


# ======================================================================== 5


def test_await_copy_outlasts_a_30_minute_healthimaging_outage(make_runtime: Callable[..., LocalRuntime]) -> None:
    """Every status check fails for 30 (virtual) minutes from the first one; the copy completes meanwhile. Before
    #12 AwaitCopy's 6 transient retries (about 2 minutes) ran out: ServiceInternalError while the copy was COPIED."""
    rt = make_runtime(time_scale=0.002, copy_duration=30.0)
    outage: dict[str, float] = {}

    def before_await(event: dict[str, Any]) -> None:
        if not checks_status(event):
            return
        start = outage.setdefault("start", rt.clock.now())
        if rt.clock.now() < start + OUTAGE_SECONDS:
            _status_check_failure(rt)

    _before(rt, "AwaitCopy", before_await)
    _one_job(rt, "outage-30min")
    rt.run_until_idle(timeout=120)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    [execution] = rt.executions()
    attempts = rt.state_attempts(execution.arn, "AwaitCopy")
    failed = [a for a in attempts if a["error"] == "ServiceInternalError"]
    assert len(failed) > 6, len(failed)  # more than the old budget
    assert attempts[-1]["error"] is None


def test_verify_reports_a_copy_that_completed_during_a_longer_outage_as_completed(
    make_runtime: Callable[..., LocalRuntime],
) -> None:
    """Every AwaitCopy status check fails until its retries run out; Verify's check is answered: COPIED, Succeeded."""
    rt = make_runtime(time_scale=0.001, copy_duration=30.0)

    def before_await(event: dict[str, Any]) -> None:
        if checks_status(event) and not event.get("verify"):
            _status_check_failure(rt)

    _before(rt, "AwaitCopy", before_await)
    _one_job(rt, "outage-verified")
    rt.run_until_idle(timeout=180)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    [execution] = rt.executions()
    assert "Verify" in execution.states
    assert [a["error"] for a in rt.state_attempts(execution.arn, "Verify")] == [None]
    first_wait, *checks = rt.state_attempts(execution.arn, "AwaitCopy")
    assert first_wait["error"] is None  # right after Submit: no status check, the first wait
    assert checks and all(a["error"] == "ServiceInternalError" for a in checks)
    assert len(rt.emulator.calls_to("CopyImageSet")) == 1  # nothing copied twice


def test_verify_sends_a_copy_still_running_back_to_waiting(make_runtime: Callable[..., LocalRuntime]) -> None:
    """The outage ends AwaitCopy's budget while the (3 h) copy still runs: Verify sees COPYING and the job goes back
    to waiting; the copy completes and the job succeeds."""
    rt = make_runtime(time_scale=0.001, copy_duration=3 * 3600.0)

    def before_await(event: dict[str, Any]) -> None:
        if checks_status(event) and not event.get("verify") and not event["state"].get("verifications"):
            _status_check_failure(rt)

    _before(rt, "AwaitCopy", before_await)
    _one_job(rt, "outage-still-copying")
    rt.run_until_idle(timeout=240)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    [execution] = rt.executions()
    states = execution.states
    assert "Verify" in states and "StillCopying?" in states
    assert states.index("Verify") < len(states) - 1 - states[::-1].index("AwaitCopy")  # AwaitCopy after Verify


# ======================================================================== 8


def _state_table(rt: LocalRuntime) -> str:
    return rt.deployment.physical_id("StateTable")


def _put_pacing_item(rt: LocalRuntime, tat: dict[str, Any]) -> None:
    rt.client("dynamodb").put_item(TableName=_state_table(rt), Item={"pk": {"S": "pace#CopyImageSet"}, "tat": tat})


def _pacing_item(rt: LocalRuntime) -> dict[str, Any]:
    item = rt.client("dynamodb").get_item(TableName=_state_table(rt), Key={"pk": {"S": "pace#CopyImageSet"}})
    return item["Item"]["tat"]  # type: ignore[no-any-return]


def test_a_pacing_item_of_the_wrong_type_is_repaired(rt: LocalRuntime) -> None:
    """Before #12: KeyError in the adapter, every job Failed/InternalError."""
    _put_pacing_item(rt, {"S": "not-a-number"})
    _one_job(rt, "pace-wrong-type")
    rt.run_until_idle(timeout=60)
    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    assert "N" in _pacing_item(rt)


def test_a_pacing_item_absurdly_far_in_the_future_is_repaired(rt: LocalRuntime) -> None:
    """A TAT ten years ahead: before #12 the job waited (PaceWait) until its execution timed out, with no event."""
    _put_pacing_item(rt, {"N": str(int(rt.clock.now() + 10 * 365 * 86400))})
    _one_job(rt, "pace-absurd")
    rt.run_until_idle(timeout=60)
    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    assert float(_pacing_item(rt)["N"]) < rt.clock.now() + 3600


def test_a_slot_beyond_the_execution_timeout_fails_the_job_with_its_own_reason(rt: LocalRuntime) -> None:
    """A backlog of 47.9 h of paced calls ahead (plausible, not corrupt) and a 48 h execution timeout: the job
    cannot live to use its slot. It fails at once with SlotBeyondDeadline, and the slot is left to others."""
    tat = str(int(rt.clock.now() + 47.9 * 3600))
    _put_pacing_item(rt, {"N": tat})
    _one_job(rt, "pace-beyond-deadline")
    rt.run_until_idle(timeout=60)
    [event] = terminal_events(rt)
    assert event["detail-type"] == FAILED
    assert event["detail"]["reason"]["code"] == "SlotBeyondDeadline", event["detail"]["reason"]
    assert _pacing_item(rt) == {"N": tat}
    [execution] = rt.executions()
    assert execution.status == "FAILED" and "PaceWait" not in execution.states
