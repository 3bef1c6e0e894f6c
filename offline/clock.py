"""Clocks for the offline runtime, implementing the ``hicopy.clock.Clock`` protocol.

- ``ScaledClock(scale)``: virtual time runs ``1/scale`` times as fast as real time. ``scale=1.0`` is real time,
  ``scale=0.01`` turns 100 virtual seconds into 1 real second. ``sleep(s)`` sleeps ``real_seconds(s)``, i.e.
  ``s * scale`` real seconds.
  ``advance(s)`` jumps virtual time forward without sleeping (tests).
- ``ManualClock(start)``: time moves only through ``advance``/``sleep`` (deterministic tests; ``sleep`` does not
  wait).
"""

from __future__ import annotations

import threading
import time


class ScaledClock:
    """Virtual time = t0 + (real - t0) / scale (+ any ``advance`` offset)."""

    def __init__(self, scale: float = 1.0, *, start: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be > 0")
        self.scale = scale
        self._t0 = time.time() if start is None else start
        self._m0 = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            offset = self._offset
        return self._t0 + (time.monotonic() - self._m0) / self.scale + offset

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds * self.scale)

    def real_seconds(self, seconds: float) -> float:
        """The real seconds that ``seconds`` of virtual time last (never negative)."""
        return max(0.0, seconds * self.scale)

    def advance(self, seconds: float) -> None:
        """Jump virtual time forward by ``seconds`` without waiting."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset += seconds


class ManualClock:
    """A clock that moves only when told to (``advance`` or ``sleep``)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += seconds
