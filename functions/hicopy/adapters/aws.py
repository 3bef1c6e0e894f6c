"""Small boto3 adapters: EventBridge publisher, Step Functions starter and reader, SQS senders, S3 reader (the state
table's adapters: ``hicopy.adapters.state_table``).

Each takes an optional client (tests inject one) and creates its boto3 client lazily, never at import time; each
makes its calls inside ``calling``, the one translation of AWS errors (``hicopy.adapters.edge``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from hicopy.adapters.edge import AwsAdapter
from hicopy.domain.ports import (
    ExecutionFacts,
)
from hicopy.errors import EventPublishFailed

# DynamoDB's answer to a conditional write whose condition does not hold: an expected outcome, handled where it is.
CONDITION_FAILED = "ConditionalCheckFailedException"


class EventBridgePublisher(AwsAdapter):
    """Puts events on one bus. ``PutEvents`` answers 200 even when entries fail: ``FailedEntryCount`` is checked."""

    SERVICE = "events"

    def __init__(self, bus_name: str, source: str, client: Any | None = None) -> None:
        self.bus_name, self.source, self._client = bus_name, source, client

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        entry = {
            "EventBusName": self.bus_name,
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":")),
        }
        with self.calling(f"PutEvents {detail_type}"):
            result = self.client.put_events(Entries=[entry])
        if result.get("FailedEntryCount", 0):
            failures = [
                f"{e.get('ErrorCode')}: {e.get('ErrorMessage')}"
                for e in result.get("Entries", [])
                if e.get("ErrorCode")
            ]
            raise EventPublishFailed(f"PutEvents {detail_type} not accepted: {'; '.join(failures) or 'unknown error'}")


class SingleSendPublisher(EventBridgePublisher):
    """The publisher of the terminal and rejection events, whose lost answers ``hicopy.domain.delivery`` reconciles
    with their delivery receipts: botocore does not retry ``PutEvents`` here, because its standard mode would send
    the request again after a read timeout or a dropped connection, when the first may have been accepted (a
    duplicate nobody sees). Every failure goes to the caller's own retries (Publish's retrier, a rejected message's
    redelivery); a call whose answer was lost is ``ServiceCallInterrupted``."""

    CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1})


class ExecutionStarter(AwsAdapter):
    """``ExecutionsPort``: one state-machine execution per job; the execution name is the job ID (duplicates are
    detected)."""

    SERVICE = "stepfunctions"

    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self.state_machine_arn, self._client = state_machine_arn, client

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
        """(execution ARN, started). ``started`` is False when an execution of that name already exists."""
        try:
            with self.calling("StartExecution", expected=["ExecutionAlreadyExists"]):
                r = self.client.start_execution(
                    stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload, separators=(",", ":"))
                )
        except ClientError:  # an execution of that name exists: the job was started before
            return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}", False
        return str(r["executionArn"]), True

    def input_of(self, execution_arn: str) -> dict[str, Any]:
        """The execution's input (DescribeExecution): how a reused job ID is told apart from a redelivered job."""
        with self.calling("DescribeExecution"):
            r = self.client.describe_execution(executionArn=execution_arn)
        value = json.loads(r.get("input") or "{}")
        return value if isinstance(value, dict) else {}


class ExecutionReader(AwsAdapter):
    """``ExecutionReaderPort``: ``DescribeExecution`` and ``GetExecutionHistory`` (newest first, a bounded number of
    pages) of the copy state machine's executions."""

    SERVICE = "stepfunctions"
    HISTORY_PAGES = 10  # of 100 events: a task state is entered every few events

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    def describe(self, execution_arn: str) -> ExecutionFacts:
        with self.calling("DescribeExecution"):
            d = self.client.describe_execution(executionArn=execution_arn)
        return ExecutionFacts(
            execution_arn=execution_arn, status=str(d["status"]), input=d.get("input"), error=d.get("error")
        )

    def last_task_input(self, execution_arn: str) -> tuple[str, str] | None:
        params: dict[str, Any] = {
            "executionArn": execution_arn,
            "reverseOrder": True,
            "maxResults": 100,
            "includeExecutionData": True,
        }
        for _ in range(self.HISTORY_PAGES):
            with self.calling("GetExecutionHistory"):
                page = self.client.get_execution_history(**params)
            for event in page.get("events", []):
                details = event.get("stateEnteredEventDetails") or {}
                if event.get("type") != "TaskStateEntered" or "input" not in details:
                    continue
                if (details.get("inputDetails") or {}).get("truncated"):
                    continue
                return str(details["name"]), str(details["input"])
            if not page.get("nextToken"):
                return None
            params["nextToken"] = page["nextToken"]
        return None


BODY_ENCODING_ATTRIBUTE = "hicopyBodyEncoding"


class QueueSender(AwsAdapter):
    """Sends one message. A body that is not valid Unicode text (a lone surrogate: ``str`` allows it, UTF-8 and SQS
    do not) is sent base64-encoded, with the attribute ``hicopyBodyEncoding = base64``, so that nothing is lost;
    every other body is sent unchanged."""

    SERVICE = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url, self._client = queue_url, client

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        try:
            body.encode("utf-8")
        except UnicodeEncodeError:
            body = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode("ascii")
            attributes = {**(attributes or {}), BODY_ENCODING_ATTRIBUTE: "base64"}
        params: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": body}
        if attributes:
            params["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        with self.calling("SQS SendMessage"):
            return str(self.client.send_message(**params)["MessageId"])


class JobRequeuer(AwsAdapter):
    """The job queue seen by the consumer's admission (``hicopy.domain.admission``): sends a deferred job's copy
    back with ``DelaySeconds`` — the received body unchanged, every message attribute (String, Number, Binary) as
    received plus ``extra`` — and reads the queue's depth for the drain estimate."""

    SERVICE = "sqs"
    MAX_ATTRIBUTES = 10  # SQS: at most 10 message attributes per message
    DEPTH_ATTRIBUTES = (
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    )

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url, self._client = queue_url, client

    def requeue(self, body: str, received: dict[str, Any], extra: dict[str, str], delay_seconds: int) -> bool:
        """Send the copy; False (nothing sent) when the attributes would exceed SQS's 10."""
        attributes: dict[str, Any] = {}
        for name, value in received.items():
            if not isinstance(value, dict) or name in extra:
                continue
            data_type = str(value.get("dataType") or "String")
            if value.get("binaryValue") is not None:
                attributes[name] = {"DataType": data_type, "BinaryValue": base64.b64decode(value["binaryValue"])}
            elif value.get("stringValue") is not None:
                attributes[name] = {"DataType": data_type, "StringValue": str(value["stringValue"])}
        attributes.update({k: {"DataType": "String", "StringValue": v} for k, v in extra.items()})
        if len(attributes) > self.MAX_ATTRIBUTES:
            return False
        with self.calling("SQS SendMessage (deferred job)"):
            self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=body,
                DelaySeconds=max(0, min(900, delay_seconds)),
                MessageAttributes=attributes,
            )
        return True

    def depth(self) -> int:
        """Messages in the queue: visible, delayed (deferred jobs) and in flight."""
        with self.calling("SQS GetQueueAttributes"):
            found = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=list(self.DEPTH_ATTRIBUTES)
            )["Attributes"]
        return sum(int(found.get(name, 0)) for name in self.DEPTH_ATTRIBUTES)


class S3Reader(AwsAdapter):
    """``ImportOutputPort``: reads import output objects by ``s3://`` URI; a missing object is None."""

    SERVICE = "s3"

    def read(self, uri: str) -> bytes | None:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri}")
        bucket, _, key = uri[5:].partition("/")
        try:
            with self.calling(f"S3 GetObject {uri}", expected=["NoSuchKey", "404", "NotFound"]):
                body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError:  # no such object
            return None
        return body


class MessageVisibility(AwsAdapter):
    """Returns a received message to its queue after a delay (``ChangeMessageVisibility``)."""

    SERVICE = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url, self._client = queue_url, client

    def delay(self, receipt_handle: str, seconds: int) -> None:
        with self.calling("SQS ChangeMessageVisibility"):
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )


class TaskWaker(AwsAdapter):
    """``TaskWakerPort``: ``SendTaskSuccess``. A wait that already ended (woken before, timed out, execution gone)
    answers ``TaskTimedOut``, ``TaskDoesNotExist`` or ``InvalidToken``: expected, the waiter moved on."""

    SERVICE = "stepfunctions"
    ENDED = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")

    def wake(self, token: str) -> bool:
        try:
            with self.calling("SendTaskSuccess", expected=self.ENDED):
                self.client.send_task_success(taskToken=token, output='{"woken":true}')
        except ClientError:  # the wait already ended
            return False
        return True
