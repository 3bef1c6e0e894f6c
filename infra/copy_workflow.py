"""The copy workflow: its task functions (Prepare, Pace, Submit, AwaitCopy, Publish, DeleteSource), what each may
call, and the state machine that runs them (``infra.state_machine``)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from hicopy.settings import EnvValue, PaceEnv, PaceTaskEnv, PrepareEnv, PublishEnv
from infra.acknowledge import HIPAA, acknowledge
from infra.config import HicopyConfig
from infra.lambda_factory import LambdaFactory
from infra.permissions import (
    AWAIT_COPY_ACTIONS,
    DELETE_SOURCE_ACTIONS,
    PREPARE_ACTIONS,
    SUBMIT_ACTIONS,
    allow_medical_imaging,
)
from infra.state_machine import CopySteps, WorkflowFunctions, copy_state_machine


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
            description="Reads the destination version's state; raises CopyStillInProgress while copying",
            settings=None,
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
        table.grant(publish, "dynamodb:GetItem", "dynamodb:PutItem")

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
        return WorkflowFunctions(
            prepare=prepare,
            pace=pace,
            submit=submit,
            await_copy=await_copy,
            publish=publish,
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
