"""Prepare: resolve versions, check the image sets, plan the chunks."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.domain.planning import prepare
from hicopy.handlers._task import healthimaging, run_task
from hicopy.observability import logger, tracer
from hicopy.settings import PrepareEnv, load


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    env = load(PrepareEnv)
    return run_task(
        event,
        lambda t: prepare(
            t.state, healthimaging(), allowed_datastores=env.datastore_ids, frame_limit=env.MAX_FRAMES_PER_COPY
        ),
    )
