"""Prepare: resolve versions, check the image sets, plan the chunks."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.healthimaging import HealthImaging
from hicopy.domain.planning import prepare
from hicopy.handlers._task import run_task
from hicopy.observability import logger, tracer
from hicopy.settings import PrepareEnv, load


@cache
def _imaging() -> HealthImaging:
    return HealthImaging()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    env = load(PrepareEnv)
    return run_task(
        event,
        lambda t: prepare(
            t.state, _imaging(), allowed_datastores=env.datastore_ids, frame_limit=env.MAX_FRAMES_PER_COPY
        ),
    )
