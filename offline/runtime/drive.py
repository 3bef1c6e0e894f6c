"""Driving the local pipeline to the end: the event loop behind ``LocalRuntime.run_until_idle``.

Step Functions executions run on moto's own worker threads, and the HealthImaging emulator completes copies on its
ticker thread. What nothing runs by itself is driven by ``Driver.pump``: the SQS event source mappings (the poller)
and the due asynchronous Lambda invocations, Step Functions' status change events for ended executions, plus a tick
of the emulator. ``run_until_idle`` pumps until nothing moves any more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from offline.runtime.eventbridge import AsyncInvoker
from offline.runtime.inspection import ExecutionTracker
from offline.runtime.progress import ProgressReporter
from offline.runtime.sqs_poller import SqsPoller
from offline.runtime.status_events import ExecutionStatusEvents

if TYPE_CHECKING:
    from offline.healthimaging import HealthImagingEmulator


class IdleTimeout(TimeoutError):
    """``run_until_idle`` ran out of time; the message says what was still moving."""


@dataclass
class IdleReport:
    seconds: float
    loops: int
    executions: int
    invocations: int


@dataclass(kw_only=True)
class Driver:
    """The event loop: what moves the pipeline on, and how to tell that nothing does any more."""

    poller: SqsPoller
    async_invoker: AsyncInvoker
    emulator: HealthImagingEmulator | None
    executions: ExecutionTracker
    invocation_count: Callable[[], int]
    progress: ProgressReporter
    status_events: ExecutionStatusEvents | None = None  # Step Functions' status change events (moto emits none)

    def pump(self) -> int:
        """One round of the event loop: SQS mappings, due async invocations, emulator time. Returns work done."""
        moved = self.poller.poll_once()
        moved += self.async_invoker.run_due()
        if self.status_events is not None:
            moved += self.status_events.emit_due()
        if self.emulator is not None:
            moved += self.emulator.tick()
        return moved

    def busy_reasons(self) -> list[str]:
        """What is still moving (empty when idle)."""
        reasons = []
        running = self.executions.running_count()
        if running:
            reasons.append(f"{running} execution(s) running")
        if self.async_invoker.pending:
            reasons.append(f"{self.async_invoker.pending} async invocation(s) pending")
        backlog = self.poller.backlog() + self.poller.in_flight_releases()
        if backlog:
            reasons.append(f"{backlog} message(s) in the job queue(s)")
        if self.emulator is not None:
            pending = self.emulator.pending()
            if pending:
                reasons.append(f"{pending} emulator action(s) scheduled")
        return reasons

    def run_until_idle(self, timeout: float = 60.0, *, settle: float = 0.05) -> IdleReport:
        """Drive the pipeline until nothing moves: no queued messages, no running executions, no pending async
        invocations or emulator work, for ``settle`` seconds. Raises ``IdleTimeout`` after ``timeout``.

        The loop checks moto's in-memory state directly (cheap) and backs off from 5 to 50 ms while nothing moves,
        so it does not compete with the handlers for the GIL.
        """
        start = time.monotonic()
        deadline = start + timeout
        quiet_since: float | None = None
        loops = 0
        interval = 0.005
        last_observed = 0.0
        inv_before = self.invocation_count()
        while True:
            loops += 1
            moved = self.pump()
            now = time.monotonic()
            if self.progress.enabled and (moved or now - last_observed >= 0.05):
                self.executions.observe()
                last_observed = now
            if moved:
                quiet_since = None
                interval = 0.005
                continue
            if self.busy_reasons():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle:
                break
            if now > deadline:
                raise IdleTimeout(f"still busy after {timeout:.1f}s: {'; '.join(self.busy_reasons()) or 'settling'}")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.05)
        self.executions.observe()
        return IdleReport(
            seconds=time.monotonic() - start,
            loops=loops,
            executions=self.executions.seen,
            invocations=self.invocation_count() - inv_before,
        )
