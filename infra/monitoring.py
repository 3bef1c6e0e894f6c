"""Alarms (to an encrypted SNS topic, optional e-mail subscription) and one dashboard."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from hicopy.contract import METRICS_NAMESPACE, SERVICE_NAME

PERIOD_MINUTES = 5
# Backlog (issue #13): the oldest job seen by the consumer's admission (its own age metric: a deferred job's copy
# restarts SQS's ApproximateAgeOfOldestMessage) and the queue's depth in hours of work at the configured rate.
BACKLOG_AGE_ALARM_HOURS = 6
BACKLOG_DRAIN_ALARM_DAYS = 7  # half the job queue's 14-day retention: beyond that, jobs start to expire
AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD  # a plain Python enum member


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        alarm_email: str | None,
        state_machine: sfn.StateMachine,
        job_queue: sqs.IQueue,
        copy_rate_per_second: float,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        period = Duration.minutes(PERIOD_MINUTES)
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name="HealthImaging copy orchestrator alarms", master_key=key, enforce_ssl=True
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(
            alarm_id: str,
            metric: cloudwatch.IMetric,
            *,
            description: str,
            threshold: float = 1,
            comparison: cloudwatch.ComparisonOperator = AT_LEAST,
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                alarm_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=comparison,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            created.add_ok_action(action)
            self.alarms[alarm_id] = created

        for name, queue in dead_letter_queues.items():
            alarm(
                f"{name}NotEmpty",
                queue.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum"),
                threshold=0,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                description=f"{name} holds messages: inspect them, fix the cause, then redrive "
                "(aws sqs start-message-move-task).",
            )
        alarm(
            "ExecutionsFailed",
            state_machine.metric_failed(period=period, statistic="Sum"),
            description="A copy execution failed (its failure event was published unless PublishFailed).",
        )
        alarm(
            "ExecutionsTimedOut",
            state_machine.metric_timed_out(period=period, statistic="Sum"),
            description="A copy execution exceeded the state machine timeout (executionTimeoutHours).",
        )
        oldest_job = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name="JobAgeSeconds",
            dimensions_map={"service": SERVICE_NAME},
            statistic="Maximum",
            period=period,
            label="oldest job waiting (s)",
        )
        depth = {
            "visible": job_queue.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum"),
            "delayed": job_queue.metric("ApproximateNumberOfMessagesDelayed", period=period, statistic="Maximum"),
            "inflight": job_queue.metric_approximate_number_of_messages_not_visible(period=period, statistic="Maximum"),
        }
        drain_hours = cloudwatch.MathExpression(
            expression=f"(visible + delayed + inflight) / {copy_rate_per_second / 1.03 * 3600:.3f}",
            using_metrics=depth,
            label="time to drain at the configured rate (h, one copy per job)",
            period=period,
        )
        alarm(
            "JobBacklogOld",
            oldest_job,
            threshold=BACKLOG_AGE_ALARM_HOURS * 3600,
            description=f"A queued copy job has waited {BACKLOG_AGE_ALARM_HOURS} h or more: the backlog grows faster "
            "than the account's CopyImageSet quota drains it (see the dashboard's drain time). Jobs older than 14 "
            "days are rejected (BacklogExpired).",
        )
        alarm(
            "JobBacklogDeep",
            drain_hours,
            threshold=BACKLOG_DRAIN_ALARM_DAYS * 24,
            description=f"The job queue holds {BACKLOG_DRAIN_ALARM_DAYS} days of copies or more at the configured "
            "rate: jobs beyond 14 days of backlog will be rejected (BacklogExpired). Slow the senders down or raise "
            "the CopyImageSet quota (and copyRatePerSecond).",
        )
        for name, fn in functions.items():
            alarm(
                f"{name}Errors",
                fn.metric_errors(period=period, statistic="Sum"),
                description=f"The {name} function raised errors (see its log group).",
            )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(6))
        self._project_metrics(period, state_machine, job_queue, functions)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Copy executions",
                left=[
                    state_machine.metric_started(period=period, statistic="Sum"),
                    state_machine.metric_succeeded(period=period, statistic="Sum"),
                    state_machine.metric_failed(period=period, statistic="Sum"),
                    state_machine.metric_timed_out(period=period, statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Job queue (backlog)",
                left=list(depth.values()),
                right=[oldest_job],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.SingleValueWidget(title="Backlog: time to drain (h)", metrics=[drain_hours], width=12),
            cloudwatch.GraphWidget(title="Backlog: time to drain (h)", left=[drain_hours], width=12),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Dead-letter queues (messages visible)",
                left=[
                    queue.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum", label=name)
                    for name, queue in dead_letter_queues.items()
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Lambda errors and throttles",
                left=[fn.metric_errors(period=period, statistic="Sum", label=name) for name, fn in functions.items()],
                right=[
                    fn.metric_throttles(period=period, statistic="Sum", label=name) for name, fn in functions.items()
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda duration p99 (ms)",
                left=[fn.metric_duration(period=period, statistic="p99", label=name) for name, fn in functions.items()],
                width=12,
            ),
            # No AlarmStatusWidget: it would reference the alarms by ARN, which moto's CloudFormation (the offline
            # runtime) cannot resolve because it does not create AWS::CloudWatch::Alarm.
            cloudwatch.TextWidget(
                markdown=(
                    "### Runbook\n"
                    "* **DLQ not empty**: inspect the messages, fix the cause, then "
                    "`aws sqs start-message-move-task --source-arn <dlq-arn>` (back to their source queue).\n"
                    "* **Executions failed**: each failed job published `Copy Job Failed` with a reason code.\n"
                    "* **Lambda errors**: see the function's log group (JSON logs, `job_id` key)."
                ),
                width=12,
                height=6,
            ),
        )

    def _project_metrics(
        self,
        period: Duration,
        state_machine: sfn.StateMachine,
        job_queue: sqs.IQueue,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        """The first row: the project's own metrics (Powertools EMF, namespace ``HealthImagingCopy``, dimension
        ``service``), throttles and the backlog's age."""

        def own(name: str, statistic: str, label: str | None = None) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": SERVICE_NAME},
                period=period,
                statistic=statistic,
                label=label or name,
            )

        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Jobs: succeeded, failed, rejected",
                left=[own("JobsSucceeded", "Sum"), own("JobsFailed", "Sum"), own("JobsRejected", "Sum")],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Copy duration (s): p50, p95",
                left=[
                    own("CopyDurationSeconds", "p50", "CopyDurationSeconds p50"),
                    own("CopyDurationSeconds", "p95", "CopyDurationSeconds p95"),
                ],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Status checks and throttles",
                left=[own("StatusChecks", "Sum")],
                right=[
                    state_machine.metric_throttled(period=period, statistic="Sum", label="ExecutionThrottled"),
                    cloudwatch.MathExpression(
                        expression=" + ".join(f"FILL(t{i}, 0)" for i in range(len(functions))) or "0",
                        using_metrics={
                            f"t{i}": fn.metric_throttles(period=period, statistic="Sum")
                            for i, fn in enumerate(functions.values())
                        },
                        label="Lambda throttles (all functions)",
                        period=period,
                    ),
                ],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Backlog: age of the oldest job (s)",
                left=[job_queue.metric_approximate_age_of_oldest_message(period=period, statistic="Maximum")],
                width=6,
            ),
        )
