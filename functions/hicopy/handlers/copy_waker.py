"""CopyWaker: where AwaitCopy's callback waits and HealthImaging's copy events meet (``hicopy.domain.waking``).

Two callers: the state machine's ``WaitForCopyEvent`` task (``.waitForTaskToken``) parks its token, and the rule
on the default bus delivers ``Image Set Copied`` / ``Image Set Copy Failed`` of the configured data stores. No ID
is logged (image set IDs can identify a study).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.aws import TaskWaker
from hicopy.adapters.wake_store import DynamoWakeStore
from hicopy.clock import get_clock
from hicopy.domain.ports import CopyVersion
from hicopy.domain.waking import Parked, on_copy_event, park
from hicopy.observability import logger, tracer
from hicopy.settings import WakerEnv, load


@cache
def _store() -> DynamoWakeStore:
    return DynamoWakeStore(load(WakerEnv).STATE_TABLE_NAME)


@cache
def _waker() -> TaskWaker:
    return TaskWaker()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = get_clock().now()
    if "taskToken" in event:  # the state machine's callback wait: {taskToken, datastoreId, imageSetId, versionId}
        version = CopyVersion(str(event["datastoreId"]), str(event["imageSetId"]), str(event["versionId"]))
        woken = park(Parked(str(event["taskToken"]), version), _store(), _waker(), now)
        logger.info("waiter parked", extra={"woken_at_once": woken})
        return {"woken": woken}
    outcome = on_copy_event(event, load(WakerEnv).datastore_ids, _store(), _waker(), now, heard=_store())
    logger.info("copy event", extra={"outcome": outcome, "detail_type": event.get("detail-type")})
    return {"outcome": outcome}
