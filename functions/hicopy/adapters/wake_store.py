"""The state table's wake records (``WakeStorePort``) and the data stores' "copy events heard" record
(``EventsHeardPort``): where AwaitCopy's callback waits and HealthImaging's copy events meet
(``hicopy.domain.waking``)."""

from __future__ import annotations

from typing import Any

from hicopy.adapters.state_table import _num, _StateTable
from hicopy.domain.ports import CopyVersion


class DynamoWakeStore(_StateTable):
    """``WakeStorePort`` on the state table: item ``pk = wake#<datastoreId>#<imageSetId>#<versionId>``, attributes
    ``token`` (the latest parked waiter) and ``seenAt`` (a copy event came), kept a day. Each side is one atomic
    ``UpdateItem`` that returns what the other side left (``ALL_OLD``). Also ``EventsHeardPort``: when a copy event
    of a data store last came."""

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

    def heard(self, datastore_id: str, now: float) -> None:
        """``EventsHeardPort``: item ``pk = events#<datastoreId>``, attribute ``heardAt``, kept a day."""
        with self.calling("copy events heard update"):
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"events#{datastore_id}"}},
                UpdateExpression="SET heardAt = :h, expiresAt = :e",
                ExpressionAttributeValues={":h": {"N": _num(now)}, ":e": {"N": str(int(now) + self.TTL_SECONDS)}},
            )

    def last_heard(self, datastore_id: str) -> float | None:
        with self.calling("copy events heard read"):
            item = self.client.get_item(
                TableName=self.table_name, Key={"pk": {"S": f"events#{datastore_id}"}}, ConsistentRead=False
            ).get("Item", {})
        value = item.get("heardAt", {}).get("N")
        return float(value) if value is not None else None
