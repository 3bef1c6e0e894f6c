"""Pace: reserve an account-wide CopyImageSet slot before calling (GCRA on the state table)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.aws import DynamoPaceStore
from hicopy.clock import get_clock
from hicopy.domain import workflow
from hicopy.domain.pacing import Pacer
from hicopy.handlers._task import run_task
from hicopy.observability import logger, tracer
from hicopy.settings import PaceEnv, load


@cache
def _pacer() -> Pacer:
    env = load(PaceEnv)
    return Pacer(DynamoPaceStore(env.STATE_TABLE_NAME), rate=env.COPY_RATE_PER_SECOND, burst=env.COPY_BURST)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_task(event, lambda t: workflow.pace(t.state, _pacer(), get_clock()))
