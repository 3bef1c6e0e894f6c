"""The safety net: an execution of the copy state machine that ends FAILED, TIMED_OUT or ABORTED without its terminal
event gets one, from the ``ExecutionEnded`` function, driven by Step Functions' own status change events on the
default bus and de-duplicated with the ``outcome#<jobId>`` marker (``hicopy.domain.outcome``)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from hicopy.contract import ENDED_WITHOUT_SUCCESS, EXECUTION_STATUS_CHANGE, STATES_SOURCE
from hicopy.settings import PublishEnv
from infra.acknowledge import AWS_SOLUTIONS, HIPAA, acknowledge, logical_id
from infra.config import HicopyConfig
from infra.ingress import RULE_MAX_EVENT_AGE_HOURS, RULE_RETRY_ATTEMPTS, JobQueues
from infra.lambda_factory import LambdaFactory

# Invoked asynchronously by EventBridge: a failed attempt (the bus still unreachable) is retried twice by Lambda,
# then the status change event is kept in ExecutionEndedDeadLetterQueue (alarmed).
EXECUTION_ENDED_ASYNC_RETRIES = 2
EXECUTION_ENDED_TIMEOUT_SECONDS = 60


class SafetyNet(Construct):
    """The ``ExecutionEnded`` function and the ``ExecutionEndedRule`` (default bus) that invokes it."""

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
        state_machine: sfn.StateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = factory.function(
            self,
            "ExecutionEnded",
            handler="hicopy.handlers.execution_ended.handler",
            description="Publishes the terminal event of an execution that ended without one (failed, timed out, "
            "stopped)",
            settings=PublishEnv,
            environment={
                "EVENT_BUS_NAME": bus.event_bus_name,
                "EVENT_SOURCE": config.event_source,
                "STATE_TABLE_NAME": state_table.table_name,
                "RECEIPT_WINDOW_SECONDS": config.receipt_window_seconds,
            },
            timeout=Duration.seconds(EXECUTION_ENDED_TIMEOUT_SECONDS),
            async_retry_attempts=EXECUTION_ENDED_ASYNC_RETRIES,
            dead_letter_queue=queues.execution_ended_dlq,
        )
        acknowledge(
            self.function,
            f"{HIPAA}-LambdaConcurrency",
            "Invoked only by the status change rule, once per execution that ended without success; reserved "
            "concurrency would only subtract from the account pool.",
        )
        # The executions of this state machine only: their description and history (the last task state's input).
        executions = Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        reads = iam.PolicyStatement(
            actions=["states:DescribeExecution", "states:GetExecutionHistory"], resources=[executions]
        )
        self.function.add_to_role_policy(reads)
        assert self.function.role is not None  # the factory gives every function its own role
        acknowledge(
            self.function.role,
            f"{AWS_SOLUTIONS}-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f"<{logical_id(state_machine)}.Name>:*]",
            "states:DescribeExecution/GetExecutionHistory on the executions of the copy state machine only "
            "(execution names are job IDs, not known in advance).",
        )
        bus.grant_put_events_to(self.function)
        # the outcome#<jobId> marker; the receipt#... item (a put whose answer was lost is recorded as pending)
        state_table.grant(self.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")

        # No event_bus: the default bus, where Step Functions puts its own events.
        self.rule = events.Rule(
            self,
            "ExecutionEndedRule",
            description="Copy state machine executions that ended FAILED/TIMED_OUT/ABORTED -> the safety net",
            event_pattern=events.EventPattern(
                source=[STATES_SOURCE],
                detail_type=[EXECUTION_STATUS_CHANGE],
                detail={"stateMachineArn": [state_machine.state_machine_arn], "status": list(ENDED_WITHOUT_SUCCESS)},
            ),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=queues.execution_ended_dlq,
                    retry_attempts=RULE_RETRY_ATTEMPTS,
                    max_event_age=Duration.hours(RULE_MAX_EVENT_AGE_HOURS),
                )
            ],
        )
