"""cdk-nag 3 (AwsSolutions + HIPAA Security packs) and every acknowledged finding, each with its specific reason.

Acknowledgements are scoped to the construct that carries the finding (never the whole app), and the
wildcard-resource ones name the exact resource, so a new finding anywhere still fails the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks
from constructs import IConstruct

if TYPE_CHECKING:
    from infra.stack import CopyOrchestratorStack

AWS_SOLUTIONS = "AwsSolutions::AwsSolutions"
HIPAA = "HIPAA.Security::HIPAA.Security"

# Functions that only Step Functions invokes (synchronously).
TASK_FUNCTIONS = ("Prepare", "Pace", "Submit", "AwaitCopy", "Publish", "DeleteSource")


@dataclass(frozen=True)
class Ack:
    """One acknowledgement: where it applies, the finding id and why it is acceptable."""

    scope: IConstruct
    finding: str
    reason: str

    @property
    def path(self) -> str:
        return self.scope.node.path


def apply_nag(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True), HIPAASecurityChecks(app, verbose=True))


def _logical_id(stack: cdk.Stack, construct: IConstruct) -> str:
    child = construct.node.default_child
    assert child is not None
    return str(stack.resolve(stack.get_logical_id(child)))  # type: ignore[arg-type]


def _function_acks(stack: CopyOrchestratorStack, name: str, fn: lambda_.Function) -> list[Ack]:
    config = stack.orchestrator.config
    role = fn.role
    assert role is not None
    role_scope = role
    acks = [
        Ack(
            role_scope,
            f"{AWS_SOLUTIONS}-IAM5[Resource::*]",
            "Only xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) use Resource '*': "
            "X-Ray has no resource-level permissions for them.",
        ),
        Ack(
            role_scope,
            f"{HIPAA}-IAMNoInlinePolicy",
            f"The role's policy is CDK's per-role DefaultPolicy, attached to the {name} role only and scoped to the "
            "resources it uses; a customer managed policy would add no isolation.",
        ),
        Ack(
            fn,
            f"{HIPAA}-LambdaInsideVPC",
            "The function only calls AWS APIs (HealthImaging, SQS, EventBridge, DynamoDB, S3, Step Functions) over "
            "TLS with IAM auth and reaches no VPC resource; a VPC would add NAT/endpoints without reducing exposure.",
        ),
    ]
    if name in ("Prepare", "Submit", "AwaitCopy", "ImportPlanner", "DeleteSource"):
        for datastore_id in config.datastore_ids:
            imagesets = (
                "arn:<AWS::Partition>:medical-imaging:<AWS::Region>:<AWS::AccountId>:"
                f"datastore/{datastore_id}/imageset/*"
            )
            acks.append(
                Ack(
                    role_scope,
                    f"{AWS_SOLUTIONS}-IAM5[Resource::{imagesets}]",
                    f"Image set ids are only known at run time (jobs name them, copies create them); the wildcard "
                    f"is limited to the image sets of the configured data store {datastore_id}.",
                )
            )
    if name == "ImportPlanner":
        for bucket in config.import_output_buckets:
            acks.append(
                Ack(
                    role_scope,
                    f"{AWS_SOLUTIONS}-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/*]",
                    f"Import job output keys (job-output-manifest.json, SUCCESS/, FAILURE/) are per import job; "
                    f"s3:GetObject is limited to the configured import output bucket {bucket}.",
                )
            )
    if name in TASK_FUNCTIONS:
        acks += [
            Ack(
                fn,
                f"{HIPAA}-LambdaDLQ",
                "Invoked synchronously by the state machine: failures are retried by the task's Retry and then "
                "handled by its Catch (a terminal event is published), so no asynchronous event can be lost.",
            ),
            Ack(
                fn,
                f"{HIPAA}-LambdaConcurrency",
                "Concurrency is bounded upstream: executions are started by the job consumer, whose SQS event "
                "source has a maximum concurrency, and pacing reserves CopyImageSet slots. Reserved concurrency "
                "would subtract from the account pool and can fail deployment in accounts with low limits.",
            ),
        ]
    elif name == "JobConsumer":
        acks += [
            Ack(
                fn,
                f"{HIPAA}-LambdaDLQ",
                "Invoked by an SQS event source mapping (synchronously): failed messages are redriven by the job "
                "queue to JobDeadLetterQueue after 5 receives; a function DLQ only applies to async invocations.",
            ),
            Ack(
                fn,
                f"{HIPAA}-LambdaConcurrency",
                "Bounded by the SQS event source's ScalingConfig.MaximumConcurrency (consumerMaxConcurrency); "
                "reserved concurrency would only subtract from the account pool.",
            ),
        ]
    elif name == "ImportPlanner":
        acks.append(
            Ack(
                fn,
                f"{HIPAA}-LambdaConcurrency",
                "Invoked only by the import events rule, once per HealthImaging import job of the configured data "
                "stores; the jobs it plans are rate-limited downstream. Reserved concurrency would only subtract "
                "from the account pool.",
            )
        )
    return acks


def acknowledgements(stack: CopyOrchestratorStack) -> list[Ack]:
    """Every acknowledged finding of the stack (also listed in the README)."""
    acks: list[Ack] = []
    orchestrator = stack.orchestrator
    for name, fn in orchestrator.functions.items():
        acks += _function_acks(stack, name, fn)

    sm_role_scope = orchestrator.state_machine.role
    acks += [
        Ack(
            sm_role_scope,
            f"{AWS_SOLUTIONS}-IAM5[Resource::*]",
            "Only the CloudWatch Logs vended-log-delivery actions (logs:CreateLogDelivery etc.) and X-Ray tracing "
            "actions use Resource '*'; these APIs have no resource-level permissions.",
        ),
        Ack(
            sm_role_scope,
            f"{HIPAA}-IAMNoInlinePolicy",
            "CDK's per-role DefaultPolicy of the state machine role, scoped to its task functions and logging.",
        ),
    ]
    for name in TASK_FUNCTIONS:
        if name not in orchestrator.functions:
            continue
        logical_id = _logical_id(stack, orchestrator.functions[name])
        acks.append(
            Ack(
                sm_role_scope,
                f"{AWS_SOLUTIONS}-IAM5[Resource::<{logical_id}.Arn>:*]",
                f"lambda:InvokeFunction on the versions/aliases of the {name} task function only (CDK LambdaInvoke).",
            )
        )
    acks += [
        Ack(
            orchestrator.queues.copy_requested_rule_dlq,
            f"{AWS_SOLUTIONS}-SQS3",
            "This queue IS a dead-letter queue: the Copy Requested rule target's DLQ (a DLQ of a DLQ would only "
            "hide failures); its depth is alarmed.",
        ),
        Ack(
            orchestrator.state_table,
            f"{HIPAA}-DynamoDBInBackupPlan",
            "The table holds only pacing slots, per-(job, chunk) submission records and once-only import "
            "markers, all expiring by TTL; point-in-time recovery is on, and a backup plan would keep stale "
            "coordination records, not clinical data.",
        ),
    ]
    return acks


def acknowledge_findings(stack: CopyOrchestratorStack) -> list[Ack]:
    """Acknowledge every accepted finding on its construct; returns the list (the audit trail)."""
    acks = acknowledgements(stack)
    for ack in acks:
        cdk.Validations.of(ack.scope).acknowledge(cdk.Acknowledgment(id=ack.finding, reason=ack.reason))
    return acks
