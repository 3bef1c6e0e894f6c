"""The orchestrator stack: queues, buses, rules, the state machine, its functions, IAM and observability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import HicopyConfig
from infra.ingress import (
    CONSUMER_TIMEOUT_SECONDS,
    JobQueues,
    consume_job_queue,
    copy_event_bus,
    copy_requested_rule,
    import_events_rule,
)
from infra.lambda_factory import LambdaFactory
from infra.monitoring import Monitoring
from infra.paths import FUNCTIONS_DIR
from infra.permissions import (
    AWAIT_COPY_ACTIONS,
    DELETE_SOURCE_ACTIONS,
    PLANNER_ACTIONS,
    PREPARE_ACTIONS,
    SUBMIT_ACTIONS,
    allow_import_output_read,
    allow_medical_imaging,
)
from infra.state_machine import CopyWorkflow, WorkflowFunctions

if TYPE_CHECKING:
    from infra.nag import Ack

STATE_TABLE_PARTITION_KEY = "pk"
STATE_TABLE_TTL_ATTRIBUTE = "expiresAt"


class CopyOrchestratorStack(Stack):
    """Environment-agnostic (no lookups): deployable with one ``cdk deploy`` into any account/region."""

    def __init__(self, scope: Construct, construct_id: str, *, config: HicopyConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.nag_acknowledgements: list[Ack] = []  # set by infra.nag.acknowledge_findings when nag is on
        self.template_options.description = (
            "HealthImaging CopyImageSet orchestrator: SQS/EventBridge triggers -> Step Functions -> completion events"
        )

        self.key = self._encryption_key()
        self.state_table = dynamodb.Table(
            self,
            "StateTable",
            partition_key=dynamodb.Attribute(name=STATE_TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            time_to_live_attribute=STATE_TABLE_TTL_ATTRIBUTE,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # Pacing slots, per-(job, chunk) submission records and once-only import markers; all expire by TTL.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.bus = copy_event_bus(
            self, name=config.event_bus_name, archive_retention_days=config.archive_retention_days
        )
        self.queues = JobQueues(self)

        factory = LambdaFactory(
            self, source_dir=FUNCTIONS_DIR, log_retention_days=config.log_retention_days, log_key=self.key
        )
        self.factory = factory
        datastores = ",".join(config.datastore_ids)
        events_env = {"EVENT_BUS_NAME": self.bus.event_bus_name, "EVENT_SOURCE": config.event_source}

        prepare = factory.function(
            "Prepare",
            handler="hicopy.handlers.prepare.handler",
            description="Resolves versions, checks the image sets and splits the copy into chunks",
            environment={"DATASTORE_IDS": datastores, "MAX_FRAMES_PER_COPY": str(config.max_frames_per_copy)},
            timeout=Duration.seconds(120),
            memory_size=1024,
        )
        # Pace reserves slots; Submit and DeleteSource take the account's turn right before calling.
        pacing_env = {
            "STATE_TABLE_NAME": self.state_table.table_name,
            "COPY_RATE_PER_SECOND": str(config.copy_rate_per_second),
            "COPY_BURST": str(config.copy_burst),
        }
        pace = factory.function(
            "Pace",
            handler="hicopy.handlers.pace.handler",
            description="Reserves the next CopyImageSet slot under the account's copy rate",
            environment=pacing_env,
        )
        submit = factory.function(
            "Submit",
            handler="hicopy.handlers.submit.handler",
            description="Calls CopyImageSet for one chunk, idempotent per (job, chunk)",
            environment={**pacing_env, "MAX_FRAMES_PER_COPY": str(config.max_frames_per_copy)},
            timeout=Duration.seconds(60),
        )
        await_copy = factory.function(
            "AwaitCopy",
            handler="hicopy.handlers.await_copy.handler",
            description="Reads the destination version's state; raises CopyStillInProgress while copying",
        )
        publish = factory.function(
            "Publish",
            handler="hicopy.handlers.publish.handler",
            description="Publishes the one terminal event of a job on the custom bus",
            environment={**events_env, "STATE_TABLE_NAME": self.state_table.table_name},
        )

        ids = config.datastore_ids
        allow_medical_imaging(prepare, self, datastore_ids=ids, actions=PREPARE_ACTIONS)
        allow_medical_imaging(submit, self, datastore_ids=ids, actions=SUBMIT_ACTIONS)
        allow_medical_imaging(await_copy, self, datastore_ids=ids, actions=AWAIT_COPY_ACTIONS)
        self.state_table.grant(pace, "dynamodb:GetItem", "dynamodb:UpdateItem")
        # DeleteItem: Submit abandons its own SUBMITTING record when the call provably never reached the service.
        self.state_table.grant(
            submit, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )
        self.bus.grant_put_events_to(publish)
        # The "terminal event published" marker: a retried or failure-path Publish never sends a second event.
        self.state_table.grant(publish, "dynamodb:GetItem", "dynamodb:PutItem")

        delete_source: lambda_.Function | None = None
        if config.delete_after_consolidate:
            delete_source = factory.function(
                "DeleteSource",
                handler="hicopy.handlers.delete_source.handler",
                description="Deletes a post-import source image set after all of it was copied (delete-after)",
                environment=pacing_env,
            )
            self.state_table.grant(delete_source, "dynamodb:GetItem", "dynamodb:UpdateItem")  # its turn to call
            allow_medical_imaging(delete_source, self, datastore_ids=ids, actions=DELETE_SOURCE_ACTIONS)

        self.workflow = CopyWorkflow(
            self,
            "CopyWorkflow",
            functions=WorkflowFunctions(
                prepare=prepare,
                pace=pace,
                submit=submit,
                await_copy=await_copy,
                publish=publish,
                delete_source=delete_source,
            ),
            polling=config.polling,
            execution_timeout=Duration.hours(config.execution_timeout_hours),
            log_execution_data=config.log_execution_data,
            log_retention_days=config.log_retention_days,
            log_key=self.key,
        )
        self.state_machine = self.workflow.state_machine

        consumer = factory.function(
            "JobConsumer",
            handler="hicopy.handlers.consumer.handler",
            description="Validates queued copy jobs and starts one execution per job",
            environment={
                "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "REJECTED_QUEUE_URL": self.queues.job_dlq.queue_url,
                "DATASTORE_IDS": datastores,
                **events_env,
            },
            timeout=Duration.seconds(CONSUMER_TIMEOUT_SECONDS),
        )
        self.state_machine.grant_start_execution(consumer)
        self.bus.grant_put_events_to(consumer)
        self.queues.job_dlq.grant(consumer, "sqs:SendMessage")  # the URL is in the environment
        consume_job_queue(consumer, queue=self.queues.job_queue, max_concurrency=config.consumer_max_concurrency)

        planner = factory.function(
            "ImportPlanner",
            handler="hicopy.handlers.planner.handler",
            description="Plans post-import copy jobs from HealthImaging import results",
            environment={
                "JOB_QUEUE_URL": self.queues.job_queue.queue_url,
                "STATE_TABLE_NAME": self.state_table.table_name,
                "DATASTORE_IDS": datastores,
                "POST_IMPORT_POLICY": config.post_import_policy,
                "CONSOLIDATE_FORCE": str(config.consolidate_force).lower(),
                "DELETE_AFTER_CONSOLIDATE": str(config.delete_after_consolidate).lower(),
                **events_env,
            },
            timeout=Duration.seconds(300),
            memory_size=512,
            # Invoked asynchronously by EventBridge: retry a failed planning twice (e.g. the manifest is not
            # written yet), then keep the event in the import rule's DLQ.
            async_retry_attempts=2,
            dead_letter_queue=self.queues.import_rule_dlq,
        )
        allow_medical_imaging(planner, self, datastore_ids=ids, actions=PLANNER_ACTIONS)
        allow_import_output_read(
            planner, buckets=config.import_output_buckets, kms_key_arns=config.import_output_kms_key_arns
        )
        self.queues.job_queue.grant(planner, "sqs:SendMessage")
        # Once-only markers (an import job is planned once, even when its event is delivered twice).
        self.state_table.grant(planner, "dynamodb:GetItem", "dynamodb:PutItem")
        self.bus.grant_put_events_to(planner)

        self.copy_requested_rule = copy_requested_rule(self, bus=self.bus, queues=self.queues)
        self.import_events_rule = import_events_rule(self, datastore_ids=ids, planner=planner, queues=self.queues)

        self.functions: dict[str, lambda_.Function] = dict(factory.functions)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            key=self.key,
            alarm_email=config.alarm_email,
            state_machine=self.state_machine,
            job_queue=self.queues.job_queue,
            dead_letter_queues=self.queues.dead_letter_queues,
            functions=self.functions,
        )

        CfnOutput(self, "JobQueueUrl", value=self.queues.job_queue.queue_url, description="Send copy jobs here")
        CfnOutput(
            self,
            "JobDeadLetterQueueUrl",
            value=self.queues.job_dlq.queue_url,
            description="Rejected and undeliverable jobs",
        )
        CfnOutput(
            self, "EventBusName", value=self.bus.event_bus_name, description="Copy Requested in, completion events out"
        )
        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn, description="Copy workflow")

    def _encryption_key(self) -> kms.Key:
        """One customer managed key for the log groups and the alarm topic (rotation on, kept after destroy)."""
        key = kms.Key(
            self,
            "EncryptionKey",
            description="HealthImaging copy orchestrator: CloudWatch Logs and the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToEncryptedTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        return key
