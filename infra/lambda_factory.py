"""The one place that holds every Lambda default of the orchestrator.

Each function gets: its own IAM role (no managed policies; log writes scoped to its own log group), an explicit,
KMS-encrypted log group with retention (no log-retention custom resource), Python on ARM64, JSON logging, active
X-Ray tracing, the Powertools environment, and no asynchronous retries unless a caller opts in.

The environment is built from the settings models of ``hicopy.settings`` (the contract with the handlers): the
Powertools variables (``ObservabilityEnv``) plus exactly the keys of the model the function's handler loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from pydantic import BaseModel

from hicopy.contract import METRICS_NAMESPACE, SERVICE_NAME
from hicopy.settings import EnvValue, ObservabilityEnv
from hicopy.settings import environment as environment_of
from infra.acknowledge import AWS_SOLUTIONS, HIPAA, acknowledge
from infra.bundling import python_code

# Python 3.14: the pinned pydantic-core and wrapt publish cp314 manylinux2014_aarch64 wheels (checked with pip).
PYTHON_VERSION = "3.14"


def runtime() -> lambda_.Runtime:
    return lambda_.Runtime.PYTHON_3_14


def architecture() -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64


LOG_LEVEL = "INFO"

RETENTION_BY_DAYS: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    return RETENTION_BY_DAYS[days]


def encrypted_log_group(
    scope: Construct, construct_id: str, *, retention_days: int, key: kms.IKey, name: str | None = None
) -> logs.LogGroup:
    """A log group kept after ``cdk destroy`` (an audit trail), encrypted with the stack's key."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=retention(retention_days),
        encryption_key=key,
        removal_policy=RemovalPolicy.RETAIN,
    )


class LambdaFactory:
    """Creates the orchestrator's functions from ONE code asset (the ``functions/`` folder) with shared defaults."""

    def __init__(self, *, source_dir: Path, log_retention_days: int, log_key: kms.IKey) -> None:
        self.log_retention_days = log_retention_days
        self.log_key = log_key
        self.code = python_code(source_dir, python_version=PYTHON_VERSION, architecture=architecture())
        self.functions: dict[str, lambda_.Function] = {}

    @staticmethod
    def common_environment() -> dict[str, str]:
        """The Powertools variables of every function, validated by their model (all values are known here)."""
        values = environment_of(
            ObservabilityEnv,
            {
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "LOG_LEVEL": LOG_LEVEL,
                "POWERTOOLS_LOGGER_LOG_EVENT": False,
                "POWERTOOLS_TRACER_CAPTURE_RESPONSE": False,
            },
        )
        ObservabilityEnv.model_validate(values)
        return values

    def function(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        settings: type[BaseModel] | None,
        environment: Mapping[str, EnvValue] | None = None,
        timeout: Duration | None = None,
        memory_size: int = 256,
        async_retry_attempts: int = 0,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> lambda_.Function:
        """A function ``construct_id`` in ``scope``, with ``<id>Role`` and ``<id>LogGroup`` next to it.

        ``settings`` is the model its handler loads (``None``: it loads none) and ``environment`` the value of each
        of its keys; a missing or extra key raises ``hicopy.settings.EnvironmentMismatch``.
        """
        variables = self.common_environment()
        variables |= self._own_environment(construct_id, settings, environment or {})
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the {construct_id} function (least privilege, no managed policies)",
        )
        log_group = encrypted_log_group(
            scope, f"{construct_id}LogGroup", retention_days=self.log_retention_days, key=self.log_key
        )
        log_group.grant_write(role)
        fn = lambda_.Function(
            scope,
            construct_id,
            description=description,
            runtime=runtime(),
            architecture=architecture(),
            code=self.code,
            handler=handler,
            role=role,
            timeout=timeout or Duration.seconds(30),
            memory_size=memory_size,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel[LOG_LEVEL],
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=log_group,
            environment=variables,
            retry_attempts=async_retry_attempts,
            dead_letter_queue=dead_letter_queue,
        )
        acknowledge(
            role,
            f"{AWS_SOLUTIONS}-IAM5[Resource::*]",
            "Only xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) use Resource '*': "
            "X-Ray has no resource-level permissions for them.",
        )
        acknowledge(
            role,
            f"{HIPAA}-IAMNoInlinePolicy",
            f"The role's policy is CDK's per-role DefaultPolicy, attached to the {construct_id} role only and scoped "
            "to the resources it uses; a customer managed policy would add no isolation.",
        )
        acknowledge(
            fn,
            f"{HIPAA}-LambdaInsideVPC",
            "The function only calls AWS APIs (HealthImaging, SQS, EventBridge, DynamoDB, S3, Step Functions) over "
            "TLS with IAM auth and reaches no VPC resource; a VPC would add NAT/endpoints without reducing exposure.",
        )
        self.functions[construct_id] = fn
        return fn

    @staticmethod
    def _own_environment(
        construct_id: str, settings: type[BaseModel] | None, values: Mapping[str, EnvValue]
    ) -> dict[str, str]:
        if settings is None:
            if values:
                raise ValueError(
                    f"{construct_id}: environment {sorted(values)} given, but its handler loads no settings"
                )
            return {}
        return environment_of(settings, values)
