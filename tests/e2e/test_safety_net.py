"""The safety net on the local runtime: an execution that ends FAILED, TIMED_OUT or ABORTED without its terminal
event gets exactly one, from Step Functions' own status change events (which the runtime puts on the default bus,
as AWS does); an execution that published its event gets no second one."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from hicopy.contract import EXECUTION_STATUS_CHANGE, FAILED, STATES_SOURCE, SUCCEEDED
from offline.runtime import LocalRuntime
from offline.runtime.status_events import status_change_detail
from tests.e2e.helpers import only_event, terminal_events

DOCUMENTED = Path(__file__).parents[1] / "data" / "sfn-status-change" / "execution-timed-out.json"


def _wait_for(rt: LocalRuntime, state: str, timeout: float = 30.0) -> str:
    """Pump the runtime until an execution has entered ``state``; returns its ARN."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rt.pump()
        for ex in rt.executions():
            if state in ex.states or rt.state_attempts(ex.arn, state):
                return ex.arn
        time.sleep(0.02)
    raise AssertionError(f"no execution reached {state}")


def _invocations(rt: LocalRuntime) -> list[object]:
    return [i.result for i in rt.invocations_of("ExecutionEnded")]


def test_the_runtime_puts_status_change_events_in_the_documented_shape(rt: LocalRuntime) -> None:
    src = rt.seed_image_set(series=1, instances_per_series=1)
    rt.send_job({"jobId": "shape-1", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=60)
    assert only_event(rt)["detail-type"] == SUCCEEDED
    [detail] = rt.status_change_events
    documented = json.loads(DOCUMENTED.read_text())["detail"]
    assert set(documented) <= set(detail), set(documented) - set(detail)
    assert detail["status"] == "SUCCEEDED" and detail["name"] == "shape-1"
    assert isinstance(detail["startDate"], int) and isinstance(detail["stopDate"], int)
    assert json.loads(detail["input"])["job"]["jobId"] == "shape-1"
    [put] = [e for e in rt.published_events(bus="default") if e["source"] == STATES_SOURCE]
    assert put["detail-type"] == EXECUTION_STATUS_CHANGE and put["resources"] == [detail["executionArn"]]
    # SUCCEEDED is not what the rule listens to: the safety net never ran.
    assert _invocations(rt) == []


def test_a_stopped_execution_gets_exactly_one_failure_event(make_runtime: Callable[..., LocalRuntime]) -> None:
    rt = make_runtime(copy_duration=600.0)
    src = rt.seed_image_set(series=1, instances_per_series=2)
    rt.send_job({"jobId": "stopped-1", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    arn = _wait_for(rt, "AwaitCopy")
    rt.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="maintenance")
    rt.run_until_idle(timeout=60)

    event = only_event(rt)
    assert event["detail-type"] == FAILED
    detail = event["detail"]
    assert detail["jobId"] == "stopped-1" and detail["executionArn"] == arn
    assert detail["reason"]["code"] == "ExecutionAborted", detail["reason"]
    assert "stopped" in detail["reason"]["message"]
    assert detail["chunks"] == 1 and detail["chunksCompleted"] == 0  # the progress of its last task state
    assert [d["status"] for d in rt.status_change_events] == ["ABORTED"]
    assert len(_invocations(rt)) == 1


def test_a_timed_out_execution_gets_exactly_one_failure_event(make_runtime: Callable[..., LocalRuntime]) -> None:
    # The shipped timeout (48 h) cannot be waited for: the deployed state machine gets a 10-minute one (virtual),
    # and the copy lasts longer than that.
    rt = make_runtime(time_scale=0.005, copy_duration=1500.0)
    sfn = rt.client("stepfunctions")
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=rt.deployment.state_machine_arn)["definition"])
    definition["TimeoutSeconds"] = 600
    sfn.update_state_machine(stateMachineArn=rt.deployment.state_machine_arn, definition=json.dumps(definition))
    src = rt.seed_image_set(series=1, instances_per_series=2)
    rt.send_job({"jobId": "slow-2", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=60)

    [execution] = rt.executions()
    assert execution.status == "TIMED_OUT", execution
    event = only_event(rt)
    assert event["detail-type"] == FAILED
    assert event["detail"]["reason"]["code"] == "ExecutionTimedOut", event["detail"]["reason"]
    assert event["detail"]["executionArn"] == execution.arn


def test_a_failed_job_that_published_its_event_gets_no_second_one(rt: LocalRuntime) -> None:
    src = rt.seed_image_set(series=1, instances_per_series=1)
    rt.emulator.fail_next_copy("INVALID_REQUEST: injected")
    rt.send_job({"jobId": "failed-1", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=60)

    event = only_event(rt)
    assert event["detail-type"] == FAILED and event["detail"]["reason"]["code"] == "CopyFailed"
    assert [d["status"] for d in rt.status_change_events] == ["FAILED"]
    assert _invocations(rt) == [{"status": "FAILED", "published": None}]  # ran, saw the marker, published nothing


def test_a_publisher_that_failed_is_covered_with_the_outcome_it_was_publishing(rt_publish_broken: LocalRuntime) -> None:
    rt = rt_publish_broken
    src = rt.seed_image_set(series=1, instances_per_series=1)
    rt.send_job({"jobId": "unpublished-1", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=60)

    [execution] = rt.executions()
    assert execution.status == "FAILED" and execution.error == "PublishFailed", execution
    events = terminal_events(rt)
    assert [e["detail-type"] for e in events] == [SUCCEEDED], events  # the copy did succeed: the true outcome
    assert events[0]["detail"]["executionArn"] == execution.arn
    assert events[0]["detail"]["chunksCompleted"] == 1


def test_status_change_detail_leaves_out_an_input_too_large_for_an_event() -> None:
    described = {
        "executionArn": "arn:aws:states:us-east-1:111122223333:execution:sm:job",
        "stateMachineArn": "arn:aws:states:us-east-1:111122223333:stateMachine:sm",
        "name": "job",
        "status": "TIMED_OUT",
        "input": "x" * (300 * 1024),
    }
    detail = status_change_detail(described)
    assert detail["input"] is None and detail["inputDetails"] == {"included": False}
