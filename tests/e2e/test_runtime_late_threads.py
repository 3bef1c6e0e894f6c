"""moto runs each task state on a thread of its own (a frame) and lets that thread run on once the state has timed
out or the execution has ended. Under CPU load in CI such a late thread broke executions in two ways; the local
runtime now behaves as AWS does (``MotoPatches._apply_ended_frames``). Each test holds the first callback wait's
thread (WaitForCopyEvent, 1 s virtual = 5 ms real) in ``_before_eval_execution`` past that wait's timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)

from hicopy.contract import SUCCEEDED
from offline.runtime import LocalRuntime
from tests.e2e.helpers import only_event, put_copied

HOLD = 0.2  # real seconds: 40 times the wait's real length


def _hold_first_wait(monkeypatch: pytest.MonkeyPatch, after: Callable[[Any], None] | None = None) -> list[bool]:
    """Hold the first callback wait's thread for ``HOLD``, then run ``after(frame)``; returns a list that holds
    True once it happened."""
    original = StateTaskService._before_eval_execution
    held: list[bool] = []

    def late_once(task: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        if not held:
            held.append(True)
            if after is None:
                time.sleep(HOLD)
            else:
                after(env)
        original(task, env, *args, **kwargs)

    monkeypatch.setattr(StateTaskService, "_before_eval_execution", late_once)
    return held


def _run_one_job(make_runtime: Callable[..., LocalRuntime], job_id: str) -> LocalRuntime:
    rt = make_runtime(time_scale=0.005, copy_duration=30.0, config_overrides={"polling": {"eventWaitSeconds": 1}})
    other = rt.seed_image_set(series=1, instances_per_series=1)
    put_copied(rt, other.image_set_id, "2")  # events flow: the waits are callback waits of eventWaitSeconds
    rt.run_until_idle(timeout=30)
    src = rt.seed_image_set(series=1, instances_per_series=2)
    rt.send_job({"jobId": job_id, "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=60)
    return rt


def _first_wait(rt: LocalRuntime) -> list[dict[str, Any]]:
    """The history's events after the first WaitForCopyEvent was entered (the whole history: GetExecutionHistory
    must be able to serialize it, which the safety net relies on)."""
    [execution] = rt.executions()
    history = rt.client("stepfunctions").get_execution_history(executionArn=execution.arn, maxResults=1000)["events"]
    first = next(
        e["id"] for e in history if (e.get("stateEnteredEventDetails") or {}).get("name") == "WaitForCopyEvent"
    )
    return [e for e in history if e["id"] > first]


def test_a_late_task_thread_records_nothing_and_invokes_nothing(
    make_runtime: Callable[..., LocalRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late thread recorded a TaskScheduled whose timeout was the state's input (its evaluations were no-ops,
    the stack pops after them were not): GetExecutionHistory failed from then on, and the safety net, which reads
    it, published nothing (CI, test_a_timed_out_execution_gets_exactly_one_failure_event). It also invoked the
    function after the state had timed out. In AWS neither happens."""
    held = _hold_first_wait(monkeypatch)
    rt = _run_one_job(make_runtime, "late-1")

    assert held and only_event(rt)["detail-type"] == SUCCEEDED
    after = _first_wait(rt)
    assert [e["type"] for e in after[:2]] == ["TaskTimedOut", "TaskStateExited"], after[:2]
    scheduled = [e for e in after if e["type"] == "TaskScheduled"]
    assert all(isinstance(e["taskScheduledEventDetails"]["timeoutInSeconds"], int) for e in scheduled), scheduled
    waits = [e for e in after if (e.get("stateEnteredEventDetails") or {}).get("name") == "WaitForCopyEvent"]
    parked = [i for i in rt.invocations_of("CopyWaker") if "taskToken" in i.event]
    assert len(parked) == len(scheduled) == len(waits), (len(parked), len(scheduled), len(waits))


def test_a_late_task_thread_that_fails_does_not_turn_the_timeout_into_a_failure(
    make_runtime: Callable[..., LocalRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto ended the frame and then took the thread's last exception: an error the late thread raised just then
    replaced the timeout, and the wait failed the job instead of falling through to the status check. Here the
    thread holds its frame's lock past the timeout (the interpreter's ``set_ended`` waits for it) and raises as soon
    as it lets go."""

    def hold_then_fail(frame: Any) -> None:
        with frame._state_mutex:
            time.sleep(HOLD)
        raise RuntimeError("late thread")

    held = _hold_first_wait(monkeypatch, hold_then_fail)
    rt = _run_one_job(make_runtime, "late-2")

    assert held and only_event(rt)["detail-type"] == SUCCEEDED
    assert [e["type"] for e in _first_wait(rt)[:2]] == ["TaskTimedOut", "TaskStateExited"]
