"""Post-import automation: HealthImaging import results of the configured data stores -> the import planner, which
reads the import's output and enqueues copy jobs according to the post-import policy."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from hicopy.contract import HEALTHIMAGING_IMPORT_DETAIL_TYPES
from hicopy.settings import PlannerEnv
from infra.acknowledge import HIPAA, acknowledge
from infra.config import HicopyConfig
from infra.ingress import RULE_MAX_EVENT_AGE_HOURS, RULE_RETRY_ATTEMPTS, JobQueues, healthimaging_events
from infra.lambda_factory import LambdaFactory
from infra.permissions import PLANNER_ACTIONS, allow_import_output_read, allow_medical_imaging

PLANNER_TIMEOUT_SECONDS = 300
PLANNER_MEMORY_MB = 512
# Invoked asynchronously by EventBridge: a failed planning is retried twice (e.g. the manifest is not written yet),
# then the event is kept in the import rule's DLQ.
PLANNER_ASYNC_RETRIES = 2
# How long the planner waits for the import's job-output-manifest.json (S3 can lag the event), within its timeout.
MANIFEST_WAIT_SECONDS = 120


class ImportPlanning(Construct):
    """The ``ImportPlanner`` function and the ``ImportEventsRule`` (default bus) that invokes it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: HicopyConfig,
        factory: LambdaFactory,
        queues: JobQueues,
        bus: events.IEventBus,
        state_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.planner = factory.function(
            self,
            "ImportPlanner",
            handler="hicopy.handlers.planner.handler",
            description="Plans post-import copy jobs from HealthImaging import results",
            settings=PlannerEnv,
            environment={
                "JOB_QUEUE_URL": queues.job_queue.queue_url,
                "STATE_TABLE_NAME": state_table.table_name,
                "DATASTORE_IDS": config.datastore_ids,
                "POST_IMPORT_POLICY": config.post_import_policy,
                "MANIFEST_WAIT_SECONDS": MANIFEST_WAIT_SECONDS,
                "CONSOLIDATE_FORCE": config.consolidate_force,
                "DELETE_AFTER_CONSOLIDATE": config.delete_after_consolidate,
                "IMPORT_REPORT_DETAILS": config.import_report_details,
                "EVENT_BUS_NAME": bus.event_bus_name,
                "EVENT_SOURCE": config.event_source,
            },
            timeout=Duration.seconds(PLANNER_TIMEOUT_SECONDS),
            memory_size=PLANNER_MEMORY_MB,
            async_retry_attempts=PLANNER_ASYNC_RETRIES,
            dead_letter_queue=queues.import_rule_dlq,
        )
        acknowledge(
            self.planner,
            f"{HIPAA}-LambdaConcurrency",
            "Invoked only by the import events rule, once per HealthImaging import job of the configured data "
            "stores; the jobs it plans are rate-limited downstream. Reserved concurrency would only subtract "
            "from the account pool.",
        )
        allow_medical_imaging(
            self.planner,
            self,
            datastore_ids=config.datastore_ids,
            actions=PLANNER_ACTIONS,
            kms_key_arns=config.datastore_kms_key_arns,
        )
        allow_import_output_read(
            self.planner, buckets=config.import_output_buckets, kms_key_arns=config.import_output_kms_key_arns
        )
        queues.job_queue.grant(self.planner, "sqs:SendMessage")
        # Once-only markers (an import job is planned once, even when its event is delivered twice).
        state_table.grant(self.planner, "dynamodb:GetItem", "dynamodb:PutItem")
        bus.grant_put_events_to(self.planner)

        # No event_bus: the default bus, where HealthImaging emits its events.
        self.rule = events.Rule(
            self,
            "ImportEventsRule",
            description="HealthImaging Import Job Completed/Failed of the configured data stores -> import planner",
            event_pattern=healthimaging_events(list(HEALTHIMAGING_IMPORT_DETAIL_TYPES), list(config.datastore_ids)),
            targets=[
                targets.LambdaFunction(
                    self.planner,
                    dead_letter_queue=queues.import_rule_dlq,
                    retry_attempts=RULE_RETRY_ATTEMPTS,
                    max_event_age=Duration.hours(RULE_MAX_EVENT_AGE_HOURS),
                )
            ],
        )
