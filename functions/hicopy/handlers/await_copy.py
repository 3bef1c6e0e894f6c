"""AwaitCopy: right after Submit, the first wait; then read the destination version. Still copying returns
``awaiting`` (the next wait: a backoff step with full jitter, or a long wait while the data store's copy events
flow; HealthImaging's copy event cuts it short); the budget spent raises CopyStillInProgress."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.wake_store import DynamoWakeStore
from hicopy.clock import get_clock
from hicopy.domain.awaiting import await_copy
from hicopy.domain.backoff import Backoff
from hicopy.handlers._task import healthimaging, run_task
from hicopy.observability import logger, tracer
from hicopy.settings import AwaitEnv, load


@cache
def _backoff() -> Backoff:
    env = load(AwaitEnv)
    return Backoff(
        first=env.POLL_FIRST_INTERVAL_SECONDS,
        rate=env.POLL_BACKOFF_RATE,
        cap=env.POLL_MAX_DELAY_SECONDS,
        max_attempts=env.POLL_MAX_ATTEMPTS,
        event_wait=env.EVENT_WAIT_SECONDS,
        events_window=env.EVENTS_WINDOW_SECONDS,
    )


@cache
def _heard() -> DynamoWakeStore:
    return DynamoWakeStore(load(AwaitEnv).STATE_TABLE_NAME)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_task(
        event,
        lambda t: await_copy(
            t.state, healthimaging(), get_clock(), backoff=_backoff(), heard=_heard(), verify=t.verify
        ),
    )
