"""Waking a waiting execution early: HealthImaging's own copy events cut AwaitCopy's wait short.

While a chunk copies, the state machine waits between status checks in a callback task (``.waitForTaskToken``)
whose timeout is the backoff step (``hicopy.domain.awaiting``). HealthImaging puts ``Image Set Copied`` or ``Image
Set Copy Failed`` on the default bus for the destination image set version when the copy ends; the copy waker
completes the waiting task, and the execution checks the status at once instead of at the end of the step.

The event is a hint, never the truth: a woken execution still confirms with one ``GetImageSet`` of the version.
A lost event costs nothing but time (the wait times out and the status is checked as before).

One state table item per destination version (the adapter owns the key) makes the two sides meet whatever their
order, each with one atomic update:

- a waiter *parks*: stores its task token and takes the "seen" mark of an event that came first; if there was one,
  it wakes itself at once (the event before the token);
- an event *marks* the version as seen and takes the stored token; if there was one, it wakes that waiter.

The events also decide how long a wait may be: while they flow (one heard lately for the data store), a wait is
long and the event ends it; when none has been heard, the waits are the backoff steps of plain polling.

A duplicate event wakes a token at most once more (waking a finished wait is refused and ignored); an event for
another version of the image set, or for an image set no job waits for, meets no token (its mark expires).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hicopy.contract import COPY_RESULT_DETAIL_TYPES, HEALTHIMAGING_SOURCE, IMAGE_SET_ID_KEYS, IMAGE_SET_ID_PATTERN
from hicopy.domain.ports import CopyVersion, EventsHeardPort, TaskWakerPort, WakeStorePort

WakeOutcome = Literal["woken", "marked", "ignored"]
VERSION_PATTERN = r"^[0-9]{1,20}$"


@dataclass(frozen=True)
class Parked:
    """What a waiting task asks for: wake ``token`` when ``version`` has finished copying."""

    token: str
    version: CopyVersion


def park(request: Parked, store: WakeStorePort, waker: TaskWakerPort, now: float) -> bool:
    """Store the waiter's token; if the version's event was already seen, wake the waiter now. True if woken."""
    if store.park(request.version, request.token, now):
        return waker.wake(request.token)
    return False


def copy_version_of(event: Mapping[str, Any], datastore_ids: Collection[str]) -> CopyVersion | None:
    """The destination version a HealthImaging copy event is about, or None for any other event (another source or
    detail-type, a data store that is not configured, IDs that are not HealthImaging IDs)."""
    if event.get("source") != HEALTHIMAGING_SOURCE or event.get("detail-type") not in COPY_RESULT_DETAIL_TYPES:
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    datastore_id, version = detail.get("datastoreId"), detail.get("imageSetVersion")
    image_set_id = next((detail[k] for k in IMAGE_SET_ID_KEYS if isinstance(detail.get(k), str)), None)
    if datastore_id not in datastore_ids or not isinstance(image_set_id, str) or not isinstance(version, str):
        return None
    if not re.fullmatch(IMAGE_SET_ID_PATTERN, image_set_id) or not re.fullmatch(VERSION_PATTERN, version):
        return None
    return CopyVersion(str(datastore_id), image_set_id, version)


def on_copy_event(
    event: Mapping[str, Any],
    datastore_ids: Collection[str],
    store: WakeStorePort,
    waker: TaskWakerPort,
    now: float,
    heard: EventsHeardPort | None = None,
) -> WakeOutcome:
    """Mark the event's version as seen; wake the waiter parked on it, if any. Any copy event of a configured data
    store (waited for or not) also records that the data store's events flow (``heard``): AwaitCopy then waits on
    events instead of polling (``hicopy.domain.backoff.Backoff``)."""
    version = copy_version_of(event, datastore_ids)
    if version is None:
        return "ignored"
    if heard is not None:
        heard.heard(version.datastore_id, now)
    token = store.mark(version, now)
    if token is not None and waker.wake(token):
        return "woken"
    return "marked"
