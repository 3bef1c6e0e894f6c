"""Backpressure in the consumer (issue #13), against moto: a job that the pacing schedule has no room for goes back
to the job queue as a delayed copy (same body and attributes, the original message ID and first-seen time), starts
once there is room under its original message ID, and is rejected with an event past the queue's retention."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from hicopy.contract import REJECTED
from hicopy.domain.admission import ADMISSION_ATTRIBUTE, AdmissionPolicy
from hicopy.handlers import consumer
from tests.functional.conftest import Stack
from tests.support.aws import TABLE
from tests.support.handlers import CTX, sqs_record, string_attributes

MESSAGE_ID = "00000000-aaaa-bbbb-cccc-dddddddddddd"


@pytest.fixture(autouse=True)
def short_delays(stack: Stack) -> Iterator[None]:
    """Deferral delays of 1 s (moto delays messages in real time); every other setting as shipped."""
    consumer._admission()[0].policy = AdmissionPolicy(first_delay=1.0, interactive_delay=1.0)
    yield


def _book_schedule(stack: Stack, seconds_ahead: float) -> None:
    """Another job's slots: the CopyImageSet schedule booked ``seconds_ahead`` into the future."""
    boto3.client("dynamodb").put_item(
        TableName=TABLE, Item={"pk": {"S": "pace#CopyImageSet"}, "tat": {"N": str(stack.clock.t + seconds_ahead)}}
    )


def _job(stack: Stack, **extra: Any) -> str:
    return json.dumps({"datastoreId": stack.datastore_id, "source": {"imageSetId": "a" * 32}, **extra})


def _receive(stack: Stack) -> list[dict[str, Any]]:
    time.sleep(1.2)  # the deferral's delay
    return (
        boto3.client("sqs")
        .receive_message(
            QueueUrl=stack.job_queue_url, MessageAttributeNames=["All"], AttributeNames=["All"], MaxNumberOfMessages=10
        )
        .get("Messages", [])
    )


def _as_record(stack: Stack, msg: dict[str, Any]) -> dict[str, Any]:
    """The received copy as a Lambda record, sent "now" on the handlers' (fake) clock."""
    attributes = {
        k: {"stringValue": v["StringValue"], "dataType": v["DataType"]} for k, v in msg["MessageAttributes"].items()
    }
    record = sqs_record(msg["Body"], msg["MessageId"], attributes)
    record["attributes"]["SentTimestamp"] = str(int(stack.clock.t * 1000))
    return record


def test_a_full_schedule_defers_the_job_then_it_starts_under_its_original_id(stack: Stack) -> None:
    _book_schedule(stack, 3600)
    body = _job(stack, correlationId="order-1")
    record = sqs_record(body, MESSAGE_ID, string_attributes({"senderTag": "pacs-7"}))
    assert consumer.handler({"Records": [record]}, CTX) == {"batchItemFailures": []}  # the original is deleted
    assert stack.executions() == [] and stack.events() == []

    (copy,) = _receive(stack)
    assert copy["Body"] == body and copy["MessageId"] != MESSAGE_ID
    assert copy["MessageAttributes"]["senderTag"]["StringValue"] == "pacs-7"
    ticket = json.loads(copy["MessageAttributes"][ADMISSION_ATTRIBUTE]["StringValue"])
    assert ticket == {"messageId": MESSAGE_ID, "firstSeen": 1_800_000_000.0, "deferrals": 1}

    _book_schedule(stack, 0)  # room again
    stack.clock.t += 60
    assert consumer.handler({"Records": [_as_record(stack, copy)]}, CTX) == {"batchItemFailures": []}
    (execution,) = stack.executions()
    assert execution["name"] == MESSAGE_ID  # the default job ID survives the deferral
    state = json.loads(
        boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])["input"]
    )
    assert state["trigger"]["messageId"] == MESSAGE_ID and state["job"]["priority"] == "bulk"


def test_an_interactive_job_starts_while_bulk_jobs_wait(stack: Stack) -> None:
    _book_schedule(stack, 300)  # beyond the bulk window, within the interactive one
    bulk = sqs_record(_job(stack, jobId="bulk-1"), MESSAGE_ID)
    interactive = sqs_record(_job(stack, jobId="now-1", priority="interactive"), MESSAGE_ID.replace("0", "1", 1))
    assert consumer.handler({"Records": [bulk, interactive]}, CTX) == {"batchItemFailures": []}
    assert [e["name"] for e in stack.executions()] == ["now-1"]
    (deferred,) = _receive(stack)
    assert json.loads(deferred["Body"])["jobId"] == "bulk-1"


def test_a_job_older_than_the_retention_is_rejected_with_an_event(stack: Stack) -> None:
    _book_schedule(stack, 3600)
    stale = json.dumps({"messageId": MESSAGE_ID, "firstSeen": stack.clock.t - 15 * 86400, "deferrals": 900})
    record = sqs_record(
        _job(stack, jobId="old-1"), "f" * 8 + MESSAGE_ID[8:], string_attributes({ADMISSION_ATTRIBUTE: stale})
    )
    assert consumer.handler({"Records": [record]}, CTX) == {"batchItemFailures": []}
    assert stack.executions() == [] and _receive(stack) == []
    (rejected,) = stack.events()
    assert rejected["detail-type"] == REJECTED and rejected["detail"]["reason"]["code"] == "BacklogExpired"
    assert rejected["detail"]["jobId"] == "old-1"
    (dead,) = stack.dlq()
    assert dead["MessageAttributes"]["rejectionCode"]["StringValue"] == "BacklogExpired"


def test_a_sender_cannot_make_a_job_look_younger(stack: Stack) -> None:
    _book_schedule(stack, 3600)
    future = json.dumps({"messageId": MESSAGE_ID, "firstSeen": stack.clock.t + 10**9, "deferrals": 0})
    record = sqs_record(_job(stack), MESSAGE_ID, string_attributes({ADMISSION_ATTRIBUTE: future}))
    consumer.handler({"Records": [record]}, CTX)
    (copy,) = _receive(stack)
    assert json.loads(copy["MessageAttributes"][ADMISSION_ATTRIBUTE]["StringValue"])["firstSeen"] == 1_800_000_000.0
