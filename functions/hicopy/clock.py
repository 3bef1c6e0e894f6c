"""Time, behind a small interface so that the offline runtime can scale it (minutes of backoff in seconds).

Lambda code reads the time only through ``get_clock()``; nothing else calls ``time.time``/``time.sleep``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


_clock: Clock = SystemClock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Replace the process clock (offline runtime and tests only). Returns the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def iso(ts: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds, as used in our events."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """Seconds since the epoch of a timestamp written by ``iso``."""
    return datetime.fromisoformat(text).timestamp()
