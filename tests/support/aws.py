"""moto for the handler suites: the AWS resources the handlers use, created in moto, and reading back what the
handlers wrote to them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

ACCOUNT, REGION = "123456789012", "us-east-1"
BUS, SOURCE = "hicopy-events", "hicopy.orchestrator"
TABLE = "state"
IMPORT_BUCKET = "imports"
PASS_DEFINITION = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


@dataclass(frozen=True)
class Resources:
    job_queue_url: str
    dlq_url: str  # the rejected-jobs queue
    capture_url: str  # a capture rule delivers every event of ours on the custom bus here
    state_machine_arn: str


def create_resources() -> Resources:
    """Inside ``mock_aws``: the job queue and its dead-letter queue, the custom bus with a capture rule, the state
    table, the import output bucket, and a state machine that only passes (the handlers start executions, nothing
    runs them)."""
    sqs, events, ddb, sfn, s3 = (boto3.client(s) for s in ("sqs", "events", "dynamodb", "stepfunctions", "s3"))
    dlq = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
    jobs = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    capture = sqs.create_queue(QueueName="capture")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name=BUS)
    events.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "capture", "Arn": capture_arn}])
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket=IMPORT_BUCKET)
    return Resources(jobs, dlq, capture, create_state_machine(sfn, "copy"))


def create_state_machine(sfn: Any, name: str) -> str:
    """A state machine that only passes; returns its ARN."""
    machine = sfn.create_state_machine(
        name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn", definition=PASS_DEFINITION
    )
    arn: str = machine["stateMachineArn"]
    return arn


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message in the queue, with all its attributes (removed from the queue)."""
    out: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
        ).get("Messages", [])
        if not msgs:
            return out
        out += msgs
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(msgs)]
        )
