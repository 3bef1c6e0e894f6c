"""DeliveryReceipt: records the delivery receipt of each terminal and rejection event the orchestrator put on its own
bus (``hicopy.domain.delivery``), so that a put whose answer was lost is never repeated once the event is out.

Invoked asynchronously by the rule on our bus (our source, the three detail-types). No ID is logged beyond the
event's kind (a job ID is the sender's, and says nothing about a patient; still, only the kind is needed here).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.state_table import DeliveryReceipts
from hicopy.clock import get_clock
from hicopy.domain.delivery import identity_of
from hicopy.observability import logger, tracer
from hicopy.settings import ReceiptEnv, load


@cache
def _receipts() -> DeliveryReceipts:
    return DeliveryReceipts(load(ReceiptEnv).STATE_TABLE_NAME)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail_type = str(event.get("detail-type", ""))
    identity = identity_of(detail_type, event.get("detail"))
    if identity is None:
        logger.warning("an event without the identity of a terminal or rejection event; no receipt")
        return {"receipt": None}
    _receipts().receive(identity, get_clock().now(), detail_type=detail_type)
    return {"receipt": identity.kind}
