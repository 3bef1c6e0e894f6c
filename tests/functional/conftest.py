"""Handlers driven end to end against moto (SQS, EventBridge, DynamoDB, Step Functions API) and the HealthImaging
emulator, with a manual clock shared by the handlers and the emulator (no sleeping)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from hicopy import clock as clock_module
from hicopy.errors import OrchestratorError
from offline.healthimaging import HealthImagingEmulator
from tests.fakes import FakeClock

BUS, SOURCE = "hicopy-events", "hicopy.orchestrator"
ACCOUNT, REGION = "123456789012", "us-east-1"


@dataclass
class LambdaContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _clear_handler_caches() -> None:
    for name, module in list(sys.modules.items()):
        if name.startswith("hicopy."):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


@dataclass
class Stack:
    emulator: HealthImagingEmulator
    clock: FakeClock
    datastore_id: str
    job_queue_url: str
    dlq_url: str
    capture_url: str
    table: str
    state_machine_arn: str

    def events(self) -> list[dict[str, Any]]:
        """Every event our code put on the custom bus (via a capture rule → SQS)."""
        sqs, out = boto3.client("sqs"), []
        while True:
            msgs = sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=m["ReceiptHandle"])

    def dlq(self) -> list[dict[str, Any]]:
        return (
            boto3.client("sqs")
            .receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            .get("Messages", [])
        )


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch):
    clock = FakeClock()
    previous = clock_module.set_clock(clock)
    with mock_aws():
        sqs, events, ddb, sfn = (boto3.client(s) for s in ("sqs", "events", "dynamodb", "stepfunctions"))
        dlq = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
        jobs = sqs.create_queue(QueueName="jobs")["QueueUrl"]
        capture = sqs.create_queue(QueueName="capture")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.create_event_bus(Name=BUS)
        events.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "capture", "Arn": capture_arn}])
        ddb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sm = sfn.create_state_machine(
            name="copy",
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        )
        emulator = HealthImagingEmulator(clock=clock, background=False, copy_duration=10.0)
        datastore_id = emulator.create_datastore("functional")
        env = {
            "DATASTORE_IDS": datastore_id,
            "EVENT_BUS_NAME": BUS,
            "EVENT_SOURCE": SOURCE,
            "STATE_MACHINE_ARN": sm["stateMachineArn"],
            "REJECTED_QUEUE_URL": dlq,
            "JOB_QUEUE_URL": jobs,
            "STATE_TABLE_NAME": "state",
            "MAX_FRAMES_PER_COPY": "1000",
            "COPY_RATE_PER_SECOND": "0.25",
            "COPY_BURST": "1",
            "POST_IMPORT_POLICY": "consolidate",
            "MANIFEST_WAIT_SECONDS": "30",
            "CONSOLIDATE_FORCE": "false",
            "DELETE_AFTER_CONSOLIDATE": "false",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        _clear_handler_caches()
        with emulator:
            yield Stack(emulator, clock, datastore_id, jobs, dlq, capture, "state", sm["stateMachineArn"])
        _clear_handler_caches()
    clock_module.set_clock(previous)


CTX = LambdaContext()


def task(module: Any, state: dict[str, Any], retry: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = module.handler({"state": state, "executionArn": "arn:exec:1", "retryCount": retry}, CTX)
    return result


def caught(state: dict[str, Any], exc: OrchestratorError) -> dict[str, Any]:
    """What a Step Functions Catch with ResultPath $.error adds."""
    cause = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__})
    return {**state, "error": {"Error": type(exc).__name__, "Cause": cause}}
