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
    """Expected number of GetImageSet checks until a copy lasting ``copy_seconds`` is seen finished.

    One check right after submission, then one per retry until the expected elapsed wait passes the copy time.
    """
    checks, elapsed = 1, 0.0
    while elapsed < copy_seconds:
        elapsed += nominal_delay(checks - 1, first_interval_seconds, backoff_rate, max_delay_seconds) / 2
        checks += 1
    return checks


def ceil_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds))


@dataclass(frozen=True)
class Backoff:
    """AwaitCopy's schedule: after the k-th status check (1-based) still finds the copy running, the execution waits
    up to ``jittered_wait(k)`` seconds (cut short by HealthImaging's copy event, see ``hicopy.domain.waking``); after
    ``max_attempts`` waits (the Retry ``MaxAttempts`` of the former Retry-based polling) the budget is spent."""

    first: float
    rate: float
    cap: float
    max_attempts: int

    def jittered_wait(self, checks: int, rng: Callable[[], float]) -> int:
        """Full jitter: uniform in ``[0, nominal_delay(checks - 1)]``, in whole seconds of at least 1 (a callback
        timeout is a positive integer)."""
        return max(1, round(rng() * nominal_delay(checks - 1, self.first, self.rate, self.cap)))

    def spent(self, checks: int) -> bool:
        """True when ``checks`` status checks used the whole budget (1 + ``max_attempts``)."""
        return checks > self.max_attempts
