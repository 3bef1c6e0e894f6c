"""Account-wide pacing of rate-limited HealthImaging calls (CopyImageSet, DeleteImageSet), applied *before* calling.

The service limits CopyImageSet to ``rate`` calls/s with a burst of ``burst`` (0.25/s, burst 1 by default): a token
bucket. We mirror it with the Generic Cell Rate Algorithm: one number per action, the *theoretical arrival time*
(TAT). A caller reserves the earliest slot ``max(now, TAT - (burst - 1) * interval)`` and moves the TAT to
``max(TAT, now) + interval``. Every execution reserves a slot through one conditional write, waits until its slot
(a Step Functions Wait for whole seconds, a short in-Lambda sleep for the rest), then calls. Slots are spaced by
``interval * (1 + margin)``: the small margin absorbs clock skew between Lambda hosts and the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hicopy.errors import PacingContention

DEFAULT_MARGIN = 0.02  # 2 % slower than the quota: keeps us under it despite timing jitter


@dataclass(frozen=True)
class Reservation:
    slot: float  # epoch seconds at which the caller may call
    tat: float  # the new theoretical arrival time to store

    def wait(self, now: float) -> float:
        return max(0.0, self.slot - now)


def reserve(
    tat: float | None, now: float, *, rate: float, burst: int = 1, margin: float = DEFAULT_MARGIN
) -> Reservation:
    """Pure GCRA step: the slot granted to a caller arriving at ``now`` when the stored TAT is ``tat``."""
    if rate <= 0 or burst < 1:
        raise ValueError("rate must be > 0 and burst >= 1")
    interval = (1.0 / rate) * (1.0 + margin)
    tat = now if tat is None else tat
    slot = max(now, tat - (burst - 1) * interval)
    return Reservation(slot=slot, tat=max(tat, slot) + interval)


class PaceStore(Protocol):
    """Stores one TAT per key with compare-and-set semantics."""

    def read(self, key: str) -> float | None: ...

    def compare_and_set(self, key: str, expected: float | None, new: float) -> bool:
        """Store ``new`` if the stored value is still ``expected``; False if another caller won the race."""
        ...


class InMemoryPaceStore:
    """A ``PaceStore`` for tests and benchmarks."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def read(self, key: str) -> float | None:
        return self.values.get(key)

    def compare_and_set(self, key: str, expected: float | None, new: float) -> bool:
        if self.values.get(key) != expected:
            return False
        self.values[key] = new
        return True


class Pacer:
    def __init__(self, store: PaceStore, *, rate: float, burst: int = 1, margin: float = DEFAULT_MARGIN) -> None:
        self.store, self.rate, self.burst, self.margin = store, rate, burst, margin

    def reserve(self, key: str, now: float, *, max_tries: int = 50) -> Reservation:
        """Reserve the next slot for ``key``; retries the compare-and-set when racing other executions."""
        for _ in range(max_tries):
            current = self.store.read(key)
            grant = reserve(current, now, rate=self.rate, burst=self.burst, margin=self.margin)
            if self.store.compare_and_set(key, current, grant.tat):
                return grant
        raise PacingContention(f"could not reserve a pacing slot for {key} after {max_tries} tries")
