"""Best-effort delivery of the emulator's image set events, as EventBridge gives HealthImaging's own: each one
reaches the sink after ``delay`` clock seconds, and a fraction ``drop`` of them never does (decided by a seeded
random source, so a run can be repeated). Import job events are always delivered at once (the post-import tests
rely on them); ``delay = drop = 0`` (the default) delivers everything synchronously, in order, as before."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from hicopy.clock import Clock
from offline.healthimaging.events import SERVICE_IMAGE_SET_EVENTS

LOSSY_DETAIL_TYPES = frozenset(SERVICE_IMAGE_SET_EVENTS.values())


class EventDelivery:
    def __init__(self, clock: Clock, *, delay: float = 0.0, drop: float = 0.0, seed: int | None = None) -> None:
        if delay < 0 or not 0.0 <= drop <= 1.0:
            raise ValueError("event delivery: delay must be >= 0 and drop within [0, 1]")
        self.clock, self.delay, self.drop = clock, delay, drop
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def delivered(self, detail_type: str) -> bool:
        """Whether this event reaches the sink (False: it is dropped)."""
        if detail_type not in LOSSY_DETAIL_TYPES or self.drop <= 0:
            return True
        with self._lock:
            return self._random.random() >= self.drop

    def send(self, detail_type: str, send: Callable[[], None]) -> None:
        """Send now, or (an image set event, with a delay) after the delay on a thread of its own."""
        if self.delay <= 0 or detail_type not in LOSSY_DETAIL_TYPES:
            send()
        else:
            threading.Thread(target=self._later, args=(send,), name="hi-event-delivery", daemon=True).start()

    def _later(self, send: Callable[[], None]) -> None:
        self.clock.sleep(self.delay)
        send()
