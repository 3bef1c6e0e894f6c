"""The copy workflow: its task functions (Prepare, Pace, Submit, AwaitCopy, Publish, DeleteSource), what each may
call, the state machine that runs them (``infra.state_machine``), and the copy waker: HealthImaging's copy events
(default bus) end AwaitCopy's callback waits early (``hicopy.domain.waking``)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from hicopy.contract import COPY_RESULT_DETAIL_TYPES
from hicopy.settings import AwaitEnv, EnvValue, PaceEnv, PaceTaskEnv, PrepareEnv, PublishEnv, WakerEnv
from infra.acknowledge import HIPAA, acknowledge
from infra.config import HicopyConfig
from infra.ingress import healthimaging_events
from infra.lambda_factory import LambdaFactory
from infra.permissions import (
    AWAIT_COPY_ACTIONS,
    DELETE_SOURCE_ACTIONS,
    PREPARE_ACTIONS,
    SUBMIT_ACTIONS,
    allow_medical_imaging,
)
from infra.state_machine import CopySteps, WorkflowFunctions, await_copy_max_attempts, copy_state_machine

# A copy event is only worth delivering while a wait can still be cut short (the longest step is
# polling.maxDelaySeconds, 120 s by default): a late or lost one costs time, never correctness (no DLQ).
WAKER_EVENT_MAX_AGE_SECONDS = 300
WAKER_RULE_RETRY_ATTEMPTS = 2


class CopyWorkflow(Construct):
    """The task functions, ``CopyWorkflow`` (the states and their log group) and the ``CopyStateMachine``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: HicopyConfig,
        factory: LambdaFactory,
        state_table: dynamodb.ITable,
        bus: events.IEventBus,
        log_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.functions = self._task_functions(config, factory, state_table, bus)
        self.steps = CopySteps(
            self,
            "CopyWorkflow",
            functions=self.functions,
            polling=config.polling,
            log_retention_days=config.log_retention_days,
            log_key=log_key,
        )
        self.state_machine = copy_state_machine(
            self,
            "CopyStateMachine",
            steps=self.steps,
            execution_timeout=Duration.hours(config.execution_timeout_hours),
            log_execution_data=config.log_execution_data,
        )
        # SendTaskSuccess on this state machine's tasks only. Its own policy, not the role's default one: the
        # function depends on its role's default policy, and the state machine on the function (a cycle).
        waker_role = self.functions.copy_waker.role
        assert waker_role is not None  # the factory always gives a function its own role
        task_response = iam.Policy(
            self,
            "CopyWakerTaskResponse",
            statements=[
                iam.PolicyStatement(
                    actions=["states:SendTaskSuccess"], resources=[self.state_machine.state_machine_arn]
                )
            ],
        )
        task_response.attach_to_role(waker_role)
        acknowledge(
            task_response,
            f"{HIPAA}-IAMNoInlinePolicy",
            "One statement, states:SendTaskSuccess on this state machine only, kept apart from the role's default "
            "policy because the state machine itself depends on the function (CloudFormation dependency cycle).",
        )
        # No event_bus: the default bus, where HealthImaging emits its events.
        self.copy_events_rule = events.Rule(
            self,
            "CopyEventsRule",
            description="HealthImaging Image Set Copied/Copy Failed of the configured data stores -> copy waker",
            event_pattern=healthimaging_events(list(COPY_RESULT_DETAIL_TYPES), list(config.datastore_ids)),
            targets=[
                targets.LambdaFunction(
                    self.functions.copy_waker,
                    retry_attempts=WAKER_RULE_RETRY_ATTEMPTS,
                    max_event_age=Duration.seconds(WAKER_EVENT_MAX_AGE_SECONDS),
                )
            ],
        )

    def _task_functions(
        self, config: HicopyConfig, factory: LambdaFactory, table: dynamodb.ITable, bus: events.IEventBus
    ) -> WorkflowFunctions:
        ids = config.datastore_ids
        prepare = factory.function(
            self,
            "Prepare",
            handler="hicopy.handlers.prepare.handler",
            description="Resolves versions, checks the image sets and splits the copy into chunks",
            settings=PrepareEnv,
            environment={"DATASTORE_IDS": ids, "MAX_FRAMES_PER_COPY": config.max_frames_per_copy},
            timeout=Duration.seconds(120),
            memory_size=1024,
        )
        # Pace reserves slots; Submit and DeleteSource take the account's turn right before calling.
        pacing_env: dict[str, EnvValue] = {
            "STATE_TABLE_NAME": table.table_name,
            "COPY_RATE_PER_SECOND": config.copy_rate_per_second,
            "COPY_BURST": config.copy_burst,
        }
        pace = factory.function(
            self,
            "Pace",
            handler="hicopy.handlers.pace.handler",
            description="Reserves the next CopyImageSet slot under the account's copy rate",
            settings=PaceTaskEnv,
            environment={**pacing_env, "EXECUTION_TIMEOUT_SECONDS": config.execution_timeout_hours * 3600},
        )
        submit = factory.function(
            self,
            "Submit",
            handler="hicopy.handlers.submit.handler",
            description="Calls CopyImageSet for one chunk, idempotent per (job, chunk)",
            settings=PaceEnv,
            environment=pacing_env,
            timeout=Duration.seconds(60),
            # Submit reads the source's metadata on every attempt: for a 5,000-instance study (27 MB of JSON) it
            # needs about 130 MB (tests/infra/test_infra_memory.py keeps a 2x margin).
            memory_size=512,
        )
        await_copy = factory.function(
            self,
            "AwaitCopy",
            handler="hicopy.handlers.await_copy.handler",
            description="Reads the destination version's state; while copying, the next wait (backoff or copy events)",
            settings=AwaitEnv,
            environment={
                "POLL_FIRST_INTERVAL_SECONDS": config.polling.first_interval_seconds,
                "POLL_BACKOFF_RATE": config.polling.backoff_rate,
                "POLL_MAX_DELAY_SECONDS": config.polling.max_delay_seconds,
                "POLL_MAX_ATTEMPTS": await_copy_max_attempts(config.polling),
                "EVENT_WAIT_SECONDS": config.polling.event_wait_seconds,
                "EVENTS_WINDOW_SECONDS": config.polling.events_window_seconds,
                "STATE_TABLE_NAME": table.table_name,
            },
        )
        copy_waker = factory.function(
            self,
            "CopyWaker",
            handler="hicopy.handlers.copy_waker.handler",
            description="Parks AwaitCopy's callback waits; HealthImaging's copy events wake them",
            settings=WakerEnv,
            environment={"STATE_TABLE_NAME": table.table_name, "DATASTORE_IDS": ids},
        )
        publish = factory.function(
            self,
            "Publish",
            handler="hicopy.handlers.publish.handler",
            description="Publishes the one terminal event of a job on the custom bus",
            settings=PublishEnv,
            environment={
                "EVENT_BUS_NAME": bus.event_bus_name,
                "EVENT_SOURCE": config.event_source,
                "STATE_TABLE_NAME": table.table_name,
                "RECEIPT_WINDOW_SECONDS": config.receipt_window_seconds,
            },
        )

        keys = config.datastore_kms_key_arns
        allow_medical_imaging(prepare, self, datastore_ids=ids, actions=PREPARE_ACTIONS, kms_key_arns=keys)
        allow_medical_imaging(submit, self, datastore_ids=ids, actions=SUBMIT_ACTIONS, kms_key_arns=keys)
        allow_medical_imaging(await_copy, self, datastore_ids=ids, actions=AWAIT_COPY_ACTIONS, kms_key_arns=keys)
        table.grant(pace, "dynamodb:GetItem", "dynamodb:UpdateItem")
        # DeleteItem: Submit abandons its own SUBMITTING record when the call provably never reached the service.
        table.grant(submit, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
        bus.grant_put_events_to(publish)
        # The "terminal event published" marker: a retried or failure-path Publish never sends a second event.
        table.grant(publish, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        # The wake records: a waiter's token and a copy event's mark meet in one item (one atomic update each).
        table.grant(copy_waker, "dynamodb:UpdateItem")
        # When the data store's copy events were last heard (events#<datastoreId>): how long the next wait may be.
        table.grant(await_copy, "dynamodb:GetItem")

        delete_source: lambda_.Function | None = None
        if config.delete_after_consolidate:
            delete_source = factory.function(
                self,
                "DeleteSource",
                handler="hicopy.handlers.delete_source.handler",
                description="Deletes a post-import source image set after all of it was copied (delete-after)",
                settings=PaceEnv,
                environment=pacing_env,
                memory_size=1024,  # it parses the source's and the destination's metadata
            )
            # GetItem: its turn to call, and the import planner's record of the job (plan#<jobId>).
            table.grant(delete_source, "dynamodb:GetItem", "dynamodb:UpdateItem")
            allow_medical_imaging(
                delete_source, self, datastore_ids=ids, actions=DELETE_SOURCE_ACTIONS, kms_key_arns=keys
            )

        for fn in (prepare, pace, submit, await_copy, publish, delete_source):
            if fn is not None:
                _acknowledge_task_function(fn)
        acknowledge(
            copy_waker,
            f"{HIPAA}-LambdaDLQ",
            "Its copy events are hints: a failed or lost one only means the waiting execution checks the status at "
            "the end of its backoff step, as without events; a dead-letter copy would serve no one.",
        )
        acknowledge(
            copy_waker,
            f"{HIPAA}-LambdaConcurrency",
            "Invoked once per waiting step of an execution and once per HealthImaging copy event of the configured "
            "data stores, both bounded by the paced copies. Reserved concurrency would subtract from the account "
            "pool.",
        )
        return WorkflowFunctions(
            prepare=prepare,
            pace=pace,
            submit=submit,
            await_copy=await_copy,
            publish=publish,
            copy_waker=copy_waker,
            delete_source=delete_source,
        )


def _acknowledge_task_function(fn: lambda_.Function) -> None:
    """What a function that only the state machine invokes (synchronously) needs no DLQ or reserved concurrency for."""
    acknowledge(
        fn,
        f"{HIPAA}-LambdaDLQ",
        "Invoked synchronously by the state machine: failures are retried by the task's Retry and then "
        "handled by its Catch (a terminal event is published), so no asynchronous event can be lost.",
    )
    acknowledge(
        fn,
        f"{HIPAA}-LambdaConcurrency",
        "Concurrency is bounded upstream: executions are started by the job consumer, whose SQS event "
        "source has a maximum concurrency, and pacing reserves CopyImageSet slots. Reserved concurrency "
        "would subtract from the account pool and can fail deployment in accounts with low limits.",
    )
