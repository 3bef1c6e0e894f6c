"""Account-wide pacing of rate-limited HealthImaging calls (CopyImageSet, DeleteImageSet), applied *before* calling.

The service limits CopyImageSet to ``rate`` calls/s with a burst of ``burst`` (0.25/s, burst 1 by default): a token
bucket. We mirror it with the Generic Cell Rate Algorithm (GCRA): one number per key, the *theoretical arrival
time* (TAT). A caller arriving at ``now`` gets the earliest slot ``max(now, TAT - (burst - 1) * interval)`` and
moves the TAT to ``max(TAT, slot) + interval``.

Pacing has two steps, both on that one algorithm:

1. **Slots** (``Pacer.reserve``, the Pace task): every execution reserves a slot ahead of time through one
   conditional write; the state machine waits until shortly before it. Slots are spaced by
   ``interval * (1 + margin)``.
2. **Turns** (``Pacer.claim``, immediately before the call): the call itself is admitted only when the previous
   *actual* call of the account is at least ``interval * (1 + call_margin)`` ago. A slot says when a caller should
   be ready; the turn guarantees the calls never come closer than the service allows, even when a caller was late
   (a cold start, a slow Wait) and the next one is on time. Without it, one late call throttles the punctual one
   after it.

``call_margin < margin``: calls may come slightly closer together than slots, so that when a late call pushes its
successors back, the schedule catches up by ``interval * (margin - call_margin)`` per slot instead of staying late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hicopy.errors import PacingContention

DEFAULT_MARGIN = 0.03  # slots: 3 % slower than the quota
CALL_MARGIN = 0.02  # calls: never closer than the quota's interval + 2 % (request latency differs between callers)


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
    def __init__(
        self,
        store: PaceStore,
        *,
        rate: float,
        burst: int = 1,
        margin: float = DEFAULT_MARGIN,
        call_margin: float = CALL_MARGIN,
    ) -> None:
        if not 0 <= call_margin <= margin:
            raise ValueError("call_margin must be between 0 and margin (calls may not be slower than slots)")
        self.store, self.rate, self.burst, self.margin, self.call_margin = store, rate, burst, margin, call_margin

    def reserve(self, key: str, now: float, *, max_tries: int = 50) -> Reservation:
        """Reserve the next slot for ``key``; retries the compare-and-set when racing other executions."""
        for _ in range(max_tries):
            current = self.store.read(key)
            grant = reserve(current, now, rate=self.rate, burst=self.burst, margin=self.margin)
            if self.store.compare_and_set(key, current, grant.tat):
                return grant
        raise PacingContention(f"could not reserve a pacing slot for {key} after {max_tries} tries")

    def claim(self, key: str, now: float, *, max_tries: int = 50) -> float:
        """Take the turn to call ``key`` now: 0.0 when this caller may call (recorded), otherwise the seconds until
        the account's next turn (nothing recorded: try again then)."""
        turn_key = f"{key}#call"
        for _ in range(max_tries):
            current = self.store.read(turn_key)
            grant = reserve(current, now, rate=self.rate, burst=self.burst, margin=self.call_margin)
            if grant.slot > now:
                return grant.slot - now
            if self.store.compare_and_set(turn_key, current, grant.tat):
                return 0.0
        raise PacingContention(f"could not take a turn to call {key} after {max_tries} tries")
