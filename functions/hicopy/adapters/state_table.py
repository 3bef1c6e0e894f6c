"""The state table (DynamoDB) behind the domain's ports: pacing cells, submission records, the once-only markers,
the planner's records and the copy waker's meeting points. These adapters own the table's key formats
(``pace#``, ``submit#``, ``claim#``, ``outcome#``, ``rejected#``, ``receipt#``, ``import#``, ``plan#``,
``wake#``).

Each takes an optional client (tests inject one) and creates its boto3 client lazily, never at import time; each
makes its calls inside ``calling``, the one translation of AWS errors (``hicopy.adapters.edge``).
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from hicopy.adapters.edge import AwsAdapter
from hicopy.domain.ports import (
    CorruptPaceValue,
    DeliveryState,
    EventIdentity,
    ImportMark,
    PaceKey,
    PaceValue,
    PlannedCopy,
    SubmissionRecord,
)

# DynamoDB's answer to a conditional write whose condition does not hold: an expected outcome, handled where it is.
CONDITION_FAILED = "ConditionalCheckFailedException"


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


def _num(value: float) -> str:
    return str(Decimal(repr(value)))


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


class DeliveryReceipts(_OnceMarker):
    """``DeliveryReceiptPort`` on the state table: item ``pk = receipt#outcome#<jobId>#<receivedAt>`` or
    ``receipt#rejection#<messageId>``; ``detailType`` + ``deliveredAt`` (the receipt) and ``pendingAt`` (a put
    whose answer was lost), each side one ``UpdateItem`` of its own attributes."""

    def state(self, identity: EventIdentity, now: float) -> DeliveryState:
        found = self._found(_receipt_key(identity), now) or {}
        pending = found.get("pendingAt", {}).get("N")
        return DeliveryState(found.get("detailType", {}).get("S"), float(pending) if pending is not None else None)

    def pend(self, identity: EventIdentity, now: float) -> None:
        self._update(identity, now, "pendingAt = :t", {})

    def receive(self, identity: EventIdentity, now: float, *, detail_type: str) -> None:
        self._update(identity, now, "deliveredAt = :t, detailType = :d", {":d": {"S": detail_type}})

    def _update(self, identity: EventIdentity, now: float, expression: str, values: dict[str, Any]) -> None:
        expires = {"N": str(int(now) + self.TTL_SECONDS)}
        with self.calling("delivery receipt update"):
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": _receipt_key(identity)}},
                UpdateExpression=f"SET {expression}, expiresAt = :e",
                ExpressionAttributeValues={":t": {"N": _num(now)}, ":e": expires, **values},
            )


def _receipt_key(identity: EventIdentity) -> str:
    run = f"#{identity.run}" if identity.run else ""
    return f"receipt#{identity.kind}#{identity.key}{run}"


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
