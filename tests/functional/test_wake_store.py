"""The wake records on the real adapter (moto's DynamoDB): the races of ``tests/unit/test_waking.py`` once more, and
the copy waker handler both ways (a parked callback and a HealthImaging event)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from hicopy.adapters.wake_store import DynamoWakeStore
from hicopy.domain.ports import CopyVersion
from hicopy.handlers import copy_waker
from tests.functional.conftest import Stack
from tests.support.aws import TABLE
from tests.support.environment import DATASTORE_ID, invoke

IMG = "c" * 32


class RecordingWaker:
    def __init__(self) -> None:
        self.woken: list[str] = []

    def wake(self, token: str) -> bool:
        self.woken.append(token)
        return True


@pytest.fixture
def store(stack: Stack) -> DynamoWakeStore:  # the state table in moto
    return DynamoWakeStore(TABLE)


def _item(version: CopyVersion) -> dict[str, Any]:
    pk = f"wake#{version.datastore_id}#{version.image_set_id}#{version.version_id}"
    item: dict[str, Any] = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": pk}}).get("Item", {})
    return item


def test_park_then_mark_hands_over_the_token(stack: Stack, store: DynamoWakeStore) -> None:
    v = CopyVersion(DATASTORE_ID, IMG, "3")
    assert store.park(v, "t1", 100.0) is False
    assert store.mark(v, 101.0) == "t1"
    assert store.mark(v, 102.0) is None  # a duplicate: the token was taken
    assert _item(v)["expiresAt"]["N"] == str(102 + DynamoWakeStore.TTL_SECONDS)


def test_mark_then_park_reports_the_event_once(stack: Stack, store: DynamoWakeStore) -> None:
    v = CopyVersion(DATASTORE_ID, IMG, "3")
    assert store.mark(v, 100.0) is None
    assert store.park(v, "t1", 101.0) is True
    assert store.park(v, "t2", 102.0) is False  # the mark was taken
    assert _item(v)["token"] == {"S": "t2"}


def test_versions_do_not_meet(stack: Stack, store: DynamoWakeStore) -> None:
    store.park(CopyVersion(DATASTORE_ID, IMG, "3"), "t1", 100.0)
    assert store.mark(CopyVersion(DATASTORE_ID, IMG, "4"), 101.0) is None


def test_the_handler_parks_a_waiter_and_an_event_wakes_it(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    waker = RecordingWaker()
    monkeypatch.setattr(copy_waker, "_waker", lambda: waker)
    ds = DATASTORE_ID
    parked = invoke(stack, copy_waker, {"taskToken": "t1", "datastoreId": ds, "imageSetId": IMG, "versionId": "3"})
    assert parked == {"woken": False}
    other = {"imageSetVersion": "2", "datastoreId": ds, "imagesetId": IMG}
    hint = {"source": "aws.medical-imaging", "detail-type": "Image Set Copied", "detail": other}
    assert invoke(stack, copy_waker, hint) == {"outcome": "marked"}  # another version: no one woken
    hint["detail"] = {**other, "imageSetVersion": "3"}
    assert invoke(stack, copy_waker, hint) == {"outcome": "woken"}
    assert waker.woken == ["t1"]
    foreign = {**hint, "detail": {**hint["detail"], "datastoreId": "f" * 32}}
    assert invoke(stack, copy_waker, foreign) == {"outcome": "ignored"}
