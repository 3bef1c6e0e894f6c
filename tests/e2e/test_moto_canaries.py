"""Canaries for every moto (and botocore) internal the local runtime patches or reads.

moto is pinned at exactly 5.2.5; if an upgrade moves, renames or re-signs one of these, this file fails first and
names the one that changed, instead of the runtime silently falling back to moto's behaviour.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import time
import uuid
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from offline.runtime.patches import MOTO_VERSION, PATCH_POINTS, READ_POINTS, PatchPoint, parameters_of, resolve

REGION = "us-east-1"
DEFINITION = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
ROLE = "arn:aws:iam::123456789012:role/sfn"


def _id(point: PatchPoint) -> str:
    return f"{point.module}.{point.owner + '.' if point.owner else ''}{point.attribute}"


def test_moto_is_the_pinned_version() -> None:
    assert importlib.metadata.version("moto") == MOTO_VERSION


@pytest.mark.parametrize("point", PATCH_POINTS + READ_POINTS, ids=_id)
def test_internal_exists_with_the_expected_signature(point: PatchPoint) -> None:
    _owner, value = resolve(point)
    if point.parameters is None:
        return
    assert callable(value) or isinstance(value, (staticmethod, classmethod)), _id(point)
    params = parameters_of(value)
    assert params[: len(point.parameters)] == point.parameters, f"{_id(point)}{inspect.signature(value)}"


def test_retrier_sleeps_through_its_module_time() -> None:
    """Retry back-off is scaled by swapping ``retrier_decl.time``: it must still call ``time.sleep``."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    assert "time.sleep(" in inspect.getsource(retrier_decl)


def test_wait_states_wait_on_the_program_state_event() -> None:
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    assert "env.program_state_event.wait(" in inspect.getsource(wait_function.WaitFunction._wait_interval)


@mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
def test_unnamed_executions_still_need_the_uuid_patch() -> None:
    """moto 5.2.5 names every unnamed execution ``None``; when this canary fails, the patch can go."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(name="c", definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
    assert sfn.start_execution(stateMachineArn=arn)["executionArn"].endswith(":None")


@mock_aws
def test_lambda_and_sfn_rule_targets_are_still_unsupported() -> None:
    """moto 5.2.5 raises inside PutEvents for Lambda/Step Functions targets (delivered by the runtime instead)."""
    from moto.events.models import events_backends

    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["x"]}))
    events.put_targets(Rule="r", Targets=[{"Id": "t", "Arn": f"arn:aws:lambda:{REGION}:123456789012:function:f"}])
    rule = events_backends["123456789012"][REGION].describe_rule("r", None)
    with pytest.raises(NotImplementedError):
        rule.send_to_targets(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "d",
                "source": "x",
                "account": "123456789012",
                "time": 0.0,
                "region": REGION,
                "resources": [],
                "detail": {},
                "ingestion-time": 0.0,
            }
        )


@mock_aws
def test_sqs_redrive_happens_on_receive_and_counts_receives() -> None:
    """The poller relies on moto moving a message to the DLQ on the receive after ``maxReceiveCount`` receives."""
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    q = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.send_message(QueueUrl=q, MessageBody="m")
    for _ in range(2):
        [msg] = sqs.receive_message(QueueUrl=q, VisibilityTimeout=30)["Messages"]
        sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=q).get("Messages", []) == []
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq)["Messages"]] == ["m"]
    # LocalRuntime.queue_messages peeks at the backend's message list
    from moto.sqs.models import sqs_backends

    assert [m.body for m in sqs_backends["123456789012"][REGION].get_queue("dlq")._messages] == ["m"]


@mock_aws
def test_disabled_event_source_mapping_is_not_invoked_by_moto() -> None:
    """The runtime disables moto's synchronous SQS mapping (a delete alone does not detach it in moto 5.2.5)."""
    from moto.sqs.models import sqs_backends

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="esm")["QueueUrl"]
    queue = sqs_backends["123456789012"][REGION].get_queue("esm")

    class Mapping:
        enabled = False

    queue.lambda_event_source_mappings["arn:fake"] = cast(Any, Mapping())  # only .enabled is read first
    sqs.send_message(QueueUrl=url, MessageBody="stays")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["stays"]


def _callback_machine(sfn: Any, sqs: Any) -> tuple[str, str]:
    """A ``.waitForTaskToken`` task (SQS integration: moto needs no Lambda for it) with ``TimeoutSecondsPath``,
    whose timeout is caught, as AwaitCopy's ``WaitForCopyEvent`` is."""
    url = sqs.create_queue(QueueName=f"tokens-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": url, "MessageBody": {"token.$": "$$.Task.Token"}},
                "TimeoutSecondsPath": "$.seconds",
                "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timedOut", "Next": "TimedOut"}],
                "End": True,
            },
            "TimedOut": {"Type": "Pass", "End": True},
        },
    }
    arn = sfn.create_state_machine(name=f"cb-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=ROLE)
    return str(arn["stateMachineArn"]), str(url)


def _token(sqs: Any, url: str) -> str:
    for _ in range(100):
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
        if messages:
            return str(json.loads(messages[0]["Body"])["token"])
        time.sleep(0.02)
    raise AssertionError("no task token was sent")


def _finished(sfn: Any, arn: str) -> dict[str, Any]:
    for _ in range(300):
        described = cast(dict[str, Any], sfn.describe_execution(executionArn=arn))
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.02)
    raise AssertionError("the execution did not finish")


@mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
def test_wait_for_task_token_is_woken_by_send_task_success_and_times_out() -> None:
    """What AwaitCopy's callback wait relies on, natively in moto's interpreter (no patch needed): SendTaskSuccess
    ends the wait with its output; TimeoutSecondsPath ends it with a catchable ``States.Timeout``; a token whose wait
    already ended is refused with one of the codes ``hicopy.adapters.aws.TaskWaker`` treats as "moved on"."""
    from hicopy.adapters.aws import TaskWaker

    sfn, sqs = boto3.client("stepfunctions", region_name=REGION), boto3.client("sqs", region_name=REGION)
    machine, url = _callback_machine(sfn, sqs)
    woken = sfn.start_execution(stateMachineArn=machine, name="woken", input=json.dumps({"seconds": 30}))[
        "executionArn"
    ]
    token = _token(sqs, url)
    sfn.send_task_success(taskToken=token, output=json.dumps({"woken": True}))
    done = _finished(sfn, woken)
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"woken": True}
    assert TaskWaker(client=sfn).wake(token) is False  # that wait is over

    started = time.monotonic()
    timed = sfn.start_execution(stateMachineArn=machine, name="timed", input=json.dumps({"seconds": 1}))["executionArn"]
    late = _token(sqs, url)
    done = _finished(sfn, timed)
    assert 0.9 <= time.monotonic() - started < 5
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"])["timedOut"]["Error"] == "States.Timeout"
    assert TaskWaker(client=sfn).wake(late) is False
