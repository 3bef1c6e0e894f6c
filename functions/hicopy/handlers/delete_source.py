"""DeleteSource: after every chunk was COPIED, check the import planner's record of the job and the destination's
instances, take the account's turn and delete the source image set (post-import delete-after only)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.state_table import PlanRecords
from hicopy.clock import get_clock
from hicopy.domain.deletion import delete_source
from hicopy.handlers._task import account_pacer, healthimaging, run_task
from hicopy.observability import logger, tracer
from hicopy.settings import PaceEnv, load


@cache
def _plans() -> PlanRecords:
    return PlanRecords(load(PaceEnv).STATE_TABLE_NAME)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_task(
        event,
        lambda t: delete_source(
            t.state, healthimaging(), account_pacer(), get_clock(), plans=_plans(), imaging=healthimaging()
        ),
    )
