"""AwaitCopy: read the destination version; still copying raises CopyStillInProgress, which the task's Retry turns
into exponential backoff with full jitter."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.healthimaging import HealthImaging
from hicopy.clock import get_clock
from hicopy.domain.awaiting import await_copy
from hicopy.handlers._task import run_task
from hicopy.observability import logger, tracer


@cache
def _imaging() -> HealthImaging:
    return HealthImaging()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_task(
        event, lambda t: await_copy(t.state, _imaging(), get_clock(), retry_count=t.retryCount, verify=t.verify)
    )
