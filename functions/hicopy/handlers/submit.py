"""Submit: take the account's turn and call CopyImageSet for the current chunk, at most once per (job, chunk)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.state_table import DynamoSubmissionStore
from hicopy.clock import get_clock
from hicopy.domain.submission import submit
from hicopy.handlers._task import account_pacer, healthimaging, run_task
from hicopy.observability import logger, tracer
from hicopy.settings import PaceEnv, load


@cache
def _submissions() -> DynamoSubmissionStore:
    return DynamoSubmissionStore(load(PaceEnv).STATE_TABLE_NAME)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_task(event, lambda t: submit(t.state, healthimaging(), _submissions(), account_pacer(), get_clock()))
