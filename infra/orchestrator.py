"""``CopyOrchestrator``: the whole HealthImaging copy orchestrator as one construct, for any CDK app.

Construct tree (ids as they appear in construct paths)::

    <id>                      CopyOrchestrator
      EncryptionKey           one customer managed key: the log groups and the alarm topic
      StateTable              pacing slots, submission records, once-only markers (all expire by TTL)
      CopyEventBus            the custom bus (+ CopyEventArchive): Copy Requested in, completion events out
      JobQueue ...            the job queue and the three dead-letter queues (infra.ingress.JobQueues)
      Ingress/                the Copy Requested rule and the JobConsumer (infra.ingress)
      Copy/                   the task functions, their states (CopyWorkflow) and the CopyStateMachine
      ImportPlanning/         the ImportPlanner and its ImportEventsRule (infra.import_planning)
      SafetyNet/              the ExecutionEnded function and its ExecutionEndedRule (infra.safety_net)
      Receipts/               the DeliveryReceipt function and its DeliveryReceiptRule on our bus (infra.receipts)
      Monitoring/             alarms, their topic and the dashboard (infra.monitoring)

The shared resources sit directly under the orchestrator: every capability uses them.
"""

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.acknowledge import HIPAA, acknowledge
from infra.config import HicopyConfig
from infra.copy_workflow import CopyWorkflow
from infra.import_planning import ImportPlanning
from infra.ingress import Ingress, JobQueues, copy_event_bus
from infra.lambda_factory import LambdaFactory
from infra.monitoring import Monitoring
from infra.paths import FUNCTIONS_DIR
from infra.receipts import DeliveryReceipts
from infra.safety_net import SafetyNet

STATE_TABLE_PARTITION_KEY = "pk"
STATE_TABLE_TTL_ATTRIBUTE = "expiresAt"
# The ids of the capability constructs (see the module docstring).
INGRESS_ID = "Ingress"
COPY_ID = "Copy"
IMPORT_PLANNING_ID = "ImportPlanning"
SAFETY_NET_ID = "SafetyNet"
RECEIPTS_ID = "Receipts"
MONITORING_ID = "Monitoring"


class CopyOrchestrator(Construct):
    """The copy orchestrator: triggers, the copy workflow, post-import planning, monitoring.

    ``config`` is the validated configuration, e.g. ``HicopyConfig(datastore_ids=["<32-char id>"])`` (every other
    setting has its default; ``stack_name`` is only used by this project's own app). Environment-agnostic (no
    lookups): the stack that holds it deploys into any account and region.

    For your own resources: ``event_bus`` and ``event_source`` (subscribe to the completion events), ``job_queue``
    (send jobs), ``job_dead_letter_queue``, ``state_machine``, ``functions`` (by construct id) and ``alarm_topic``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: HicopyConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.event_source = config.event_source
        self.key = _encryption_key(self)
        self.state_table = _state_table(self)
        self.event_bus = copy_event_bus(
            self, name=config.event_bus_name, archive_retention_days=config.archive_retention_days
        )
        self.queues = JobQueues(self)
        self.job_queue = self.queues.job_queue
        self.job_dead_letter_queue = self.queues.job_dlq

        factory = LambdaFactory(
            source_dir=FUNCTIONS_DIR, log_retention_days=config.log_retention_days, log_key=self.key
        )
        self.copy = CopyWorkflow(
            self,
            COPY_ID,
            config=config,
            factory=factory,
            state_table=self.state_table,
            bus=self.event_bus,
            log_key=self.key,
        )
        self.state_machine = self.copy.state_machine
        self.ingress = Ingress(
            self,
            INGRESS_ID,
            factory=factory,
            queues=self.queues,
            bus=self.event_bus,
            state_machine=self.state_machine,
            state_table=self.state_table,
            datastore_ids=config.datastore_ids,
            event_source=config.event_source,
            max_concurrency=config.consumer_max_concurrency,
            copy_rate_per_second=config.copy_rate_per_second,
            copy_burst=config.copy_burst,
            receipt_window_seconds=config.receipt_window_seconds,
        )
        self.import_planning = ImportPlanning(
            self,
            IMPORT_PLANNING_ID,
            config=config,
            factory=factory,
            queues=self.queues,
            bus=self.event_bus,
            state_table=self.state_table,
        )
        self.safety_net = SafetyNet(
            self,
            SAFETY_NET_ID,
            config=config,
            factory=factory,
            queues=self.queues,
            bus=self.event_bus,
            state_table=self.state_table,
            state_machine=self.state_machine,
        )
        self.receipts = DeliveryReceipts(
            self,
            RECEIPTS_ID,
            factory=factory,
            queues=self.queues,
            bus=self.event_bus,
            event_source=config.event_source,
            state_table=self.state_table,
        )
        self.functions: dict[str, lambda_.Function] = dict(factory.functions)
        self.monitoring = Monitoring(
            self,
            MONITORING_ID,
            key=self.key,
            alarm_email=config.alarm_email,
            state_machine=self.state_machine,
            job_queue=self.job_queue,
            copy_rate_per_second=config.copy_rate_per_second,
            dead_letter_queues=self.queues.dead_letter_queues,
            functions=self.functions,
        )
        self.alarm_topic = self.monitoring.topic


def _state_table(scope: Construct) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
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
    acknowledge(
        table,
        f"{HIPAA}-DynamoDBInBackupPlan",
        "The table holds only pacing slots, per-(job, chunk) submission records and once-only import "
        "markers, all expiring by TTL; point-in-time recovery is on, and a backup plan would keep stale "
        "coordination records, not clinical data.",
    )
    return table


def _encryption_key(scope: Construct) -> kms.Key:
    """One customer managed key for the log groups and the alarm topic (rotation on, kept after destroy)."""
    key = kms.Key(
        scope,
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
