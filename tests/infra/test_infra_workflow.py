"""The state machine: type, query language, graph, Retry/Catch policies, logging and tracing."""

from __future__ import annotations

from typing import Any

import pytest

from hicopy.domain.backoff import max_attempts_for, publish_max_attempts
from hicopy.errors import (
    LAMBDA_CRASH_ERRORS,
    LAMBDA_SERVICE_ERRORS,
    REPACE_ERRORS,
    STATE_ERRORS,
    TERMINAL_ERRORS,
    TRANSIENT_ERRORS,
)
from infra.state_machine import AWAIT_TRANSIENT_MAX_ATTEMPTS
from tests.infra.helpers import TEST_CONFIG, VARIANT_CONFIG, definition, logical_id, resources

TASKS = ["Prepare", "Pace", "Submit", "AwaitCopy", "PublishResult", "PublishFailure"]
TASK_FUNCTION = {
    "Prepare": "Prepare",
    "Pace": "Pace",
    "Submit": "Submit",
    "AwaitCopy": "AwaitCopy",
    "PublishResult": "Publish",
    "PublishFailure": "Publish",
}
TRANSIENT_RETRY = {
    "ErrorEquals": LAMBDA_SERVICE_ERRORS + TRANSIENT_ERRORS,
    "IntervalSeconds": 2,
    "BackoffRate": 2,
    "MaxDelaySeconds": 60,
    "MaxAttempts": 6,
    "JitterStrategy": "FULL",
}
PAYLOAD = {
    "state.$": "$",
    "executionArn.$": "$$.Execution.Id",
    "executionStartTime.$": "$$.Execution.StartTime",
    "retryCount.$": "$$.State.RetryCount",
}
# AwaitCopy outlasts a HealthImaging outage of 30 minutes (sized in tests/unit/test_resilience.py).
AWAIT_TRANSIENT_RETRY = {
    **{k: v for k, v in TRANSIENT_RETRY.items() if k != "MaxAttempts"},
    "IntervalSeconds": 5,
    "MaxDelaySeconds": 120,
    "MaxAttempts": AWAIT_TRANSIENT_MAX_ATTEMPTS,
}
# Publish outlasts a 2-hour EventBridge outage: up to 5 minutes apart, expected total 3 h (hicopy.domain.backoff).
PUBLISH_RETRY = {
    "ErrorEquals": LAMBDA_SERVICE_ERRORS + TRANSIENT_ERRORS,
    "IntervalSeconds": 5,
    "BackoffRate": 2,
    "MaxDelaySeconds": 300,
    "MaxAttempts": 77,
    "JitterStrategy": "FULL",
}


@pytest.fixture(scope="module")
def states(template_json: dict[str, Any]) -> dict[str, Any]:
    return definition(template_json)["States"]  # type: ignore[no-any-return]


def _machine(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    return machine["Properties"]  # type: ignore[no-any-return]


def test_one_standard_jsonpath_state_machine(template_json: dict[str, Any]) -> None:
    assert logical_id(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine")
    props = _machine(template_json)
    assert props["StateMachineType"] == "STANDARD"
    top = definition(template_json)
    assert top.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert "JSONata" not in str(props["DefinitionString"])
    assert all(state.get("QueryLanguage", "JSONPath") == "JSONPath" for state in top["States"].values())
    assert top["StartAt"] == "Prepare"
    assert top["TimeoutSeconds"] == 48 * 3600


def test_logging_all_without_execution_data_and_tracing(template_json: dict[str, Any]) -> None:
    props = _machine(template_json)
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is False
    (destination,) = logging["Destinations"]
    log_group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group_props = template_json["Resources"][log_group]["Properties"]
    assert log_group_props["RetentionInDays"] == 365
    assert "KmsKeyId" in log_group_props
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_graph(states: dict[str, Any]) -> None:
    assert states["Prepare"]["Next"] == "Pace"
    assert states["Pace"]["Next"] == "NeedsPacing?"
    needs_pacing = states["NeedsPacing?"]
    assert needs_pacing["Type"] == "Choice"
    (choice,) = needs_pacing["Choices"]
    assert choice["Next"] == "PaceWait"
    assert {"Variable": "$.pace.waitSeconds", "NumericGreaterThan": 0} in choice["And"]
    assert needs_pacing["Default"] == "Submit"
    assert states["PaceWait"] == {"Type": "Wait", "SecondsPath": "$.pace.waitSeconds", "Next": "Submit"}
    assert states["Submit"]["Next"] == "AwaitCopy"
    assert states["AwaitCopy"]["Next"] == "StillCopying?"
    assert states["StillCopying?"]["Default"] == "MoreChunks?"
    more = states["MoreChunks?"]
    assert more["Choices"] == [{"Variable": "$.done", "BooleanEquals": True, "Next": "PublishResult"}]
    assert more["Default"] == "Pace"
    assert states["PublishResult"]["Next"] == "Done"
    assert states["Done"] == {"Type": "Succeed"}
    assert states["PublishFailure"]["Next"] == "CopyFailed"
    assert states["CopyFailed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    assert states["PublishFailed"]["Type"] == "Fail"
    waiting = {"StillCopying?", "WaitForCopyEvent", "PollWait"}  # AwaitCopy's wait between status checks
    # Verify: AwaitCopy's last look at the destination before a transient error becomes a failure event
    assert states["Verify"]["Next"] == "StillCopying?"
    still = states["StillCopying?"]
    assert still["Choices"] == [{"Variable": "$.awaiting", "IsPresent": True, "Next": "WaitForCopyEvent"}]
    assert still["Default"] == "MoreChunks?"
    assert set(states) == {
        *TASKS,
        *waiting,
        "NeedsPacing?",
        "PaceWait",
        "MoreChunks?",
        "Done",
        "CopyFailed",
        "PublishFailed",
        "Verify",
    }


def test_verify_reads_the_destination_with_the_await_copy_function(
    template_json: dict[str, Any], states: dict[str, Any]
) -> None:
    verify = states["Verify"]
    function_id = logical_id(template_json, "AwaitCopy", "AWS::Lambda::Function")
    assert verify["Resource"] == "${" + function_id + ".Arn}"
    assert verify["Parameters"] == {**PAYLOAD, "verify": True}
    assert verify["ResultPath"] == "$"
    assert "Retry" not in verify  # checked once more, not retried again
    assert verify["Catch"] == [
        {"ErrorEquals": TERMINAL_ERRORS, "ResultPath": "$.error", "Next": "PublishFailure"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.verifyError", "Next": "PublishFailure"},
    ]


@pytest.mark.parametrize("state_name", TASKS)
def test_every_task_invokes_its_function_with_the_state_payload(
    template_json: dict[str, Any], states: dict[str, Any], state_name: str
) -> None:
    task = states[state_name]
    function_id = logical_id(template_json, TASK_FUNCTION[state_name], "AWS::Lambda::Function")
    assert task["Type"] == "Task"
    assert task["Resource"] == "${" + function_id + ".Arn}"  # payloadResponseOnly: direct function ARN
    assert task["Parameters"] == PAYLOAD
    expected_result_path = "$.publishResult" if state_name == "PublishFailure" else "$"
    assert task["ResultPath"] == expected_result_path
    assert "OutputPath" not in task
    assert "InputPath" not in task


@pytest.mark.parametrize("state_name", TASKS)
def test_every_task_retries_transient_errors_with_full_jitter(states: dict[str, Any], state_name: str) -> None:
    expected = {"AwaitCopy": AWAIT_TRANSIENT_RETRY, "PublishResult": PUBLISH_RETRY, "PublishFailure": PUBLISH_RETRY}
    assert expected.get(state_name, TRANSIENT_RETRY) in states[state_name]["Retry"]
    for retrier in states[state_name]["Retry"]:
        assert retrier["JitterStrategy"] == "FULL"
        assert not {"States.ALL", "States.Timeout", "States.TaskFailed"} & set(retrier["ErrorEquals"])


# A Lambda that died (timeout, out of memory): retried on the tasks whose retry is safe, never on Publish.
CRASH_RETRY = {
    "ErrorEquals": LAMBDA_CRASH_ERRORS,
    "IntervalSeconds": 5,
    "BackoffRate": 2,
    "MaxAttempts": 2,
    "JitterStrategy": "FULL",
}


@pytest.mark.parametrize("name", ["Prepare", "Submit"])
def test_prepare_and_submit_retry_state_errors_and_never_timeouts(states: dict[str, Any], name: str) -> None:
    assert states[name]["Retry"] == [
        TRANSIENT_RETRY,
        {
            "ErrorEquals": STATE_ERRORS,
            "IntervalSeconds": 5,
            "BackoffRate": 2,
            "MaxDelaySeconds": 120,
            "MaxAttempts": 8,
            "JitterStrategy": "FULL",
        },
        CRASH_RETRY,
    ]


def test_a_crashed_lambda_is_retried_only_where_that_is_safe(states: dict[str, Any]) -> None:
    assert LAMBDA_CRASH_ERRORS == ["Lambda.Unknown", "Sandbox.Timedout"]
    for name in TASKS:
        assert (CRASH_RETRY in states[name]["Retry"]) == (name in ("Prepare", "Pace", "Submit", "AwaitCopy")), name


def test_await_copy_waits_in_a_callback_cut_short_by_the_copy_event(states: dict[str, Any]) -> None:
    """Between status checks: a callback wait on the CopyWaker with the drawn backoff step as its timeout; a
    timeout or the event goes back to the status check, a failed waker to a plain Wait of the same step."""
    assert states["AwaitCopy"]["Retry"] == [AWAIT_TRANSIENT_RETRY, CRASH_RETRY]  # no still-copying retrier any more
    assert states["AwaitCopy"]["Next"] == "StillCopying?"
    choice = states["StillCopying?"]
    assert choice["Choices"] == [{"Variable": "$.awaiting", "IsPresent": True, "Next": "WaitForCopyEvent"}]
    assert choice["Default"] == "MoreChunks?"
    wait = states["WaitForCopyEvent"]
    assert wait["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert wait["Parameters"]["Payload"] == {
        "taskToken.$": "$$.Task.Token",
        "datastoreId.$": "$.job.datastoreId",
        "imageSetId.$": "$.submission.destination.imageSetId",
        "versionId.$": "$.submission.destination.versionId",
    }
    assert wait["TimeoutSecondsPath"] == "$.awaiting.waitSeconds"
    assert wait["ResultPath"] is None
    assert "Retry" not in wait
    assert wait["Catch"] == [
        {"ErrorEquals": ["States.Timeout"], "ResultPath": None, "Next": "AwaitCopy"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "PollWait"},
    ]
    assert wait["Next"] == "AwaitCopy"
    assert states["PollWait"] == {"Type": "Wait", "SecondsPath": "$.awaiting.waitSeconds", "Next": "AwaitCopy"}


def test_other_tasks_retry_only_transient_errors(states: dict[str, Any]) -> None:
    assert states["Pace"]["Retry"] == [TRANSIENT_RETRY, CRASH_RETRY]
    for name in ("PublishResult", "PublishFailure"):
        assert states[name]["Retry"] == [PUBLISH_RETRY], name
    assert PUBLISH_RETRY["MaxAttempts"] == publish_max_attempts()


def test_polling_follows_the_configuration(variant_json: dict[str, Any], template_json: dict[str, Any]) -> None:
    """AwaitCopy draws its waits from the polling config; MaxAttempts derived from maxWaitSeconds as before."""
    polling = VARIANT_CONFIG["polling"]
    assert _await_copy_env(variant_json) == {
        "POLL_FIRST_INTERVAL_SECONDS": str(polling["firstIntervalSeconds"]),
        "POLL_BACKOFF_RATE": str(float(polling["backoffRate"])),
        "POLL_MAX_DELAY_SECONDS": str(polling["maxDelaySeconds"]),
        "POLL_MAX_ATTEMPTS": str(
            max_attempts_for(
                polling["maxWaitSeconds"],
                polling["firstIntervalSeconds"],
                polling["backoffRate"],
                polling["maxDelaySeconds"],
            )
        ),
    }
    assert _await_copy_env(template_json)["POLL_MAX_ATTEMPTS"] == str(max_attempts_for(43_200, 5, 2.0, 120))
    props = _machine(variant_json)
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert definition(variant_json)["TimeoutSeconds"] == VARIANT_CONFIG["executionTimeoutHours"] * 3600


def _await_copy_env(template: dict[str, Any]) -> dict[str, str]:
    fn = resources(template, "AWS::Lambda::Function")[logical_id(template, "AwaitCopy", "AWS::Lambda::Function")]
    variables: dict[str, str] = fn["Properties"]["Environment"]["Variables"]
    return {k: v for k, v in variables.items() if k.startswith("POLL_")}


MISSED_SLOT_CATCH = {"ErrorEquals": REPACE_ERRORS, "ResultPath": "$.missedSlot", "Next": "Pace"}


def test_catch_all_publishes_the_failure_once(states: dict[str, Any]) -> None:
    for name in ("Prepare", "Pace", "Submit", "AwaitCopy"):
        # Submit that missed its turn first goes back to Pace for a new slot (Pace bounds how often)
        repace = [MISSED_SLOT_CATCH] if name == "Submit" else []
        # AwaitCopy's transient errors and crashes are verified once more first
        errors = LAMBDA_SERVICE_ERRORS + TRANSIENT_ERRORS + LAMBDA_CRASH_ERRORS
        verify = [{"ErrorEquals": errors, "ResultPath": "$.error", "Next": "Verify"}] if name == "AwaitCopy" else []
        assert states[name]["Catch"] == [
            *repace,
            *verify,
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "PublishFailure"},
        ], name
    for name in ("PublishResult", "PublishFailure"):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "PublishFailed"}
        ], name


def test_error_lists_are_not_empty() -> None:
    # Guards the imports above: an empty list would make the Retry assertions vacuous.
    assert TRANSIENT_ERRORS
    assert STATE_ERRORS
    assert REPACE_ERRORS
    assert LAMBDA_SERVICE_ERRORS
    assert TEST_CONFIG["datastoreIds"]


def test_delete_after_branch(delete_json: dict[str, Any], states: dict[str, Any]) -> None:
    contract = states
    states = definition(delete_json)["States"]
    assert "DeleteSource" not in contract
    pending = {
        "And": [
            {"Variable": "$.sourceDeletion.status", "IsPresent": True},
            {"Variable": "$.sourceDeletion.status", "StringEquals": "PENDING"},
        ]
    }
    # Pacing is followed by the copy-or-delete decision
    assert states["NeedsPacing?"]["Default"] == "CopyOrDelete?"
    assert states["PaceWait"]["Next"] == "CopyOrDelete?"
    assert states["CopyOrDelete?"]["Choices"] == [{**pending, "Next": "DeleteSource"}]
    assert states["CopyOrDelete?"]["Default"] == "Submit"
    # All chunks copied and no deletion pending -> publish; otherwise pace (next chunk or the deletion)
    (done,) = states["MoreChunks?"]["Choices"]
    assert done == {
        "And": [{"Variable": "$.done", "BooleanEquals": True}, {"Not": pending}],
        "Next": "PublishResult",
    }
    assert states["MoreChunks?"]["Default"] == "Pace"
    delete = states["DeleteSource"]
    function_id = logical_id(delete_json, "DeleteSource", "AWS::Lambda::Function")
    assert delete["Resource"] == "${" + function_id + ".Arn}"
    assert delete["Parameters"] == PAYLOAD
    assert delete["ResultPath"] == "$"
    assert delete["Next"] == "PublishResult"
    assert delete["Retry"] == [TRANSIENT_RETRY]
    # a failed deletion does not fail the copy: the success event reports it
    assert delete["Catch"] == [
        MISSED_SLOT_CATCH,  # a deletion that missed its turn takes a new DeleteImageSet slot
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.deletionError", "Next": "PublishResult"},
    ]
    # the tasks' policies are unchanged
    for name in TASKS:
        assert (states[name]["Retry"], states[name].get("Catch")) == (
            contract[name]["Retry"],
            contract[name].get("Catch"),
        )
