"""HealthImaging's copy events cut AwaitCopy's wait short: every race between a waiter and its event.

The in-memory store below has the semantics of ``hicopy.adapters.state_table.DynamoWakeStore`` (each side one
atomic update returning what the other left); ``tests/functional/test_wake_store.py`` runs the same races on the
real adapter.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from hicopy.domain.ports import CopyVersion
from hicopy.domain.waking import Parked, copy_version_of, on_copy_event, park

DATA = Path(__file__).resolve().parents[1] / "data" / "healthimaging" / "events"
DS, IMG = "a" * 32, "c" * 32
V3 = CopyVersion(DS, IMG, "3")


class MemoryWakeStore:
    def __init__(self) -> None:
        self.items: dict[CopyVersion, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def park(self, version: CopyVersion, token: str, now: float) -> bool:
        with self._lock:
            item = self.items.setdefault(version, {})
            seen = item.pop("seenAt", None) is not None
            item["token"] = token
            return seen

    def mark(self, version: CopyVersion, now: float) -> str | None:
        with self._lock:
            item = self.items.setdefault(version, {})
            item["seenAt"] = now
            token: str | None = item.pop("token", None)
            return token


class FakeWaker:
    """Step Functions' side: a token can be completed once, while its wait is open."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.woken: list[str] = []

    def wait(self, token: str) -> str:
        self.open.add(token)
        return token

    def wake(self, token: str) -> bool:
        if token not in self.open:
            return False  # TaskTimedOut / InvalidToken: the wait already ended
        self.open.discard(token)
        self.woken.append(token)
        return True

    def time_out(self, token: str) -> None:
        self.open.discard(token)


def event(version: str = "3", *, key: str = "imageSetId", detail_type: str = "Image Set Copied", **over: Any):
    detail = {
        "imagingVersion": "1.0",
        "isPrimary": True,
        "imageSetVersion": version,
        "datastoreId": DS,
        key: IMG,
        "imageSetState": "ACTIVE",
        "imageSetWorkflowStatus": "COPIED",
    }
    return {"source": "aws.medical-imaging", "detail-type": detail_type, "detail": detail, **over}


@pytest.fixture
def sides() -> tuple[MemoryWakeStore, FakeWaker]:
    return MemoryWakeStore(), FakeWaker()


def test_the_event_wakes_the_waiter_parked_on_its_version(sides):
    store, waker = sides
    token = waker.wait("t1")
    assert park(Parked(token, V3), store, waker, 1.0) is False  # nothing seen yet: the wait goes on
    assert on_copy_event(event("3"), {DS}, store, waker, 2.0) == "woken"
    assert waker.woken == ["t1"]


def test_the_event_before_the_token_is_stored_wakes_the_waiter_at_once(sides):
    store, waker = sides
    assert on_copy_event(event("3"), {DS}, store, waker, 1.0) == "marked"  # no one waits yet
    token = waker.wait("t1")
    assert park(Parked(token, V3), store, waker, 2.0) is True  # the waiter finds the mark and wakes itself
    assert waker.woken == ["t1"]


def test_a_duplicate_event_wakes_nothing_more(sides):
    store, waker = sides
    park(Parked(waker.wait("t1"), V3), store, waker, 1.0)
    assert on_copy_event(event("3"), {DS}, store, waker, 2.0) == "woken"
    assert on_copy_event(event("3"), {DS}, store, waker, 2.1) == "marked"  # the token was taken
    assert waker.woken == ["t1"]


def test_a_duplicate_after_the_waiter_moved_on_costs_at_most_one_early_check(sides):
    """If the status check after a wake-up still saw COPYING (the event is a hint), the next park finds the second
    event's mark and wakes at once; the mark is taken, so a third park waits its full step."""
    store, waker = sides
    park(Parked(waker.wait("t1"), V3), store, waker, 1.0)
    on_copy_event(event("3"), {DS}, store, waker, 2.0)
    on_copy_event(event("3"), {DS}, store, waker, 2.1)
    assert park(Parked(waker.wait("t2"), V3), store, waker, 3.0) is True
    assert park(Parked(waker.wait("t3"), V3), store, waker, 4.0) is False
    assert waker.woken == ["t1", "t2"]


def test_an_event_for_another_version_of_the_same_image_set_wakes_no_one(sides):
    store, waker = sides
    park(Parked(waker.wait("t1"), V3), store, waker, 1.0)
    assert on_copy_event(event("2"), {DS}, store, waker, 2.0) == "marked"
    assert on_copy_event(event("4"), {DS}, store, waker, 2.0) == "marked"
    assert waker.woken == []
    assert store.items[V3] == {"token": "t1"}  # still waiting for version 3


def test_an_event_for_an_image_set_no_job_waits_for_only_leaves_a_mark(sides):
    store, waker = sides
    assert on_copy_event(event("9"), {DS}, store, waker, 1.0) == "marked"
    assert waker.woken == [] and list(store.items) == [CopyVersion(DS, IMG, "9")]  # expires by TTL


def test_a_lost_event_leaves_the_wait_to_its_timeout(sides):
    store, waker = sides
    token = waker.wait("t1")
    park(Parked(token, V3), store, waker, 1.0)
    waker.time_out(token)  # no event: States.Timeout, then the status check
    assert waker.woken == []


def test_an_event_for_a_timed_out_wait_is_harmless_and_marks_for_the_next_one(sides):
    store, waker = sides
    token = waker.wait("t1")
    park(Parked(token, V3), store, waker, 1.0)
    waker.time_out(token)
    assert on_copy_event(event("3"), {DS}, store, waker, 2.0) == "marked"  # SendTaskSuccess refused: moved on
    assert park(Parked(waker.wait("t2"), V3), store, waker, 3.0) is True


def test_a_later_waiter_replaces_the_earlier_token(sides):
    store, waker = sides
    first = waker.wait("t1")
    park(Parked(first, V3), store, waker, 1.0)
    waker.time_out(first)
    park(Parked(waker.wait("t2"), V3), store, waker, 2.0)
    assert on_copy_event(event("3"), {DS}, store, waker, 3.0) == "woken"
    assert waker.woken == ["t2"]


def test_concurrent_event_and_park_always_meet(sides):
    """Whichever side runs first, the waiter is woken exactly once (never lost, never twice)."""
    for _ in range(200):
        store, waker = MemoryWakeStore(), FakeWaker()
        token = waker.wait("t")
        barrier = threading.Barrier(2)

        def parking(store=store, waker=waker, token=token, barrier=barrier) -> None:
            barrier.wait()
            park(Parked(token, V3), store, waker, 1.0)

        def marking(store=store, waker=waker, barrier=barrier) -> None:
            barrier.wait()
            on_copy_event(event("3"), {DS}, store, waker, 1.0)

        threads = [threading.Thread(target=parking), threading.Thread(target=marking)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert waker.woken == ["t"]


@pytest.mark.parametrize("name", ["devguide-image-set-copied.json", "devguide-image-set-copy-failed.json"])
def test_the_devguide_examples_name_their_version(name):
    """The devguide spells the ID ``imagesetId``; real events ``imageSetId``: both are read."""
    example = json.loads((DATA / name).read_text())
    version = copy_version_of(example, {example["detail"]["datastoreId"]})
    assert version is not None and version.version_id == example["detail"]["imageSetVersion"]
    assert version.image_set_id == example["detail"]["imagesetId"]


@pytest.mark.parametrize("key", ["imageSetId", "imagesetId"])
def test_both_id_spellings(key):
    assert copy_version_of(event("3", key=key), {DS}) == V3


@pytest.mark.parametrize(
    "bad",
    [
        event(source="my.app"),  # only HealthImaging's own events
        event(detail_type="Image Set Copying"),  # not an end of copy
        event(detail_type="Copy Job Succeeded"),  # ours, never a hint
        {**event(), "detail": {**event()["detail"], "datastoreId": "f" * 32}},  # a data store not configured
        {**event(), "detail": {**event()["detail"], "imageSetId": "../x"}},
        {**event(), "detail": {**event()["detail"], "imageSetVersion": 3}},
        {**event(), "detail": {**event()["detail"], "imageSetVersion": "3#x"}},
        {**event(), "detail": "not an object"},
    ],
)
def test_other_events_are_ignored(sides, bad):
    store, waker = sides
    assert copy_version_of(bad, {DS}) is None
    assert on_copy_event(bad, {DS}, store, waker, 1.0) == "ignored"
    assert store.items == {}
