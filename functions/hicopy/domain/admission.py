"""Backpressure: jobs wait in the job queue, not in executions (issue #13).

An execution is started only when the account's CopyImageSet schedule (the GCRA cell Pace reserves slots on, see
``hicopy.domain.pacing``) is booked less than an *admission window* ahead. The *horizon* is how far ahead the next
free slot is: ``max(0, TAT - now)``, or further if the jobs admitted but not yet paced need more (a second cell,
``Admission``, advanced by one slot interval per admitted job: a slow Prepare does not let admission overshoot).
A started job reserves its first slot within about one window, and each later chunk of it reserves its slot when
the previous chunk is copied, again at most about one window ahead; so no execution waits longer than a few
windows plus its copies, however long the queue, and none reaches its timeout.

- **Lanes.** ``bulk`` jobs are admitted while the horizon is below ``bulk_window``; ``interactive`` ones up to the
  larger ``interactive_window``. Bulk admission alone never books the schedule past ``bulk_window`` (plus its
  age allowance, below), so an interactive job is admitted at once and its slot is at most about ``bulk_window`` away;
  bulk gets every slot interactive jobs do not take.
- **Start rate.** Each start also takes a turn on a second GCRA cell (``StartExecution``, ``start_rate``/s, burst
  ``start_burst``), so that Prepare's HealthImaging reads (about 3 GetImageSet/GetImageSetMetadata per start) stay
  far below the 25 TPS read quotas whatever the queue delivers at once.
- **Deferral.** A job that is not admitted goes back to the queue as a copy (same body and attributes, plus one
  ``hicopyAdmission`` attribute) with ``DelaySeconds``; the original is then deleted. A visibility change instead
  would count a receive each time, and SQS caps ``maxReceiveCount`` at 1,000: a job deferred every 15 minutes would
  reach the DLQ in 10 days without ever failing. The copy keeps the original message ID (the default job ID, so a
  duplicate copy after a crash still starts one execution) and the time the job was first seen (its age: SQS's own
  ``ApproximateAgeOfOldestMessage`` restarts with every copy). The delay doubles with each deferral (jitter: 50-100 %),
  up to SQS's maximum of 900 s: a small backlog comes back soon, a large one costs few receives.
- **Oldest first.** The window widens slightly with a job's age (``AdmissionPolicy.window``): SQS hands the
  deferred copies back in no particular order, and without it a young job (short delays) would overtake old ones.
- **Limit.** A job older than ``max_age`` (14 days: the job queue's retention) is rejected (``BacklogExpired``, a
  ``Copy Job Rejected`` event and a DLQ copy): never a silent loss.

This module is free of AWS: the consumer passes the pace store and the clock; the benchmark drives the same code.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import NamedTuple, TypeGuard

from hicopy.clock import Clock
from hicopy.domain.job import Priority
from hicopy.domain.pacing import COPY_ACTION, Pacer
from hicopy.domain.ports import PaceKey, PaceStorePort, PaceValue
from hicopy.errors import BacklogExpired

ADMISSION_ATTRIBUTE = "hicopyAdmission"  # JSON {"messageId", "firstSeen", "deferrals"} on a deferred copy
START_ACTION = "StartExecution"
ADMISSION_ACTION = "Admission"  # a shadow of the CopyImageSet schedule: one interval per admitted job
SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_ATTRIBUTES = 10
RETENTION_SECONDS = 14 * 24 * 3600
_COPY_SLOTS = PaceKey(COPY_ACTION)  # the cell Pace reserves CopyImageSet slots on
_ADMITTED = PaceKey(ADMISSION_ACTION)


# Admission books at most a window of minutes ahead: a stored horizon beyond this is a corrupt item, not a backlog.
MAX_PLAUSIBLE_HORIZON = 6 * 3600.0


def _usable(value: PaceValue) -> TypeGuard[float]:
    return isinstance(value, float | int) and math.isfinite(value)


@dataclass(frozen=True)
class AdmissionPolicy:
    bulk_window: float = 60.0  # s of booked CopyImageSet slots beyond which bulk jobs wait in the queue
    interactive_window: float = 900.0  # same, interactive jobs
    seniority: float = 120.0  # s added to the window by age, up to this at max_age (older jobs first)
    start_rate: float = 2.0  # StartExecution per second, account-wide
    start_burst: int = 5
    max_start_wait: float = 2.0  # s a consumer waits in the Lambda for a start turn before deferring instead
    first_delay: float = 30.0  # s, a bulk job's first deferral (doubled with each further one)
    interactive_delay: float = 10.0  # s, an interactive job's deferrals (the interactive lane is short)
    max_delay: float = SQS_MAX_DELAY_SECONDS
    max_age: float = RETENTION_SECONDS

    def window(self, priority: Priority, age: float = 0.0) -> float:
        """The horizon below which a job of this lane and age is admitted. The window widens with the job's age
        (logarithmically, by up to ``seniority`` at ``max_age``): whenever the schedule has room, the older jobs
        among those the queue delivers take it first, so the backlog drains close to oldest-first although SQS
        delivers the deferred copies in no particular order."""
        base = self.interactive_window if priority == "interactive" else self.bulk_window
        if age <= 0:
            return base
        return base + self.seniority * min(1.0, math.log1p(age / 60) / math.log1p(self.max_age / 60))


class Ticket(NamedTuple):
    """What a queued job carries through its deferrals (the ``hicopyAdmission`` attribute)."""

    message_id: str  # the first message's ID: the default job ID
    first_seen: float  # epoch s the job was first received (its age in the backlog)
    deferrals: int = 0

    def attribute(self) -> str:
        return json.dumps(
            {"messageId": self.message_id, "firstSeen": round(self.first_seen, 3), "deferrals": self.deferrals},
            separators=(",", ":"),
        )

    @classmethod
    def of(cls, *, message_id: str, sent_at: float, attribute: str | None) -> Ticket:
        """The ticket of a received message: its own (first receipt) or the one a deferred copy carries. A copy's
        ``firstSeen`` is never later than the message's own send time (a sender cannot make a job look younger)."""
        if attribute:
            try:
                data = json.loads(attribute)
                ticket = cls(str(data["messageId"]), float(data["firstSeen"]), int(data["deferrals"]))
            except (ValueError, KeyError, TypeError, RecursionError):  # a sender may write the attribute
                ticket = None
            if ticket is not None and ticket.message_id and ticket.deferrals >= 0 and math.isfinite(ticket.first_seen):
                return cls(ticket.message_id, min(ticket.first_seen, sent_at), ticket.deferrals)
        return cls(message_id, sent_at)


class Decision(NamedTuple):
    admitted: bool
    horizon: float  # s of CopyImageSet slots booked ahead when deciding
    delay: int = 0  # s, when deferred
    ticket: Ticket | None = None  # the ticket to send with a deferred copy


@dataclass
class Admission:
    """Decides, per accepted job, whether its execution starts now or the job waits in the queue."""

    store: PaceStorePort
    copy_rate: float
    copy_burst: int = 1
    policy: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._starts = Pacer(
            self.store, rate=self.policy.start_rate, burst=self.policy.start_burst, margin=0.0, call_margin=0.0
        )
        self._admitted = Pacer(self.store, rate=self.copy_rate, burst=self.copy_burst)

    def horizon(self, now: float) -> float:
        """How far ahead the next free CopyImageSet slot is (0 when the schedule is free now), counting the jobs
        admitted whose Pace has not reserved yet (the admission cell: one slot's interval per admitted job), so
        that a slow Prepare cannot let the consumer admit more than the schedule has room for."""
        ahead = [value - now for value in (self.store.read(_COPY_SLOTS), self.store.read(_ADMITTED)) if _usable(value)]
        # A value no admission could have booked (corrupt, or hours ahead of a window of minutes) is not a backlog:
        # Pace repairs the schedule when it next reserves; deferring every job on it would stall the queue.
        return max([0.0, *(a for a in ahead if a <= MAX_PLAUSIBLE_HORIZON)])

    def drain_seconds(self, copies: int) -> float:
        """The time ``copies`` take at the configured rate (the pacing's 3 % margin included)."""
        return copies / self.copy_rate * 1.03

    def decide(self, priority: Priority, ticket: Ticket, clock: Clock) -> Decision:
        """Admit the job (its start turn taken), or defer it with a delay; ``BacklogExpired`` past ``max_age``."""
        now = clock.now()
        age = now - ticket.first_seen
        if age > self.policy.max_age:
            raise BacklogExpired(
                f"the job waited {age / 86400:.1f} days in the backlog (limit {self.policy.max_age / 86400:g} days, "
                "the job queue's retention): send it again when the backlog is shorter"
            )
        horizon = self.horizon(now)
        if horizon < self.policy.window(priority, age) and self._take_start_turn(clock):
            self._admitted.reserve(ADMISSION_ACTION, clock.now())
            return Decision(True, horizon, 0, ticket)
        return Decision(False, horizon, self._delay(priority, ticket), Ticket(*ticket[:2], ticket.deferrals + 1))

    def _take_start_turn(self, clock: Clock) -> bool:
        waited = 0.0
        while (wait := self._starts.claim(START_ACTION, clock.now())) > 0:
            if waited + wait > self.policy.max_start_wait:
                return False
            clock.sleep(wait)
            waited += wait
        return True

    def _delay(self, priority: Priority, ticket: Ticket) -> int:
        if priority == "interactive":
            return max(1, round(self.policy.interactive_delay))
        ceiling = min(
            self.policy.max_delay, SQS_MAX_DELAY_SECONDS, self.policy.first_delay * 2.0 ** min(ticket.deferrals, 16)
        )
        return max(1, round(float(ceiling) * (0.5 + 0.5 * self.rng.random())))
