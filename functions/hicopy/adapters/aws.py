"""Small boto3 adapters: EventBridge publisher, DynamoDB stores, Step Functions starter, SQS sender, S3 reader.

Each takes an optional client (tests inject one) and creates its boto3 client lazily, never at import time; each
makes its calls inside ``calling``, the one translation of AWS errors (``hicopy.adapters.edge``).
"""

from __future__ import annotations

import base64
import contextlib
import json
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from hicopy.adapters.edge import AwsAdapter
from hicopy.domain.ports import CopyVersion, PaceKey, SubmissionRecord
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


class _StateTable(AwsAdapter):
    """An adapter on the orchestrator's DynamoDB state table (one string key, ``pk``). The key formats are the
    adapters' business: the domain passes IDs."""

    SERVICE = "dynamodb"

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name, self._client = table_name, client


class DynamoPaceStore(_StateTable):
    """``PaceStorePort`` on the state table: item ``pk = pace#<action>`` for the slots, ``pace#<action>#call`` for the
    turns; attribute ``tat`` (epoch seconds)."""

    @staticmethod
    def _key(key: PaceKey) -> dict[str, Any]:
        return {"pk": {"S": f"pace#{key.action}#call" if key.turn else f"pace#{key.action}"}}

    def read(self, key: PaceKey) -> float | None:
        with self.calling("pacing read"):
            item = self.client.get_item(TableName=self.table_name, Key=self._key(key), ConsistentRead=True).get("Item")
        return float(item["tat"]["N"]) if item else None

    def compare_and_set(self, key: PaceKey, expected: float | None, new: float) -> bool:
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": self._key(key),
            "UpdateExpression": "SET tat = :new",
            "ExpressionAttributeValues": {":new": {"N": _num(new)}},
        }
        if expected is None:
            params["ConditionExpression"] = "attribute_not_exists(tat)"
        else:
            params["ConditionExpression"] = "tat = :old"
            params["ExpressionAttributeValues"][":old"] = {"N": _num(expected)}
        try:
            with self.calling("pacing write", expected=[CONDITION_FAILED]):
                self.client.update_item(**params)
        except ClientError:  # the condition failed: another caller won the race
            return False
        return True


class DynamoSubmissionStore(_StateTable):
    """``SubmissionStorePort`` on the state table: item ``pk = submit#<jobId>#<chunk>``, kept 30 days."""

    TTL_SECONDS = 30 * 24 * 3600

    @staticmethod
    def _key(job_id: str, chunk: int) -> dict[str, Any]:
        return {"pk": {"S": f"submit#{job_id}#{chunk}"}}

    def begin(self, record: SubmissionRecord) -> SubmissionRecord | None:
        item = {
            **self._key(record.job_id, record.chunk),
            "status": {"S": "SUBMITTING"},
            "startedAt": {"N": _num(record.started_at)},
            "expiresAt": {"N": str(int(record.started_at) + self.TTL_SECONDS)},
        }
        if record.destination_image_set_id is not None:
            item["destinationImageSetId"] = {"S": record.destination_image_set_id}
        if record.destination_version_before is not None:
            item["destinationVersionBefore"] = {"S": record.destination_version_before}
        try:
            with self.calling("submission record write", expected=[CONDITION_FAILED]):
                self.client.put_item(
                    TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            return None
        except ClientError:  # a record exists: read it
            pass
        with self.calling("submission record read"):
            found = self.client.get_item(
                TableName=self.table_name, Key=self._key(record.job_id, record.chunk), ConsistentRead=True
            ).get("Item")
        if not found:  # abandoned in between: try once more
            return self.begin(record)
        return SubmissionRecord(
            job_id=record.job_id,
            chunk=record.chunk,
            status=found["status"]["S"],
            started_at=float(found["startedAt"]["N"]),
            destination_image_set_id=found.get("destinationImageSetId", {}).get("S"),
            destination_version_before=found.get("destinationVersionBefore", {}).get("S"),
            destination_version_id=found.get("destinationVersionId", {}).get("S"),
            submitted_at=float(found["submittedAt"]["N"]) if "submittedAt" in found else None,
        )

    def complete(self, record: SubmissionRecord) -> None:
        values: dict[str, Any] = {
            ":s": {"S": "SUBMITTED"},
            ":d": {"S": record.destination_image_set_id or ""},
            ":v": {"S": record.destination_version_id or ""},
            ":t": {"N": _num(record.submitted_at or record.started_at)},
        }
        expr = "SET #s = :s, destinationImageSetId = :d, destinationVersionId = :v, submittedAt = :t"
        if record.destination_version_before is not None:
            expr += ", destinationVersionBefore = :b"
            values[":b"] = {"S": record.destination_version_before}
        with self.calling("submission record update"):
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(record.job_id, record.chunk),
                UpdateExpression=expr,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )

    def abandon(self, job_id: str, chunk: int) -> None:
        # Only a SUBMITTING record: one already SUBMITTED (or gone) is left as it is.
        with contextlib.suppress(ClientError), self.calling("submission record delete", expected=[CONDITION_FAILED]):
            self.client.delete_item(
                TableName=self.table_name,
                Key=self._key(job_id, chunk),
                ConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "SUBMITTING"}},
            )


class ExecutionStarter(AwsAdapter):
    """Starts one state-machine execution per job; the execution name is the job ID (duplicates are detected)."""

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


def _num(value: float) -> str:
    return str(Decimal(repr(value)))


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


class _OnceMarker(_StateTable):
    """Marks a key as done in the state table (a put); ``_seen`` tells whether it already was."""

    TTL_SECONDS = 90 * 24 * 3600

    def _seen(self, pk: str) -> bool:
        with self.calling("state table read"):
            item = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)
        return "Item" in item

    def _mark(self, pk: str, now: float, attributes: dict[str, str]) -> None:
        item = {
            "pk": {"S": pk},
            "at": {"N": _num(now)},
            "expiresAt": {"N": str(int(now) + self.TTL_SECONDS)},
            **{k: {"S": v} for k, v in attributes.items()},
        }
        with self.calling("state table write"):
            self.client.put_item(TableName=self.table_name, Item=item)


class PublishedMarker(_OnceMarker):
    """``PublishedMarkerPort`` on the state table: item ``pk = outcome#<jobId>``, attribute ``detailType``."""

    def seen(self, job_id: str) -> bool:
        return self._seen(f"outcome#{job_id}")

    def mark(self, job_id: str, now: float, *, detail_type: str) -> None:
        self._mark(f"outcome#{job_id}", now, {"detailType": detail_type})


class ImportMarker(_OnceMarker):
    """``ImportMarkerPort`` on the state table: item ``pk = import#<datastoreId>#<importJobId>``, attributes
    ``status`` and ``jobs`` (how many copy jobs were planned)."""

    def seen(self, datastore_id: str, import_job_id: str) -> bool:
        return self._seen(f"import#{datastore_id}#{import_job_id}")

    def mark(self, datastore_id: str, import_job_id: str, now: float, *, status: str, jobs: int) -> None:
        self._mark(f"import#{datastore_id}#{import_job_id}", now, {"status": status, "jobs": str(jobs)})


class DynamoWakeStore(_StateTable):
    """``WakeStorePort`` on the state table: item ``pk = wake#<datastoreId>#<imageSetId>#<versionId>``, attributes
    ``token`` (the latest parked waiter) and ``seenAt`` (a copy event came), kept a day. Each side is one atomic
    ``UpdateItem`` that returns what the other side left (``ALL_OLD``)."""

    TTL_SECONDS = 24 * 3600

    @staticmethod
    def _key(version: CopyVersion) -> dict[str, Any]:
        return {"pk": {"S": f"wake#{version.datastore_id}#{version.image_set_id}#{version.version_id}"}}

    def _update(self, version: CopyVersion, expression: str, values: dict[str, Any], now: float) -> dict[str, Any]:
        with self.calling("wake record update"):
            old: dict[str, Any] = self.client.update_item(
                TableName=self.table_name,
                Key=self._key(version),
                UpdateExpression=expression,
                ExpressionAttributeNames={"#t": "token"},  # a DynamoDB reserved word
                ExpressionAttributeValues={**values, ":e": {"N": str(int(now) + self.TTL_SECONDS)}},
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        return old

    def park(self, version: CopyVersion, token: str, now: float) -> bool:
        old = self._update(version, "SET #t = :t, expiresAt = :e REMOVE seenAt", {":t": {"S": token}}, now)
        return "seenAt" in old

    def mark(self, version: CopyVersion, now: float) -> str | None:
        old = self._update(version, "SET seenAt = :s, expiresAt = :e REMOVE #t", {":s": {"N": _num(now)}}, now)
        token = old.get("token", {}).get("S")
        return str(token) if token is not None else None


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
