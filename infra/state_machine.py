"""The copy workflow's state machine: one Standard, JSONPath state machine of Lambda tasks.

Prepare -> Pace -> NeedsPacing? -> (PaceWait ->) Submit -> AwaitCopy -> MoreChunks? -> PublishResult -> Done
                ^__________________________________________________________| (next chunk)
                ^____________________________________________| SlotMissed (Submit missed its turn: a new slot)
AwaitCopy's transient error (after its retries) -> Verify -> StillCopying? -> AwaitCopy | MoreChunks?
Any task error (after its retries) -> PublishFailure -> CopyFailed; a publisher's own error -> PublishFailed.

With ``deleteAfterConsolidate`` a ``CopyOrDelete?`` choice follows the pacing: once every chunk is copied and
the state says ``sourceDeletion.status == PENDING``, the next paced call is ``DeleteSource`` (then PublishResult;
its failure is recorded in ``$.deletionError`` and reported by the success event, the copy itself succeeded).

Retry and Catch error names come from ``hicopy.errors`` (the Lambda code's taxonomy) and the AwaitCopy
MaxAttempts from ``hicopy.domain.backoff``: they are decided there, never retyped here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from hicopy.contract import PUBLISH_FAILURE_STATE, PUBLISH_RESULT_STATE
from hicopy.domain.backoff import (
    PUBLISH_BACKOFF_RATE,
    PUBLISH_FIRST_INTERVAL_SECONDS,
    PUBLISH_MAX_DELAY_SECONDS,
    max_attempts_for,
    publish_max_attempts,
)
from hicopy.errors import (
    LAMBDA_CRASH_ERRORS,
    LAMBDA_SERVICE_ERRORS,
    REPACE_ERRORS,
    STATE_ERRORS,
    TERMINAL_ERRORS,
    TRANSIENT_ERRORS,
)
from infra.acknowledge import AWS_SOLUTIONS, HIPAA, acknowledge, logical_id
from infra.config import PollingConfig
from infra.lambda_factory import encrypted_log_group

# Transient service errors (and Lambda service errors) on every task.
TRANSIENT_INTERVAL_SECONDS = 2
TRANSIENT_BACKOFF_RATE = 2.0
TRANSIENT_MAX_DELAY_SECONDS = 60
TRANSIENT_MAX_ATTEMPTS = 6
# AwaitCopy's transient retrier (a HealthImaging outage while a copy runs): sized so that its *expected* total wait
# is twice the outage it must outlast (under full jitter the total is a sum of uniform draws: it falls short of
# AWAIT_OUTAGE_SECONDS with negligible probability; tests/unit checks it). After it, Verify checks once more.
AWAIT_OUTAGE_SECONDS = 1800
AWAIT_TRANSIENT_INTERVAL_SECONDS = 5
AWAIT_TRANSIENT_BACKOFF_RATE = 2.0
AWAIT_TRANSIENT_MAX_DELAY_SECONDS = 120
AWAIT_TRANSIENT_MAX_ATTEMPTS = max_attempts_for(
    2 * AWAIT_OUTAGE_SECONDS,
    AWAIT_TRANSIENT_INTERVAL_SECONDS,
    AWAIT_TRANSIENT_BACKOFF_RATE,
    AWAIT_TRANSIENT_MAX_DELAY_SECONDS,
)
# Image set state errors (locked by another write, version moved) on Submit.
STATE_INTERVAL_SECONDS = 5
STATE_BACKOFF_RATE = 2.0
STATE_MAX_DELAY_SECONDS = 120
STATE_MAX_ATTEMPTS = 8
# A Lambda that died (timeout, out of memory) on a task whose retry is safe.
CRASH_INTERVAL_SECONDS = 5
CRASH_BACKOFF_RATE = 2.0
CRASH_MAX_ATTEMPTS = 2

ERROR_RESULT_PATH = "$.error"
# A failed source deletion does not fail the copy: the success event reports it (sourceDeletion FAILED).
DELETION_ERROR_RESULT_PATH = "$.deletionError"
# A paced task that missed its turn goes back to Pace, which counts the misses (bounded) and clears this.
MISSED_SLOT_RESULT_PATH = "$.missedSlot"
# Verify's own failure: recorded here, so that PublishFailure reports AwaitCopy's original error in $.error.
VERIFY_ERROR_RESULT_PATH = "$.verifyError"
# PublishFailure keeps the state (and its $.error) intact so that CopyFailed can report the original error.
PUBLISH_FAILURE_RESULT_PATH = "$.publishResult"


@dataclass(frozen=True)
class WorkflowFunctions:
    prepare: lambda_.IFunction
    pace: lambda_.IFunction
    submit: lambda_.IFunction
    await_copy: lambda_.IFunction
    publish: lambda_.IFunction
    # Parks AwaitCopy's callback waits; HealthImaging's copy events wake them (hicopy.domain.waking).
    copy_waker: lambda_.IFunction
    # Only when deleteAfterConsolidate is on: deletes the source image set after its last chunk was copied.
    delete_source: lambda_.IFunction | None = None

    def all(self) -> list[lambda_.IFunction]:
        every = [
            self.prepare,
            self.pace,
            self.submit,
            self.await_copy,
            self.publish,
            self.copy_waker,
            self.delete_source,
        ]
        return [fn for fn in every if fn is not None]


def await_copy_max_attempts(polling: PollingConfig) -> int:
    return max_attempts_for(
        polling.max_wait_seconds, polling.first_interval_seconds, polling.backoff_rate, polling.max_delay_seconds
    )


def task_payload(**extra: bool) -> sfn.TaskInput:
    """The one payload form of every task: the whole execution state plus execution id, start time and retry count
    (and ``extra`` flags: ``verify`` for the Verify state)."""
    return sfn.TaskInput.from_object(
        {
            "state": sfn.JsonPath.object_at("$"),
            "executionArn": sfn.JsonPath.string_at("$$.Execution.Id"),
            "executionStartTime": sfn.JsonPath.string_at("$$.Execution.StartTime"),
            "retryCount": sfn.JsonPath.number_at("$$.State.RetryCount"),
            **extra,
        }
    )


class CopySteps(Construct):
    """The states of the workflow (``start`` is the first) and the log group of its executions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: WorkflowFunctions,
        polling: PollingConfig,
        log_retention_days: int,
        log_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        transient = [*LAMBDA_SERVICE_ERRORS, *TRANSIENT_ERRORS]

        def invoke(
            state_id: str, fn: lambda_.IFunction, *, result_path: str = "$", payload: sfn.TaskInput | None = None
        ) -> tasks.LambdaInvoke:
            task = tasks.LambdaInvoke(
                self,
                state_id,
                lambda_function=fn,
                payload=payload or task_payload(),
                payload_response_only=True,
                result_path=result_path,
                # Only the retriers below: CDK's default service-exception retrier would not use full jitter.
                retry_on_service_exceptions=False,
            )
            return task

        def retry_transient(task: tasks.LambdaInvoke) -> None:
            task.add_retry(
                errors=transient,
                interval=Duration.seconds(TRANSIENT_INTERVAL_SECONDS),
                backoff_rate=TRANSIENT_BACKOFF_RATE,
                max_delay=Duration.seconds(TRANSIENT_MAX_DELAY_SECONDS),
                max_attempts=TRANSIENT_MAX_ATTEMPTS,
                jitter_strategy=sfn.JitterType.FULL,
            )

        prepare = invoke("Prepare", functions.prepare)
        pace = invoke("Pace", functions.pace)
        submit = invoke("Submit", functions.submit)
        await_copy = invoke("AwaitCopy", functions.await_copy)
        # Verify: AwaitCopy's function once more, after its retries ran out on a transient error (an outage).
        verify = invoke("Verify", functions.await_copy, payload=task_payload(verify=True))
        publish_result = invoke(PUBLISH_RESULT_STATE, functions.publish)
        publish_failure = invoke(PUBLISH_FAILURE_STATE, functions.publish, result_path=PUBLISH_FAILURE_RESULT_PATH)

        # AwaitCopy's wait between status checks: a callback wait whose timeout is the backoff step AwaitCopy drew
        # ($.awaiting.waitSeconds; a Retry could not vary a callback's timeout per attempt). HealthImaging's copy
        # event wakes it early (the CopyWaker completes the token); a timeout falls through to the status check.
        wait_for_event = tasks.LambdaInvoke(
            self,
            "WaitForCopyEvent",
            lambda_function=functions.copy_waker,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                {
                    "taskToken": sfn.JsonPath.task_token,
                    "datastoreId": sfn.JsonPath.string_at("$.job.datastoreId"),
                    "imageSetId": sfn.JsonPath.string_at("$.submission.destination.imageSetId"),
                    "versionId": sfn.JsonPath.string_at("$.submission.destination.versionId"),
                }
            ),
            task_timeout=sfn.Timeout.at("$.awaiting.waitSeconds"),
            result_path=sfn.JsonPath.DISCARD,
            retry_on_service_exceptions=False,
        )
        wait_for_event.add_catch(await_copy, errors=["States.Timeout"], result_path=sfn.JsonPath.DISCARD)
        # The waker failed (not the copy): wait the step out without it, as plain polling would.
        poll_wait = sfn.Wait(self, "PollWait", time=sfn.WaitTime.seconds_path("$.awaiting.waitSeconds"))
        wait_for_event.add_catch(poll_wait, errors=["States.ALL"], result_path=sfn.JsonPath.DISCARD)
        poll_wait.next(await_copy)
        wait_for_event.next(await_copy)
        still_copying = sfn.Condition.is_present("$.awaiting")
        # AwaitCopy outlasts a HealthImaging outage (a copy in flight completes meanwhile): its own, longer budget.
        await_copy.add_retry(
            errors=transient,
            interval=Duration.seconds(AWAIT_TRANSIENT_INTERVAL_SECONDS),
            backoff_rate=AWAIT_TRANSIENT_BACKOFF_RATE,
            max_delay=Duration.seconds(AWAIT_TRANSIENT_MAX_DELAY_SECONDS),
            max_attempts=AWAIT_TRANSIENT_MAX_ATTEMPTS,
            jitter_strategy=sfn.JitterType.FULL,
        )
        for task in (prepare, pace, submit):
            retry_transient(task)
        # Publish outlasts an EventBridge (or state table) outage of OUTAGE_TOLERANCE_SECONDS (2 h): its own long,
        # bounded retrier (up to 5 min apart, full jitter), sized in hicopy.domain.backoff. A terminal event is
        # never given up on after a minute.
        for task in (publish_result, publish_failure):
            task.add_retry(
                errors=transient,
                interval=Duration.seconds(PUBLISH_FIRST_INTERVAL_SECONDS),
                backoff_rate=PUBLISH_BACKOFF_RATE,
                max_delay=Duration.seconds(PUBLISH_MAX_DELAY_SECONDS),
                max_attempts=publish_max_attempts(),
                jitter_strategy=sfn.JitterType.FULL,
            )
        # Submit: conflicts (image set locked, version moved) are re-read and retried. Never States.Timeout or
        # States.TaskFailed: a retry after an unknown outcome could start a second copy.
        # Prepare too: an image set locked by another writer (or by a copy in flight) is waited for, not failed.
        for task in (prepare, submit):
            task.add_retry(
                errors=list(STATE_ERRORS),
                interval=Duration.seconds(STATE_INTERVAL_SECONDS),
                backoff_rate=STATE_BACKOFF_RATE,
                max_delay=Duration.seconds(STATE_MAX_DELAY_SECONDS),
                max_attempts=STATE_MAX_ATTEMPTS,
                jitter_strategy=sfn.JitterType.FULL,
            )

        # A Lambda that died: retried where that is safe (see hicopy.errors.LAMBDA_CRASH_ERRORS). A Submit that
        # died after CopyImageSet finds its SUBMITTING record and adopts its copy instead of calling again.
        for task in (prepare, pace, submit, await_copy):
            task.add_retry(
                errors=list(LAMBDA_CRASH_ERRORS),
                interval=Duration.seconds(CRASH_INTERVAL_SECONDS),
                backoff_rate=CRASH_BACKOFF_RATE,
                max_attempts=CRASH_MAX_ATTEMPTS,
                jitter_strategy=sfn.JitterType.FULL,
            )

        copy_failed = sfn.Fail(
            self,
            "CopyFailed",
            error_path=sfn.JsonPath.string_at("$.error.Error"),
            cause_path=sfn.JsonPath.string_at("$.error.Cause"),
        )
        publish_failed = sfn.Fail(
            self,
            "PublishFailed",
            error="PublishFailed",
            cause="The terminal event of this job could not be published; see the execution history.",
        )
        # Submit (and DeleteSource) that missed its turn takes a new slot: before the catch-all.
        submit.add_catch(pace, errors=list(REPACE_ERRORS), result_path=MISSED_SLOT_RESULT_PATH)
        # Before a transient error (or a crash) of AwaitCopy becomes a failure event, Verify reads the destination
        # once more: COPIED -> the success path; still copying -> back to AwaitCopy (bounded); COPY_FAILED (or a
        # terminal answer) -> that error; unreachable still -> the original error.
        await_copy.add_catch(verify, errors=[*transient, *LAMBDA_CRASH_ERRORS], result_path=ERROR_RESULT_PATH)
        verify.add_catch(publish_failure, errors=list(TERMINAL_ERRORS), result_path=ERROR_RESULT_PATH)
        verify.add_catch(publish_failure, errors=["States.ALL"], result_path=VERIFY_ERROR_RESULT_PATH)
        for task in (prepare, pace, submit, await_copy):
            task.add_catch(publish_failure, errors=["States.ALL"], result_path=ERROR_RESULT_PATH)
        # A publisher that fails ends the execution: never publish a second terminal event for the same job.
        for task in (publish_result, publish_failure):
            task.add_catch(publish_failed, errors=["States.ALL"], result_path=ERROR_RESULT_PATH)
        publish_failure.next(copy_failed)

        all_copied = sfn.Condition.boolean_equals("$.done", True)
        after_pacing: sfn.IChainable = submit
        if functions.delete_source is not None:
            # Post-import delete-after: once every chunk is COPIED, AwaitCopy marks sourceDeletion PENDING; the
            # deletion is paced like a copy (Pace reserves a DeleteImageSet slot), then DeleteSource runs.
            delete_pending = sfn.Condition.and_(
                sfn.Condition.is_present("$.sourceDeletion.status"),
                sfn.Condition.string_equals("$.sourceDeletion.status", "PENDING"),
            )
            delete_source = invoke("DeleteSource", functions.delete_source)
            retry_transient(delete_source)
            delete_source.add_catch(pace, errors=list(REPACE_ERRORS), result_path=MISSED_SLOT_RESULT_PATH)
            delete_source.add_catch(publish_result, errors=["States.ALL"], result_path=DELETION_ERROR_RESULT_PATH)
            delete_source.next(publish_result)
            after_pacing = sfn.Choice(self, "CopyOrDelete?").when(delete_pending, delete_source).otherwise(submit)
            all_copied = sfn.Condition.and_(all_copied, sfn.Condition.not_(delete_pending))

        pace_wait = sfn.Wait(self, "PaceWait", time=sfn.WaitTime.seconds_path("$.pace.waitSeconds"))
        needs_pacing = (
            sfn.Choice(self, "NeedsPacing?")
            .when(
                sfn.Condition.and_(
                    sfn.Condition.is_present("$.pace.waitSeconds"),
                    sfn.Condition.number_greater_than("$.pace.waitSeconds", 0),
                ),
                pace_wait.next(after_pacing),
            )
            .otherwise(after_pacing)
        )
        more_chunks = (
            sfn.Choice(self, "MoreChunks?")
            .when(all_copied, publish_result.next(sfn.Succeed(self, "Done")))
            .otherwise(pace)
        )
        prepare.next(pace).next(needs_pacing)
        still = sfn.Choice(self, "StillCopying?").when(still_copying, wait_for_event).otherwise(more_chunks)
        submit.next(await_copy).next(still)
        verify.next(still)

        self.start: sfn.IChainable = prepare
        self.functions = functions
        self.log_group = encrypted_log_group(self, "Logs", retention_days=log_retention_days, key=log_key)


def copy_state_machine(
    scope: Construct, construct_id: str, *, steps: CopySteps, execution_timeout: Duration, log_execution_data: bool
) -> sfn.StateMachine:
    """The state machine of ``steps``: Standard, X-Ray tracing, every event logged (execution data only if asked)."""
    machine = sfn.StateMachine(
        scope,
        construct_id,
        comment="HealthImaging CopyImageSet orchestration: prepare, then per chunk pace/submit/await, publish",
        state_machine_type=sfn.StateMachineType.STANDARD,
        query_language=sfn.QueryLanguage.JSON_PATH,
        definition_body=sfn.DefinitionBody.from_chainable(steps.start),
        timeout=execution_timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=steps.log_group, level=sfn.LogLevel.ALL, include_execution_data=log_execution_data
        ),
    )
    acknowledge(
        machine.role,
        f"{AWS_SOLUTIONS}-IAM5[Resource::*]",
        "Only the CloudWatch Logs vended-log-delivery actions (logs:CreateLogDelivery etc.) and X-Ray tracing "
        "actions use Resource '*'; these APIs have no resource-level permissions.",
    )
    acknowledge(
        machine.role,
        f"{HIPAA}-IAMNoInlinePolicy",
        "CDK's per-role DefaultPolicy of the state machine role, scoped to its task functions and logging.",
    )
    for fn in steps.functions.all():
        acknowledge(
            machine.role,
            f"{AWS_SOLUTIONS}-IAM5[Resource::<{logical_id(fn)}.Arn>:*]",
            f"lambda:InvokeFunction on the versions/aliases of the {fn.node.id} task function only (CDK LambdaInvoke).",
        )
    return machine
