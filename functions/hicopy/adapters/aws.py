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
from hicopy.domain.ports import (
    CopyVersion,
    CorruptPaceValue,
    ExecutionFacts,
    ImportMark,
    PaceKey,
    PaceValue,
    PlannedCopy,
    SubmissionRecord,
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

    def read(self, key: PaceKey) -> PaceValue:
        with self.calling("pacing read"):
            item = self.client.get_item(TableName=self.table_name, Key=self._key(key), ConsistentRead=True).get("Item")
        if not item or "tat" not in item:
            return None
        value = item["tat"]
        try:
            return float(value["N"])
        except (KeyError, TypeError, ValueError):  # not a number attribute: the domain repairs it
            return CorruptPaceValue(value)

    def compare_and_set(self, key: PaceKey, expected: PaceValue, new: float) -> bool:
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
            old = expected.raw if isinstance(expected, CorruptPaceValue) else {"N": _num(expected)}
            params["ExpressionAttributeValues"][":old"] = old
        try:
            with self.calling("pacing write", expected=[CONDITION_FAILED]):
                self.client.update_item(**params)
        except ClientError:  # the condition failed: another caller won the race
            return False
        return True


class DynamoSubmissionStore(_StateTable):
    """``SubmissionStorePort`` on the state table: item ``pk = submit#<jobId>#<chunk>``, kept 30 days; the claim of a
    new image set by the (job, chunk) whose copy it is: item ``pk = claim#<imageSetId>``, attributes ``jobId`` and
    ``chunk``, kept as long."""

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

    def claim(self, image_set_id: str, job_id: str, chunk: int, now: float) -> bool:
        owner = {"jobId": {"S": job_id}, "chunk": {"N": str(chunk)}}
        expires = {"N": str(int(now) + self.TTL_SECONDS)}
        item = {"pk": {"S": f"claim#{image_set_id}"}, **owner, "expiresAt": expires}
        try:
            with self.calling("image set claim write", expected=[CONDITION_FAILED]):
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk) OR (jobId = :j AND chunk = :c)",
                    ExpressionAttributeValues={":j": owner["jobId"], ":c": owner["chunk"]},
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == CONDITION_FAILED:
                return False
            raise
        return True


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
    """Marks a key as done in the state table (a put); ``_found`` reads it back, ignoring an expired item.

    DynamoDB's TTL deletes expired items lazily (up to a few days late): an item past its ``expiresAt`` is gone as
    far as the markers are concerned."""

    TTL_SECONDS = 90 * 24 * 3600

    def _found(self, pk: str, now: float) -> dict[str, Any] | None:
        with self.calling("state table read"):
            item = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)
        found: dict[str, Any] | None = item.get("Item")
        if found is None or ("expiresAt" in found and float(found["expiresAt"]["N"]) <= now):
            return None
        return found

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
    """``PublishedMarkerPort`` on the state table: item ``pk = outcome#<jobId>``, attributes ``detailType`` and
    ``receivedAt`` (the run it was published for; a later run of the same job ID overwrites it)."""

    def seen(self, job_id: str, received_at: str, now: float) -> bool:
        found = self._found(f"outcome#{job_id}", now)
        if found is None:
            return False
        # An item without receivedAt was written before runs were told apart: within its lifetime the execution
        # name cannot have been reused, so it is this run's.
        run = found.get("receivedAt", {}).get("S")
        return run is None or run == received_at

    def mark(self, job_id: str, received_at: str, now: float, *, detail_type: str) -> None:
        self._mark(f"outcome#{job_id}", now, {"detailType": detail_type, "receivedAt": received_at})


class RejectionMarker(_OnceMarker):
    """``RejectionMarkerPort`` on the state table: item ``pk = rejected#<messageId>``, attribute ``stage``."""

    def stage(self, message_id: str) -> str | None:
        with self.calling("state table read"):
            item = self.client.get_item(
                TableName=self.table_name, Key={"pk": {"S": f"rejected#{message_id}"}}, ConsistentRead=True
            ).get("Item")
        return str(item["stage"]["S"]) if item and "stage" in item else None

    def mark(self, message_id: str, now: float, *, stage: str) -> None:
        self._mark(f"rejected#{message_id}", now, {"stage": stage})


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


class ImportMarker(_OnceMarker):
    """``ImportMarkerPort`` on the state table: item ``pk = import#<datastoreId>#<importJobId>``, attributes
    ``status``, ``jobs`` (how many copy jobs were planned), ``jobIds`` (the first of them, comma-separated) and
    ``reported`` (``true`` once both reports were published)."""

    def get(self, datastore_id: str, import_job_id: str, now: float) -> ImportMark | None:
        found = self._found(f"import#{datastore_id}#{import_job_id}", now)
        if found is None:
            return None
        ids = found.get("jobIds", {}).get("S", "")
        return ImportMark(
            status=found.get("status", {}).get("S", ""),
            jobs=int(found.get("jobs", {}).get("S", "0")),
            job_ids=tuple(i for i in ids.split(",") if i),
            # An item without ``reported`` predates the reports' own step: it was planned and reported together.
            reported=found.get("reported", {}).get("S", "true") == "true",
        )

    def mark(self, datastore_id: str, import_job_id: str, now: float, mark: ImportMark) -> None:
        attributes = {
            "status": mark.status,
            "jobs": str(mark.jobs),
            "jobIds": ",".join(mark.job_ids),
            "reported": "true" if mark.reported else "false",
        }
        self._mark(f"import#{datastore_id}#{import_job_id}", now, attributes)


class PlanRecords(_StateTable):
    """``PlanRecordPort`` on the state table: item ``pk = plan#<jobId>``, written by the import planner before it
    queues the job, kept 90 days (as long as an execution name, i.e. the job ID, cannot be reused)."""

    TTL_SECONDS = 90 * 24 * 3600
    _TEXT = {
        "datastoreId": "datastore_id",
        "importJobId": "import_job_id",
        "sourceImageSetId": "source_image_set_id",
        "sourceVersionId": "source_version_id",
        "destinationImageSetId": "destination_image_set_id",
    }

    def record(self, plan: PlannedCopy, now: float) -> None:
        item: dict[str, Any] = {
            "pk": {"S": f"plan#{plan.job_id}"},
            "wholeCopy": {"BOOL": plan.whole_copy},
            "deleteSource": {"BOOL": plan.delete_source},
            "at": {"N": _num(now)},
            "expiresAt": {"N": str(int(now) + self.TTL_SECONDS)},
        }
        for attribute, name in self._TEXT.items():
            value = getattr(plan, name)
            if value is not None:
                item[attribute] = {"S": value}
        with self.calling("plan record write"):
            self.client.put_item(TableName=self.table_name, Item=item)

    def get(self, job_id: str) -> PlannedCopy | None:
        with self.calling("plan record read"):
            item = self.client.get_item(
                TableName=self.table_name, Key={"pk": {"S": f"plan#{job_id}"}}, ConsistentRead=True
            ).get("Item")
        if not item:
            return None
        text = {name: item.get(attribute, {}).get("S") for attribute, name in self._TEXT.items()}
        return PlannedCopy(
            job_id=job_id,
            datastore_id=text["datastore_id"] or "",
            import_job_id=text["import_job_id"] or "",
            source_image_set_id=text["source_image_set_id"] or "",
            source_version_id=text["source_version_id"],
            destination_image_set_id=text["destination_image_set_id"],
            whole_copy=bool(item.get("wholeCopy", {}).get("BOOL", False)),
            delete_source=bool(item.get("deleteSource", {}).get("BOOL", False)),
        )


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
