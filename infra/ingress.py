"""Where jobs come from: the job queue (+DLQs), the custom bus (+archive), the ``Copy Requested`` rule and the job
consumer, which starts one execution per job.

All triggers converge on the job queue: SQS senders directly, ``Copy Requested`` events on the custom bus through
a rule, and HealthImaging import events through the import planner (which enqueues jobs). The queues and the bus
are shared by every capability (the planner enqueues, the workflow publishes, monitoring watches the DLQs), so the
orchestrator creates them (:class:`JobQueues`, :func:`copy_event_bus`) and :class:`Ingress` uses them.
"""

from __future__ import annotations

import re

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from hicopy.contract import COPY_REQUESTED, HEALTHIMAGING_SOURCE
from hicopy.domain.backoff import OUTAGE_TOLERANCE_SECONDS, redelivery_budget_seconds
from hicopy.settings import ConsumerEnv
from infra.acknowledge import AWS_SOLUTIONS, HIPAA, acknowledge, logical_id
from infra.lambda_factory import LambdaFactory

# Plain numbers (no jsii objects at import time: importing infra must not start the jsii/Node runtime).
DLQ_RETENTION_DAYS = 14
# Jobs wait here, not in executions (backpressure, ``hicopy.domain.admission``): SQS's maximum retention. The
# consumer rejects a job older than that itself (``BacklogExpired``), since a deferred job's copy restarts the clock.
JOB_QUEUE_RETENTION_DAYS = 14
MAX_RECEIVE_COUNT = 5
CONSUMER_TIMEOUT_SECONDS = 30
CONSUMER_BATCH_SIZE = 10
CONSUMER_BATCHING_WINDOW_SECONDS = 1
# AWS guidance for SQS-triggered functions: visibility timeout >= 6 x function timeout + batching window.
JOB_QUEUE_VISIBILITY_SECONDS = 6 * CONSUMER_TIMEOUT_SECONDS + 10
# A rejection whose event could not be published is redelivered on hicopy.domain.backoff's schedule: the receives
# the queue allows must outlast the outage tolerance.
if redelivery_budget_seconds(MAX_RECEIVE_COUNT) <= OUTAGE_TOLERANCE_SECONDS:
    raise ValueError("the job queue's maxReceiveCount does not let a rejection outlast the outage tolerance")
# EventBridge's maximum delivery effort; whatever still fails lands in the rule's DLQ.
RULE_RETRY_ATTEMPTS = 185
RULE_MAX_EVENT_AGE_HOURS = 24


def secure_queue(
    scope: Construct,
    construct_id: str,
    *,
    retention_period: Duration,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """SSE (SQS-managed keys) and a queue policy denying any request without TLS."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.DESTROY,
        retention_period=retention_period,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=dead_letter_queue,
    )


class JobQueues:
    """The job queue, its redrive DLQ (also where rejected jobs are kept) and the rules' target DLQs, in ``scope``."""

    def __init__(self, scope: Construct) -> None:
        parent = scope
        self.job_dlq = secure_queue(parent, "JobDeadLetterQueue", retention_period=Duration.days(DLQ_RETENTION_DAYS))
        self.job_queue = secure_queue(
            parent,
            "JobQueue",
            retention_period=Duration.days(JOB_QUEUE_RETENTION_DAYS),
            visibility_timeout=Duration.seconds(JOB_QUEUE_VISIBILITY_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.job_dlq, max_receive_count=MAX_RECEIVE_COUNT),
        )
        self.copy_requested_rule_dlq = secure_queue(
            parent, "CopyRequestedRuleDeadLetterQueue", retention_period=Duration.days(DLQ_RETENTION_DAYS)
        )
        acknowledge(
            self.copy_requested_rule_dlq,
            f"{AWS_SOLUTIONS}-SQS3",
            "This queue IS a dead-letter queue: the Copy Requested rule target's DLQ (a DLQ of a DLQ would only "
            "hide failures); its depth is alarmed.",
        )
        self.import_rule_dlq = secure_queue(
            parent, "ImportRuleDeadLetterQueue", retention_period=Duration.days(DLQ_RETENTION_DAYS)
        )
        # The safety net's status change events that could not be handled (rule delivery or the function's retries).
        self.execution_ended_dlq = secure_queue(
            parent, "ExecutionEndedDeadLetterQueue", retention_period=Duration.days(DLQ_RETENTION_DAYS)
        )
        # Our own events whose delivery receipt could not be recorded (rule delivery or the function's retries).
        self.receipt_dlq = secure_queue(
            parent, "DeliveryReceiptDeadLetterQueue", retention_period=Duration.days(DLQ_RETENTION_DAYS)
        )

    @property
    def dead_letter_queues(self) -> dict[str, sqs.Queue]:
        return {
            "JobDeadLetterQueue": self.job_dlq,
            "CopyRequestedRuleDeadLetterQueue": self.copy_requested_rule_dlq,
            "ImportRuleDeadLetterQueue": self.import_rule_dlq,
            "ExecutionEndedDeadLetterQueue": self.execution_ended_dlq,
            "DeliveryReceiptDeadLetterQueue": self.receipt_dlq,
        }


def healthimaging_events(detail_types: list[str], datastore_ids: list[str]) -> events.EventPattern:
    """HealthImaging's own events (on the default bus) of these detail-types, for the configured data stores only."""
    return events.EventPattern(
        source=[HEALTHIMAGING_SOURCE], detail_type=detail_types, detail={"datastoreId": datastore_ids}
    )


def archive_name(bus_name: str) -> str:
    """Archive names are <= 48 characters of [.-_A-Za-z0-9]: a generated name can be longer (moto rejects it)."""
    return re.sub(r"[^.\-_A-Za-z0-9]", "-", bus_name)[:40] + "-archive"


def copy_event_bus(scope: Construct, *, name: str, archive_retention_days: int) -> events.EventBus:
    """The custom bus for ``Copy Requested`` and the completion events, with an archive for replay."""
    bus = events.EventBus(scope, "CopyEventBus", event_bus_name=name, description="HealthImaging copy orchestrator")
    # L1 on purpose: without an event pattern the archive keeps every event of the bus (the L2 requires one).
    events.CfnArchive(
        scope,
        "CopyEventArchive",
        source_arn=bus.event_bus_arn,
        archive_name=archive_name(name),
        description="Every event on the copy orchestrator bus (replay after an incident)",
        retention_days=archive_retention_days,
    )
    return bus


class Ingress(Construct):
    """The ``Copy Requested`` rule (custom bus -> job queue) and the job consumer (job queue -> executions)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        factory: LambdaFactory,
        queues: JobQueues,
        bus: events.IEventBus,
        state_machine: sfn.StateMachine,
        state_table: dynamodb.ITable,
        datastore_ids: list[str],
        event_source: str,
        max_concurrency: int,
        copy_rate_per_second: float,
        copy_burst: int,
        receipt_window_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.consumer = factory.function(
            self,
            "JobConsumer",
            handler="hicopy.handlers.consumer.handler",
            description="Validates queued copy jobs and starts one execution per job",
            settings=ConsumerEnv,
            environment={
                "STATE_MACHINE_ARN": state_machine.state_machine_arn,
                "REJECTED_QUEUE_URL": queues.job_dlq.queue_url,
                "JOB_QUEUE_URL": queues.job_queue.queue_url,  # deferred jobs; a failed rejection comes back later
                "DATASTORE_IDS": datastore_ids,
                "EVENT_BUS_NAME": bus.event_bus_name,
                "EVENT_SOURCE": event_source,
                # Admission reads the CopyImageSet schedule's horizon and takes a start turn (the pacing cells);
                # rejected#<messageId> markers live there too.
                "STATE_TABLE_NAME": state_table.table_name,
                "COPY_RATE_PER_SECOND": copy_rate_per_second,
                "COPY_BURST": copy_burst,
                "RECEIPT_WINDOW_SECONDS": receipt_window_seconds,
            },
            timeout=Duration.seconds(CONSUMER_TIMEOUT_SECONDS),
        )
        acknowledge(
            self.consumer,
            f"{HIPAA}-LambdaDLQ",
            "Invoked by an SQS event source mapping (synchronously): failed messages are redriven by the job "
            "queue to JobDeadLetterQueue after 5 receives; a function DLQ only applies to async invocations.",
        )
        acknowledge(
            self.consumer,
            f"{HIPAA}-LambdaConcurrency",
            "Bounded by the SQS event source's ScalingConfig.MaximumConcurrency (consumerMaxConcurrency); "
            "reserved concurrency would only subtract from the account pool.",
        )
        state_machine.grant_start_execution(self.consumer)
        # A job ID that already names an execution: its input tells a redelivered job from a reused job ID.
        executions = Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.consumer.add_to_role_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions])
        )
        acknowledge(
            self.consumer.role or self.consumer,
            f"{AWS_SOLUTIONS}-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f"<{logical_id(state_machine)}.Name>:*]",
            "DescribeExecution of the copy state machine's executions only (execution names are job IDs, not known "
            "at deploy time): the consumer reads the input of the execution a job ID already names.",
        )
        bus.grant_put_events_to(self.consumer)
        queues.job_dlq.grant(self.consumer, "sqs:SendMessage")  # the URL is in the environment
        # rejected#<messageId>: a rejection redelivered during an EventBridge outage keeps one DLQ copy and one event;
        # the pacing horizon and the start turn (admission). ChangeMessageVisibility: the event source's grant.
        state_table.grant(self.consumer, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        # Deferred jobs go back to the job queue as delayed copies; its depth feeds the drain estimate in the logs.
        queues.job_queue.grant(self.consumer, "sqs:SendMessage", "sqs:GetQueueAttributes")
        # Batches of up to 10 jobs, partial batch responses, and at most ``max_concurrency`` concurrent consumers.
        self.consumer.add_event_source(
            sources.SqsEventSource(
                queues.job_queue,
                batch_size=CONSUMER_BATCH_SIZE,
                max_batching_window=Duration.seconds(CONSUMER_BATCHING_WINDOW_SECONDS),
                report_batch_item_failures=True,
                max_concurrency=max_concurrency,
            )
        )
        # The WHOLE event is delivered (no input transformer): the consumer reads the job from its detail.
        self.copy_requested_rule = events.Rule(
            self,
            "CopyRequestedRule",
            description="Copy Requested events -> the job queue",
            event_bus=bus,
            event_pattern=events.EventPattern(detail_type=[COPY_REQUESTED]),
            targets=[
                targets.SqsQueue(
                    queues.job_queue,
                    dead_letter_queue=queues.copy_requested_rule_dlq,
                    retry_attempts=RULE_RETRY_ATTEMPTS,
                    max_event_age=Duration.hours(RULE_MAX_EVENT_AGE_HOURS),
                )
            ],
        )
