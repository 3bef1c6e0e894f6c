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

The workflow's side of it is here too: ``pace`` (the Pace task) reserves the slot and tells the state machine how long
to wait, and ``take_turn`` (Submit and DeleteSource, right before calling) sleeps to the slot and waits for the turn.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from hicopy.clock import Clock, iso
from hicopy.domain.ports import CorruptPaceValue, PaceKey, PaceStorePort, PaceValue
from hicopy.domain.state import Pace, WorkflowState
from hicopy.errors import PacingContention, SlotBeyondDeadline, SlotMissed

# A child of the handlers' Powertools logger ("hicopy"): the domain logs without importing the Lambda runtime.
logger = logging.getLogger(__name__)

DEFAULT_MARGIN = 0.03  # slots: 3 % slower than the quota
CALL_MARGIN = 0.02  # calls: never closer than the quota's interval + 2 % (request latency differs between callers)

COPY_ACTION = "CopyImageSet"
DELETE_ACTION = "DeleteImageSet"
# The Wait state ends about DISPATCH_LEAD s before the slot, so that the Wait's end, the state transition, the Lambda
# start and Submit's reads happen before the slot; Submit then sleeps the rest (at most MAX_IN_LAMBDA_PACING_SLEEP).
DISPATCH_LEAD = 2.0
MAX_IN_LAMBDA_PACING_SLEEP = DISPATCH_LEAD + 1.0
# Longest a paced task waits in the Lambda for the account's next turn (a late caller ahead of it) before it gives
# up its slot and takes a new one (``SlotMissed``); and how many slots in a row a chunk may miss before it fails.
MAX_TURN_WAIT = 30.0
MAX_MISSED_SLOTS = 8
# What an execution needs after its slot (Submit, the copy's status checks, Publish): a slot later than the
# execution's deadline minus this is refused (``SlotBeyondDeadline``), at most half the execution timeout.
DEADLINE_RESERVE = 1800.0
# A turn's TAT is written at most ``burst`` intervals ahead of the call that took it, and a caller waits at most
# MAX_TURN_WAIT for it: a TAT this far ahead is corrupt (nothing legitimate comes close).
TURN_HORIZON = 10 * MAX_TURN_WAIT


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


class InMemoryPaceStore:
    """A ``PaceStorePort`` for tests and benchmarks."""

    def __init__(self) -> None:
        self.values: dict[PaceKey, float | CorruptPaceValue] = {}

    def read(self, key: PaceKey) -> PaceValue:
        return self.values.get(key)

    def compare_and_set(self, key: PaceKey, expected: PaceValue, new: float) -> bool:
        if self.values.get(key) != expected:
            return False
        self.values[key] = new
        return True


class Pacer:
    def __init__(
        self,
        store: PaceStorePort,
        *,
        rate: float,
        burst: int = 1,
        margin: float = DEFAULT_MARGIN,
        call_margin: float = CALL_MARGIN,
    ) -> None:
        if not 0 <= call_margin <= margin:
            raise ValueError("call_margin must be between 0 and margin (calls may not be slower than slots)")
        self.store, self.rate, self.burst, self.margin, self.call_margin = store, rate, burst, margin, call_margin

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    def reserve(
        self,
        action: str,
        now: float,
        *,
        horizon: float | None = None,
        not_after: float | None = None,
        max_tries: int = 50,
    ) -> Reservation:
        """Reserve the next slot for ``action``; retries the compare-and-set when racing other executions.

        ``horizon``: a stored TAT more than this many seconds ahead of ``now`` cannot have been reserved by an
        execution alive now (none lives longer, and none stores a slot it refuses): it is repaired. ``not_after``:
        a slot later than this is refused (``SlotBeyondDeadline``) and nothing is stored, so no slot is wasted.
        """
        key = PaceKey(action)
        for _ in range(max_tries):
            current = self.store.read(key)
            if isinstance(current, CorruptPaceValue) or not _plausible(current, now, horizon):
                self._repair(key, current, now, horizon)
                continue
            grant = reserve(current, now, rate=self.rate, burst=self.burst, margin=self.margin)
            if not_after is not None and grant.slot > not_after:
                raise SlotBeyondDeadline(
                    f"the next {action} slot is at {iso(grant.slot)}, {grant.slot - now:.0f} s from now, later than "
                    f"this execution can use it (by {iso(not_after)}): the account's backlog of paced calls is longer "
                    "than an execution may live"
                )
            if self.store.compare_and_set(key, current, grant.tat):
                return grant
        raise PacingContention(f"could not reserve a pacing slot for {action} after {max_tries} tries")

    def claim(self, action: str, now: float, *, max_tries: int = 50) -> float:
        """Take the turn to call ``action`` now: 0.0 when this caller may call (recorded), otherwise the seconds
        until the account's next turn (nothing recorded: try again then)."""
        turn_key = PaceKey(action, turn=True)
        horizon = max(TURN_HORIZON, 4 * self.burst * self.interval)
        for _ in range(max_tries):
            current = self.store.read(turn_key)
            if isinstance(current, CorruptPaceValue) or not _plausible(current, now, horizon):
                self._repair(turn_key, current, now, horizon)
                continue
            grant = reserve(current, now, rate=self.rate, burst=self.burst, margin=self.call_margin)
            if grant.slot > now:
                return grant.slot - now
            if self.store.compare_and_set(turn_key, current, grant.tat):
                return 0.0
        raise PacingContention(f"could not take a turn to call {action} after {max_tries} tries")

    def _repair(self, key: PaceKey, value: PaceValue, now: float, horizon: float | None) -> None:
        """Reset a cell that holds no plausible TAT to ``now`` with a conditional write (only if it still holds
        ``value``: a concurrent repair or reservation wins) and log a warning. Bad data never fails a job."""
        if isinstance(value, CorruptPaceValue):
            problem = "not a number"
        elif value is not None and not math.isfinite(value):
            problem = "not finite"
        else:
            problem = f"{(value or now) - now:.0f} s ahead (more than {horizon or 0:.0f} s)"
        repaired = self.store.compare_and_set(key, value, now)
        logger.warning(
            "pacing item repaired: %s (action %s, turn %s, written %s)", problem, key.action, key.turn, repaired
        )


def _plausible(tat: float | None, now: float, horizon: float | None) -> bool:
    """A stored TAT no live execution could have reserved is not one: not finite, or beyond ``horizon``."""
    if tat is None:
        return True
    return math.isfinite(tat) and (horizon is None or tat <= now + horizon)


# --- the workflow's side: the Pace task, and the turn its callers take -------------------------------------------
def pace(
    state: WorkflowState,
    pacer: Pacer,
    clock: Clock,
    *,
    started_at: float | None = None,
    timeout: float | None = None,
) -> WorkflowState:
    """Reserve an account-wide slot for the next rate-limited call (CopyImageSet, or DeleteImageSet when the source
    is to be deleted); the state machine waits the whole seconds, the calling task sleeps the rest.

    With the execution's start (``started_at``) and its timeout (``timeout``, seconds), a slot the execution could
    not live to use fails the job (``SlotBeyondDeadline``) instead of a wait that ends in TIMED_OUT, and a stored TAT
    beyond any live execution's reach is treated as corrupt (repaired)."""
    missed = (state.pace.missed if state.pace else 0) + 1 if state.missedSlot is not None else 0
    if missed > MAX_MISSED_SLOTS:
        raise SlotMissed(
            f"{paced_action(state)} missed its turn {missed} times in a row: the account's rate-limited calls run "
            f"more than {MAX_TURN_WAIT:g} s behind their schedule"
        )
    now = clock.now()
    not_after = None if started_at is None or timeout is None else slot_deadline(started_at, timeout)
    grant = pacer.reserve(paced_action(state), now, horizon=timeout, not_after=not_after)
    wait = grant.wait(now)
    whole = math.floor(wait - DISPATCH_LEAD) if wait > MAX_IN_LAMBDA_PACING_SLEEP else 0
    return state.model_copy(
        update={"pace": Pace(slot=grant.slot, waitSeconds=whole, missed=missed), "missedSlot": None}
    )


def slot_deadline(started_at: float, timeout: float) -> float:
    """The latest slot an execution started at ``started_at`` with ``timeout`` seconds to live can still use."""
    return started_at + timeout - min(DEADLINE_RESERVE, timeout / 2)


def paced_action(state: WorkflowState) -> str:
    """The rate-limited call the job makes next: the source's deletion once it is pending, else the next copy."""
    pending_delete = state.sourceDeletion is not None and state.sourceDeletion.status == "PENDING"
    return DELETE_ACTION if pending_delete else COPY_ACTION


def take_turn(state: WorkflowState, pacer: Pacer, clock: Clock) -> None:
    """Sleep to the reserved slot, then wait for the account's turn (``Pacer.claim``), immediately before the call.

    A caller ahead that ran late delays this one by up to ``MAX_TURN_WAIT`` instead of making it throttled; beyond
    that, ``SlotMissed`` sends the task back to Pace for a new slot. Unpaced states (no slot) call at once.
    """
    if state.pace is None:
        return
    if (early := state.pace.slot - clock.now()) > 0:
        clock.sleep(min(early, MAX_IN_LAMBDA_PACING_SLEEP))
    action, waited = paced_action(state), 0.0
    while (wait := pacer.claim(action, clock.now())) > 0:
        if waited + wait > MAX_TURN_WAIT:
            raise SlotMissed(
                f"{action} for the slot at {iso(state.pace.slot)} would wait {waited + wait:.1f} s for the account's "
                f"next turn (more than {MAX_TURN_WAIT:g} s): the calls ahead ran late; taking a new slot"
            )
        clock.sleep(wait)
        waited += wait
