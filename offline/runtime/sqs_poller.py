"""The SQS -> Lambda event source mapping, done the way Lambda does it (moto's is synchronous and one record per call).

For each (enabled-in-the-template) SQS mapping, ``poll_once``:

1. ``ReceiveMessage`` up to ``BatchSize`` messages (several receives of 10 if ``BatchSize`` > 10), with all system
   and message attributes; messages not matching the mapping's ``FilterCriteria`` are deleted, as Lambda does;
2. invokes the function **once with the whole batch** (``Records`` in the Lambda SQS event shape);
3. on a function error, the whole batch is failed; with ``ReportBatchItemFailures`` only the ids listed in
   ``batchItemFailures`` are failed (an invalid response fails the whole batch, as documented);
4. deletes the successful messages; failed ones stay in flight and become visible again when the queue's
   visibility timeout has passed **in scaled time** (the poller releases them early with
   ``ChangeMessageVisibility(0)``), so ``maxReceiveCount`` -> DLQ redrive happens after the right number of receives
   (moto performs the move on the next receive). A handler that set a failed message's visibility itself
   (``ChangeMessageVisibility``, reported through ``requested_visibility``) gets it released after that many
   virtual seconds instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


@dataclass
class Mapping:
    uuid: str
    function_arn: str
    queue_arn: str
    queue_url: str
    batch_size: int
    report_batch_item_failures: bool
    visibility_timeout: int
    filters: list[Any] = field(default_factory=list)


@dataclass
class BatchResult:
    mapping: Mapping
    received: int
    failed: list[str]
    filtered: int = 0
    function_error: bool = False


class SqsPoller:
    def __init__(
        self,
        *,
        sqs: Any,
        lambda_client: Any,
        region: str,
        real_seconds: Callable[[float], float],
        on_batch: Callable[[BatchResult], None] | None = None,
        on_receive: Callable[[str, int], None] | None = None,
    ) -> None:
        self.sqs = sqs
        self.lambda_client = lambda_client
        self.region = region
        self.real_seconds = real_seconds
        self.on_batch = on_batch
        self.on_receive = on_receive  # (function ARN, messages) before the function is invoked
        self.mappings: list[Mapping] = []
        self.batches: list[BatchResult] = []
        self._release: list[tuple[float, str, str]] = []  # (due monotonic, queue url, receipt handle)
        self._requested: dict[str, int] = {}  # receipt handle -> visibility timeout a handler asked for (virtual s)
        self._releasing = threading.local()
        self._lock = threading.Lock()

    def requested_visibility(self, receipt_handle: str, seconds: int) -> None:
        """A ``ChangeMessageVisibility`` was made (by a handler, unless the poller is releasing a message)."""
        if getattr(self._releasing, "active", False):
            return
        with self._lock:
            self._requested[receipt_handle] = seconds

    def add_mapping(self, esm: dict[str, Any]) -> Mapping:
        from moto.events.models import EventPattern

        queue_arn = esm["EventSourceArn"]
        account, name = queue_arn.split(":")[4:6]
        url = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
        filters = [EventPattern.load(f["Pattern"]) for f in ((esm.get("FilterCriteria") or {}).get("Filters") or [])]
        mapping = Mapping(
            uuid=esm["UUID"],
            function_arn=esm["FunctionArn"],
            queue_arn=queue_arn,
            queue_url=url,
            batch_size=int(esm.get("BatchSize") or 10),
            report_batch_item_failures="ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or []),
            visibility_timeout=int(attrs.get("VisibilityTimeout", 30)),
            filters=filters,
        )
        self.mappings.append(mapping)
        return mapping

    # ------------------------------------------------------------------------------------------------ state

    def in_flight_releases(self) -> int:
        with self._lock:
            return len(self._release)

    def _queue(self, mapping: Mapping) -> Any:
        from moto.sqs.models import sqs_backends

        account, name = mapping.queue_arn.split(":")[4:6]
        return sqs_backends[account][self.region].get_queue(name)

    def visible(self, mapping: Mapping) -> int:
        return int(self._queue(mapping).approximate_number_of_messages)

    def backlog(self) -> int:
        """Messages visible, in flight or delayed in the mapped queues (read from moto's backend, no API call)."""
        total = 0
        for m in self.mappings:
            q = self._queue(m)
            total += int(q.approximate_number_of_messages)
            total += int(q.approximate_number_of_messages_not_visible)
            total += int(q.approximate_number_of_messages_delayed)
        return total

    # ------------------------------------------------------------------------------------------------ polling

    def release_due(self) -> int:
        now = time.monotonic()
        with self._lock:
            due = [r for r in self._release if r[0] <= now]
            self._release = [r for r in self._release if r[0] > now]
        self._releasing.active = True
        try:
            for _, url, handle in due:
                with contextlib.suppress(ClientError):  # deleted, or moved to the DLQ meanwhile
                    self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
        finally:
            self._releasing.active = False
        return len(due)

    def poll_once(self) -> int:
        """One receive + invoke per mapping. Returns the number of messages received."""
        moved = self.release_due()
        for mapping in self.mappings:
            moved += self._poll_mapping(mapping)
        return moved

    def _receive(self, mapping: Mapping) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < mapping.batch_size:
            want = min(10, mapping.batch_size - len(messages))
            got = self.sqs.receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=want,
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            messages.extend(got)
            if len(got) < want:
                break
        return messages

    def _record(self, mapping: Mapping, msg: dict[str, Any]) -> dict[str, Any]:
        attributes = {}
        for name, value in (msg.get("MessageAttributes") or {}).items():
            binary = value.get("BinaryValue")
            attributes[name] = {
                "stringValue": value.get("StringValue"),
                "binaryValue": base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary,
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value["DataType"],
            }
        record: dict[str, Any] = {
            "messageId": msg["MessageId"],
            "receiptHandle": msg["ReceiptHandle"],
            "body": msg["Body"],
            "attributes": dict(msg.get("Attributes") or {}),
            "messageAttributes": attributes,
            "md5OfBody": msg["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": mapping.queue_arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in msg:
            record["md5OfMessageAttributes"] = msg["MD5OfMessageAttributes"]
        return record

    def _matches(self, mapping: Mapping, record: dict[str, Any]) -> bool:
        if not mapping.filters:
            return True
        candidate = dict(record)
        with contextlib.suppress(ValueError):
            candidate["body"] = json.loads(record["body"])
        return any(f.matches_event(candidate) for f in mapping.filters)

    def _poll_mapping(self, mapping: Mapping) -> int:
        if not self.visible(mapping):
            return 0
        messages = self._receive(mapping)
        if not messages:
            return 0
        records, filtered = [], 0
        for msg in messages:
            record = self._record(mapping, msg)
            if self._matches(mapping, record):
                records.append(record)
            else:
                filtered += 1
                self.sqs.delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=msg["ReceiptHandle"])
        if not records:
            return len(messages)
        ids = {r["messageId"] for r in records}
        if self.on_receive is not None:
            self.on_receive(mapping.function_arn, len(messages))
        response = self.lambda_client.invoke(
            FunctionName=mapping.function_arn, Payload=json.dumps({"Records": records}).encode()
        )
        raw = response["Payload"].read()
        function_error = bool(response.get("FunctionError"))
        failed: set[str]
        if function_error:
            failed = set(ids)
        elif mapping.report_batch_item_failures:
            failed = self._batch_item_failures(raw, ids)
        else:
            failed = set()
        now = time.monotonic()
        for record in records:
            handle = record["receiptHandle"]
            if record["messageId"] in failed:
                with self._lock:
                    seconds = self._requested.pop(handle, mapping.visibility_timeout)
                    self._release.append((now + self.real_seconds(seconds), mapping.queue_url, handle))
            else:
                with self._lock:
                    self._requested.pop(handle, None)
                with contextlib.suppress(ClientError):
                    self.sqs.delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=handle)
        result = BatchResult(
            mapping=mapping,
            received=len(messages),
            failed=sorted(failed),
            filtered=filtered,
            function_error=function_error,
        )
        self.batches.append(result)
        if self.on_batch is not None:
            self.on_batch(result)
        return len(messages)

    @staticmethod
    def _batch_item_failures(raw: bytes, ids: set[str]) -> set[str]:
        """Lambda's rules: empty/null response = all succeeded; a malformed one = the whole batch failed."""
        if not raw or raw.strip() in (b"null", b"{}", b'""'):
            return set()
        try:
            body = json.loads(raw)
        except ValueError:
            return set(ids)
        if not isinstance(body, dict):
            return set(ids)
        items = body.get("batchItemFailures")
        if items is None or items == []:
            return set()
        if not isinstance(items, list):
            return set(ids)
        failed: set[str] = set()
        for item in items:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in ids:
                return set(ids)
            failed.add(identifier)
        return failed
