"""Status-polling arithmetic shared by AwaitCopy, the state machine (``infra/``) and the docs.

After the k-th status check (0-based retry k) AwaitCopy waits a uniform random time in ``[0, min(first * rate**k,
cap)]`` (full jitter), i.e. half of that on average, unless HealthImaging's copy event ends the wait first; the
budget is ``MaxAttempts`` waits, derived from ``maxWaitSeconds`` so that the *expected* total wait reaches it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


def nominal_delay(attempt: int, first: float, rate: float, cap: float) -> float:
    """The un-jittered delay before retry number ``attempt`` (0-based)."""
    return min(first * rate**attempt, cap)


def max_attempts_for(
    max_wait_seconds: float, first_interval_seconds: float, backoff_rate: float, max_delay_seconds: float
) -> int:
    """Smallest MaxAttempts whose *expected* total wait under full jitter reaches ``max_wait_seconds``.

    The expected wait of retry k is ``nominal_delay(k) / 2``. Step Functions caps MaxAttempts at 99,999,999.
    """
    if min(max_wait_seconds, first_interval_seconds, max_delay_seconds) <= 0 or backoff_rate < 1:
        raise ValueError("polling settings must be positive and backoff_rate >= 1")
    total, attempts = 0.0, 0
    while total < max_wait_seconds:
        total += nominal_delay(attempts, first_interval_seconds, backoff_rate, max_delay_seconds) / 2
        attempts += 1
    return min(attempts, 99_999_999)


def expected_status_checks(
    copy_seconds: float, first_interval_seconds: float, backoff_rate: float, max_delay_seconds: float
) -> int:
    """Expected number of GetImageSet checks until a copy lasting ``copy_seconds`` is seen finished when no copy
    event comes (polling alone).

    No check right after submission; one after each wait until the expected elapsed wait passes the copy time.
    """
    checks, elapsed = 0, 0.0
    while elapsed < copy_seconds:
        elapsed += nominal_delay(checks, first_interval_seconds, backoff_rate, max_delay_seconds) / 2
        checks += 1
    return checks


def ceil_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds))


# --- outages of the services a terminal event depends on (EventBridge, DynamoDB) --------------------------------
# How long an outage of PutEvents (or of the state table) may last without losing or duplicating a terminal or a
# rejection event. The Publish tasks' retrier and the consumer's redelivery schedule are sized from it.
OUTAGE_TOLERANCE_SECONDS = 2 * 3600
# The Publish retrier's *expected* total wait is this multiple of the tolerance: under full jitter the total is a sum
# of ~70 independent uniform waits (mean 3 h, standard deviation ~12 min), so it falls short of 2 h with a
# probability below 1e-6 (checked by simulation in tests/unit/test_outage_budgets.py).
PUBLISH_EXPECTED_WAIT_FACTOR = 1.5
PUBLISH_FIRST_INTERVAL_SECONDS = 5
PUBLISH_BACKOFF_RATE = 2.0
PUBLISH_MAX_DELAY_SECONDS = 300  # at most 5 minutes between two attempts


def publish_max_attempts() -> int:
    """MaxAttempts of the Publish tasks' retrier (transient errors, EventPublishFailed included)."""
    return max_attempts_for(
        OUTAGE_TOLERANCE_SECONDS * PUBLISH_EXPECTED_WAIT_FACTOR,
        PUBLISH_FIRST_INTERVAL_SECONDS,
        PUBLISH_BACKOFF_RATE,
        PUBLISH_MAX_DELAY_SECONDS,
    )


def worst_case_wait(attempts: int, first: float, rate: float, cap: float) -> float:
    """The longest total wait of ``attempts`` retries (every jittered wait at its nominal maximum)."""
    return sum(nominal_delay(k, first, rate, cap) for k in range(attempts))


def publish_worst_case_seconds() -> float:
    """The longest time the Publish retrier can keep an execution alive (the execution timeout must exceed it)."""
    return worst_case_wait(
        publish_max_attempts(), PUBLISH_FIRST_INTERVAL_SECONDS, PUBLISH_BACKOFF_RATE, PUBLISH_MAX_DELAY_SECONDS
    )


# The consumer's rejection path: a message whose ``Copy Job Rejected`` could not be published goes back to the queue
# with ``ChangeMessageVisibility``, after these many seconds for its 1st, 2nd, ... failed receive (deterministic: few
# messages are rejected, and a rejection waits for nothing else). The queue's maxReceiveCount allows
# ``maxReceiveCount - 1`` redeliveries: their sum must exceed the tolerance (checked at synth and by a test).
REDELIVERY_DELAYS_SECONDS = (300, 1200, 3600, 7200)  # 5 min, 20 min, 1 h, 2 h: 3 h 25 min in all
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600


def redelivery_delay(receive_count: int) -> int:
    """Visibility timeout for a message whose rejection event failed on its ``receive_count``-th receive (1-based)."""
    index = min(max(receive_count, 1), len(REDELIVERY_DELAYS_SECONDS)) - 1
    return min(REDELIVERY_DELAYS_SECONDS[index], SQS_MAX_VISIBILITY_SECONDS)


def redelivery_budget_seconds(max_receive_count: int) -> int:
    """How long the redeliveries of a rejected message span before the queue dead-letters it."""
    return sum(redelivery_delay(k) for k in range(1, max_receive_count))


@dataclass(frozen=True)
class Backoff:
    """AwaitCopy's schedule of waits between status checks, each cut short by HealthImaging's copy event (see
    ``hicopy.domain.waking``).

    - **Polling** (no copy event of the data store heard lately): the n-th wait (0-based) is ``jittered_wait(n)``,
      full jitter, and charges its *expected* length, ``nominal_delay(n) / 2``, to the budget.
    - **On events** (copy events of the data store heard within ``events_window`` seconds): each wait is
      ``event_wait`` seconds and charges that. The event ends the wait; the timeout is only the fallback for a lost
      event, so the checks a copy would have had meanwhile are skipped. ``event_wait = 0`` never waits on events.

    The budget is the expected total of ``max_attempts`` polling waits (the Retry ``MaxAttempts`` of the former
    Retry-based polling, sized from ``maxWaitSeconds``): pure polling spends it after exactly ``max_attempts`` waits.
    """

    first: float
    rate: float
    cap: float
    max_attempts: int
    event_wait: int = 0
    events_window: float = 0.0

    def jittered_wait(self, waits: int, rng: Callable[[], float]) -> int:
        """Full jitter: uniform in ``[0, nominal_delay(waits)]``, in whole seconds of at least 1 (a callback
        timeout is a positive integer)."""
        return max(1, round(rng() * nominal_delay(waits, self.first, self.rate, self.cap)))

    def next_wait(self, waits: int, on_events: bool, rng: Callable[[], float]) -> tuple[int, float]:
        """The wait after ``waits`` earlier waits, and what it charges to the budget (seconds)."""
        if on_events and self.event_wait > 0:
            return self.event_wait, float(self.event_wait)
        return self.jittered_wait(waits, rng), nominal_delay(waits, self.first, self.rate, self.cap) / 2

    @property
    def budget_seconds(self) -> float:
        """The expected total wait of ``max_attempts`` polling waits (full jitter: half of the longest)."""
        return worst_case_wait(self.max_attempts, self.first, self.rate, self.cap) / 2

    def spent(self, charged: float) -> bool:
        """True when the waits so far charged the whole budget (a tolerance for the float sums)."""
        return charged >= self.budget_seconds - 1e-6
