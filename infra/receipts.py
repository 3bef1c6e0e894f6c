"""Delivery receipts: the ``DeliveryReceipt`` function and the ``DeliveryReceiptRule`` on the orchestrator's own bus,
matching our own terminal and rejection events (our source, the three detail-types of ``hicopy.contract``). Each
event seen records a receipt in the state table, so that a publisher whose ``PutEvents`` answer was lost knows the
event is out instead of putting it twice (``hicopy.domain.delivery``)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from hicopy.contract import FAILED, REJECTED, SUCCEEDED
from hicopy.settings import ReceiptEnv
from infra.acknowledge import HIPAA, acknowledge
from infra.ingress import RULE_MAX_EVENT_AGE_HOURS, RULE_RETRY_ATTEMPTS, JobQueues
from infra.lambda_factory import LambdaFactory

# Invoked asynchronously by EventBridge: a failed attempt (the state table unreachable) is retried twice by Lambda,
# then the event is kept in DeliveryReceiptDeadLetterQueue (alarmed). A receipt that comes later than the receipt
# window no longer prevents a second put (the residual case, README "Reliability").
RECEIPT_ASYNC_RETRIES = 2
RECEIPT_TIMEOUT_SECONDS = 10


class DeliveryReceipts(Construct):
    """The ``DeliveryReceipt`` function and the rule on our bus that invokes it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        factory: LambdaFactory,
        queues: JobQueues,
        bus: events.IEventBus,
        event_source: str,
        state_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = factory.function(
            self,
            "DeliveryReceipt",
            handler="hicopy.handlers.receipt.handler",
            description="Records the delivery receipt of each terminal and rejection event the orchestrator put on "
            "its bus (a lost PutEvents answer is then never put twice)",
            settings=ReceiptEnv,
            environment={"STATE_TABLE_NAME": state_table.table_name},
            timeout=Duration.seconds(RECEIPT_TIMEOUT_SECONDS),
            async_retry_attempts=RECEIPT_ASYNC_RETRIES,
            dead_letter_queue=queues.receipt_dlq,
        )
        acknowledge(
            self.function,
            f"{HIPAA}-LambdaConcurrency",
            "Invoked only by the receipt rule, once per terminal or rejection event; reserved concurrency would "
            "only subtract from the account pool (and a throttled receipt is retried by EventBridge).",
        )
        state_table.grant(self.function, "dynamodb:UpdateItem")  # the receipt#... item, nothing else
        self.rule = events.Rule(
            self,
            "DeliveryReceiptRule",
            description="The orchestrator's own terminal and rejection events -> their delivery receipts",
            event_bus=bus,
            event_pattern=events.EventPattern(source=[event_source], detail_type=[SUCCEEDED, FAILED, REJECTED]),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=queues.receipt_dlq,
                    retry_attempts=RULE_RETRY_ATTEMPTS,
                    max_event_age=Duration.hours(RULE_MAX_EVENT_AGE_HOURS),
                )
            ],
        )
