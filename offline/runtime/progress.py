"""Progress notes for ``LocalRuntime(progress=callback)``: one ``Progress`` for each thing that happens.

The runtime's parts report here (the SQS poller its batches, the Lambda runner its invocations, the event router
what ``PutEvents`` accepted, the execution tracker each state entered, the triggers what they sent). A failing
callback is logged, never raised into the pipeline. ``offline.runtime.console.ProgressPrinter`` prints the notes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from offline.runtime.eventbridge import PublishedEvent
from offline.runtime.lambdas import Invocation
from offline.runtime.sqs_poller import BatchResult

LOG = logging.getLogger(__name__)


@dataclass
class Progress:
    """One progress notification (for ``LocalRuntime(progress=callback)``)."""

    # sqs.send | event.put | sqs.receive | sqs.batch | lambda | execution.start | execution.state | execution.end |
    # event.published | service.event
    kind: str
    message: str
    at: float  # seconds since the runtime started (real time)
    data: dict[str, Any] = field(default_factory=dict)


class ProgressReporter:
    """Sends ``Progress`` notes to ``callback`` (if any). ``custom_bus`` and ``construct_of`` are known once the
    stack is deployed: an event on the custom bus is ``event.published``, any other ``service.event``."""

    def __init__(self, callback: Callable[[Progress], None] | None) -> None:
        self.callback = callback
        self.t0 = time.monotonic()
        self.custom_bus: str | None = None
        self.construct_of: Callable[[str], str] = lambda function_name: function_name
        # Reports the state changes that happened so far (the execution tracker's ``observe``): called before a
        # handler's result, an event or an SQS batch is reported, so a state is printed before what it caused.
        self.sync: Callable[[], None] | None = None

    def _sync(self) -> None:
        if self.callback is None or self.sync is None:
            return
        try:
            self.sync()
        except Exception:  # pragma: no cover - progress output must never break the pipeline
            LOG.exception("progress sync failed")

    @property
    def enabled(self) -> bool:
        return self.callback is not None

    def emit(self, kind: str, message: str, **data: Any) -> None:
        if self.callback is None:
            return
        try:
            self.callback(Progress(kind=kind, message=message, at=time.monotonic() - self.t0, data=data))
        except Exception:  # pragma: no cover - progress output must never break the pipeline
            LOG.exception("progress callback failed")

    def invocation(self, inv: Invocation) -> None:
        """``LambdaRunner.on_invocation``."""
        outcome = "ok" if inv.ok else f"{inv.error_type}: {inv.error_message}"
        self._sync()
        self.emit("lambda", f"{inv.construct_id} -> {outcome}", invocation=inv)

    def receive(self, function_arn: str, received: int) -> None:
        """``SqsPoller.on_receive``: a batch is about to be handed to ``function_arn``."""
        function = self.construct_of(function_arn.rsplit(":", 1)[-1])
        self._sync()
        self.emit("sqs.receive", f"{received} message(s) -> {function}", function=function, received=received)

    def batch(self, batch: BatchResult) -> None:
        """``SqsPoller.on_batch``."""
        function = self.construct_of(batch.mapping.function_arn.rsplit(":", 1)[-1])
        self._sync()
        self.emit("sqs.batch", f"{batch.received} message(s) -> {function}, {len(batch.failed)} failed", batch=batch)

    def published(self, published: PublishedEvent) -> None:
        """``EventRouter.on_publish``."""
        kind = "event.published" if published.bus == self.custom_bus else "service.event"
        self._sync()
        self.emit(kind, f"{published.bus}: {published.event['detail-type']}", event=published.event, bus=published.bus)
