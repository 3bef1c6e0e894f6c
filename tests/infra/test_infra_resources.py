"""Queues (SSE, TLS, DLQs, redrive), bus, rules, table, functions, alarms, dashboard and outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hicopy.contract import METRICS_NAMESPACE, SERVICE_NAME
from infra.config import config_from_dict
from infra.import_planning import MANIFEST_WAIT_SECONDS
from tests.infra.helpers import DS1, DS2, TEST_CONFIG, VARIANT_CONFIG, logical_id, render, resources

QUEUES = [
    "JobQueue",
    "JobDeadLetterQueue",
    "CopyRequestedRuleDeadLetterQueue",
    "ImportRuleDeadLetterQueue",
    "ExecutionEndedDeadLetterQueue",
    "DeliveryReceiptDeadLetterQueue",
]
DLQS = QUEUES[1:]
# construct id -> handler module (its environment is tested in test_infra_environment.py)
FUNCTIONS = {
    "JobConsumer": "hicopy.handlers.consumer",
    "Prepare": "hicopy.handlers.prepare",
    "Pace": "hicopy.handlers.pace",
    "Submit": "hicopy.handlers.submit",
    "AwaitCopy": "hicopy.handlers.await_copy",
    "Publish": "hicopy.handlers.publish",
    "ImportPlanner": "hicopy.handlers.planner",
    "ExecutionEnded": "hicopy.handlers.execution_ended",
    "CopyWaker": "hicopy.handlers.copy_waker",
    "DeliveryReceipt": "hicopy.handlers.receipt",
}


def _props(template: dict[str, Any], construct_id: str, resource_type: str) -> dict[str, Any]:
    return template["Resources"][logical_id(template, construct_id, resource_type)]["Properties"]  # type: ignore[no-any-return]


def _ref(template: dict[str, Any], construct_id: str, resource_type: str, attr: str | None = None) -> str:
    lid = logical_id(template, construct_id, resource_type)
    return "${" + (f"{lid}.{attr}" if attr else lid) + "}"


# --- queues --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", QUEUES)
def test_queue_encrypted_and_tls_only(template_json: dict[str, Any], name: str) -> None:
    assert _props(template_json, name, "AWS::SQS::Queue")["SqsManagedSseEnabled"] is True
    queue_ref = _ref(template_json, name, "AWS::SQS::Queue")
    policies = [
        render(p["Properties"])
        for p in resources(template_json, "AWS::SQS::QueuePolicy").values()
        if queue_ref in render(p["Properties"]["Queues"])
    ]
    denies = [st for p in policies for st in p["PolicyDocument"]["Statement"] if st["Effect"] == "Deny"]
    assert any(
        st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        and st["Action"] == "sqs:*"
        and st["Principal"] == {"AWS": "*"}
        for st in denies
    ), policies


def test_job_queue_redrive_and_visibility(template_json: dict[str, Any]) -> None:
    job = _props(template_json, "JobQueue", "AWS::SQS::Queue")
    assert render(job["RedrivePolicy"]) == {
        "deadLetterTargetArn": _ref(template_json, "JobDeadLetterQueue", "AWS::SQS::Queue", "Arn"),
        "maxReceiveCount": 5,
    }
    consumer_timeout = _props(template_json, "JobConsumer", "AWS::Lambda::Function")["Timeout"]
    assert job["VisibilityTimeout"] >= 6 * consumer_timeout


@pytest.mark.parametrize("name", DLQS)
def test_dead_letter_queues_keep_14_days(template_json: dict[str, Any], name: str) -> None:
    props = _props(template_json, name, "AWS::SQS::Queue")
    assert props["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in props


def test_consumer_event_source(template_json: dict[str, Any], variant_json: dict[str, Any]) -> None:
    (mapping,) = resources(template_json, "AWS::Lambda::EventSourceMapping").values()
    props = render(mapping["Properties"])
    assert props["EventSourceArn"] == _ref(template_json, "JobQueue", "AWS::SQS::Queue", "Arn")
    assert props["FunctionName"] == _ref(template_json, "JobConsumer", "AWS::Lambda::Function")
    assert props["BatchSize"] == 10
    assert props["MaximumBatchingWindowInSeconds"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": 2}
    (variant,) = resources(variant_json, "AWS::Lambda::EventSourceMapping").values()
    assert variant["Properties"]["ScalingConfig"] == {"MaximumConcurrency": VARIANT_CONFIG["consumerMaxConcurrency"]}


# --- bus and rules -------------------------------------------------------------------------------------------------
def test_bus_and_archive(template_json: dict[str, Any], variant_json: dict[str, Any]) -> None:
    assert _props(template_json, "CopyEventBus", "AWS::Events::EventBus")["Name"] == "hicopy-events"
    (archive,) = resources(template_json, "AWS::Events::Archive").values()
    assert archive["Properties"]["RetentionDays"] == 30
    assert archive["Properties"]["ArchiveName"] == "hicopy-events-archive"  # <= 48 characters
    assert "EventPattern" not in archive["Properties"]  # every event of the bus
    assert render(archive["Properties"]["SourceArn"]) == _ref(
        template_json, "CopyEventBus", "AWS::Events::EventBus", "Arn"
    )
    assert _props(variant_json, "CopyEventBus", "AWS::Events::EventBus")["Name"] == "other-bus"
    (variant_archive,) = resources(variant_json, "AWS::Events::Archive").values()
    assert variant_archive["Properties"]["RetentionDays"] == VARIANT_CONFIG["archiveRetentionDays"]


def test_copy_requested_rule_delivers_whole_event_to_job_queue(template_json: dict[str, Any]) -> None:
    rule = render(_props(template_json, "CopyRequestedRule", "AWS::Events::Rule"))
    assert rule["EventBusName"] == _ref(template_json, "CopyEventBus", "AWS::Events::EventBus")
    assert rule["EventPattern"] == {"detail-type": ["Copy Requested"]}
    (target,) = rule["Targets"]
    assert target["Arn"] == _ref(template_json, "JobQueue", "AWS::SQS::Queue", "Arn")
    assert not {"Input", "InputPath", "InputTransformer"} & set(target)
    assert target["DeadLetterConfig"] == {
        "Arn": _ref(template_json, "CopyRequestedRuleDeadLetterQueue", "AWS::SQS::Queue", "Arn")
    }
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    # EventBridge may send to the job queue and the DLQ, only for this rule
    rule_arn = _ref(template_json, "CopyRequestedRule", "AWS::Events::Rule", "Arn")
    for queue in ("JobQueue", "CopyRequestedRuleDeadLetterQueue"):
        queue_ref = _ref(template_json, queue, "AWS::SQS::Queue")
        allows = [
            st
            for p in resources(template_json, "AWS::SQS::QueuePolicy").values()
            if queue_ref in render(p["Properties"]["Queues"])
            for st in render(p["Properties"]["PolicyDocument"]["Statement"])
            if st["Effect"] == "Allow"
        ]
        (allow,) = allows
        expected_actions = {"sqs:SendMessage"}
        if queue == "JobQueue":  # CDK's SqsQueue target also grants the two read-only calls
            expected_actions |= {"sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
        assert set(allow["Action"] if isinstance(allow["Action"], list) else [allow["Action"]]) == expected_actions
        assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn}}
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert allow["Resource"] == _ref(template_json, queue, "AWS::SQS::Queue", "Arn")


def test_import_rule_on_default_bus_filtered_to_datastores(template_json: dict[str, Any]) -> None:
    rule = render(_props(template_json, "ImportEventsRule", "AWS::Events::Rule"))
    assert "EventBusName" not in rule  # the default bus: where HealthImaging emits its events
    assert rule["EventPattern"] == {
        "source": ["aws.medical-imaging"],
        "detail-type": ["Import Job Completed", "Import Job Failed"],
        "detail": {"datastoreId": [DS1, DS2]},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == _ref(template_json, "ImportPlanner", "AWS::Lambda::Function", "Arn")
    assert target["DeadLetterConfig"] == {
        "Arn": _ref(template_json, "ImportRuleDeadLetterQueue", "AWS::SQS::Queue", "Arn")
    }
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    permissions = [render(p["Properties"]) for p in resources(template_json, "AWS::Lambda::Permission").values()]
    assert {
        "Action": "lambda:InvokeFunction",
        "FunctionName": _ref(template_json, "ImportPlanner", "AWS::Lambda::Function", "Arn"),
        "Principal": "events.amazonaws.com",
        "SourceArn": _ref(template_json, "ImportEventsRule", "AWS::Events::Rule", "Arn"),
    } in permissions
    assert len(permissions) == 4  # and the safety net's, the copy waker's and the receipt rules (below)


def test_receipt_rule_on_our_bus_matches_our_own_terminal_and_rejection_events(template_json: dict[str, Any]) -> None:
    rule = render(_props(template_json, "DeliveryReceiptRule", "AWS::Events::Rule"))
    assert rule["EventBusName"] == _ref(template_json, "CopyEventBus", "AWS::Events::EventBus")
    assert rule["EventPattern"] == {
        "source": ["hicopy.orchestrator"],
        "detail-type": ["Copy Job Succeeded", "Copy Job Failed", "Copy Job Rejected"],
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == _ref(template_json, "DeliveryReceipt", "AWS::Lambda::Function", "Arn")
    dlq = {"Arn": _ref(template_json, "DeliveryReceiptDeadLetterQueue", "AWS::SQS::Queue", "Arn")}
    assert target["DeadLetterConfig"] == dlq
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_safety_net_rule_on_default_bus_filtered_to_the_state_machine(template_json: dict[str, Any]) -> None:
    rule = render(_props(template_json, "ExecutionEndedRule", "AWS::Events::Rule"))
    assert "EventBusName" not in rule  # the default bus: where Step Functions puts its own events
    assert rule["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {
            "stateMachineArn": [_ref(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine")],
            "status": ["FAILED", "TIMED_OUT", "ABORTED"],
        },
    }
    (target,) = rule["Targets"]
    function = _ref(template_json, "ExecutionEnded", "AWS::Lambda::Function", "Arn")
    assert target["Arn"] == function
    dead_letter = {"Arn": _ref(template_json, "ExecutionEndedDeadLetterQueue", "AWS::SQS::Queue", "Arn")}
    assert target["DeadLetterConfig"] == dead_letter
    permissions = [render(p["Properties"]) for p in resources(template_json, "AWS::Lambda::Permission").values()]
    assert {
        "Action": "lambda:InvokeFunction",
        "FunctionName": function,
        "Principal": "events.amazonaws.com",
        "SourceArn": _ref(template_json, "ExecutionEndedRule", "AWS::Events::Rule", "Arn"),
    } in permissions


def test_copy_events_rule_on_default_bus_filtered_to_datastores(template_json: dict[str, Any]) -> None:
    """HealthImaging's own copy events (both ID spellings carry datastoreId) wake the waiting executions."""
    rule = render(_props(template_json, "CopyEventsRule", "AWS::Events::Rule"))
    assert "EventBusName" not in rule  # the default bus: where HealthImaging emits its events
    assert rule["EventPattern"] == {
        "source": ["aws.medical-imaging"],
        "detail-type": ["Image Set Copied", "Image Set Copy Failed"],
        "detail": {"datastoreId": [DS1, DS2]},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == _ref(template_json, "CopyWaker", "AWS::Lambda::Function", "Arn")
    assert "DeadLetterConfig" not in target  # a hint: a lost one costs time, not correctness
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 2}
    permissions = [render(p["Properties"]) for p in resources(template_json, "AWS::Lambda::Permission").values()]
    assert {
        "Action": "lambda:InvokeFunction",
        "FunctionName": target["Arn"],
        "Principal": "events.amazonaws.com",
        "SourceArn": _ref(template_json, "CopyEventsRule", "AWS::Events::Rule", "Arn"),
    } in permissions


# --- table and functions -------------------------------------------------------------------------------------------
def test_state_table(template_json: dict[str, Any]) -> None:
    props = _props(template_json, "StateTable", "AWS::DynamoDB::Table")
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_contract(template_json: dict[str, Any], name: str) -> None:
    props = render(_props(template_json, name, "AWS::Lambda::Function"))
    assert props["Handler"] == f"{FUNCTIONS[name]}.handler"
    assert props["Runtime"] == "python3.14"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert props["LoggingConfig"]["LogGroup"] == _ref(template_json, f"{name}LogGroup", "AWS::Logs::LogGroup")
    log_group = _props(template_json, f"{name}LogGroup", "AWS::Logs::LogGroup")
    assert log_group["RetentionInDays"] == 365
    assert render(log_group["KmsKeyId"]) == _ref(template_json, "EncryptionKey", "AWS::KMS::Key", "Arn")


def test_function_environment_values(template_json: dict[str, Any]) -> None:
    def env(name: str) -> dict[str, Any]:
        return render(_props(template_json, name, "AWS::Lambda::Function"))["Environment"]["Variables"]  # type: ignore[no-any-return]

    ids = f"{DS1},{DS2}"
    config = config_from_dict(TEST_CONFIG)
    consumer = env("JobConsumer")
    assert consumer["STATE_MACHINE_ARN"] == _ref(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine")
    assert consumer["REJECTED_QUEUE_URL"] == _ref(template_json, "JobDeadLetterQueue", "AWS::SQS::Queue")
    assert consumer["EVENT_BUS_NAME"] == _ref(template_json, "CopyEventBus", "AWS::Events::EventBus")
    assert consumer["EVENT_SOURCE"] == config.event_source
    assert consumer["DATASTORE_IDS"] == ids
    assert env("Prepare") == {
        **env("Prepare"),
        "DATASTORE_IDS": ids,
        "MAX_FRAMES_PER_COPY": str(config.max_frames_per_copy),
    }
    table = _ref(template_json, "StateTable", "AWS::DynamoDB::Table")
    assert env("Pace")["STATE_TABLE_NAME"] == table
    pacing = (str(config.copy_rate_per_second), str(config.copy_burst))
    assert (env("Pace")["COPY_RATE_PER_SECOND"], env("Pace")["COPY_BURST"]) == pacing
    assert {k: v for k, v in env("Pace").items() if k in env("Submit")} == env("Submit")  # the same pacing
    # Pace also refuses slots beyond the execution's deadline: it knows the state machine's timeout.
    assert env("Pace")["EXECUTION_TIMEOUT_SECONDS"] == str(config.execution_timeout_hours * 3600)
    planner = env("ImportPlanner")
    assert planner["JOB_QUEUE_URL"] == _ref(template_json, "JobQueue", "AWS::SQS::Queue")
    assert planner["STATE_TABLE_NAME"] == table
    assert planner["POST_IMPORT_POLICY"] == TEST_CONFIG["postImportPolicy"]
    assert (planner["CONSOLIDATE_FORCE"], planner["DELETE_AFTER_CONSOLIDATE"]) == ("false", "false")
    assert planner["IMPORT_REPORT_DETAILS"] == "false"  # no file names or service messages on the bus by default
    assert planner["MANIFEST_WAIT_SECONDS"] == str(MANIFEST_WAIT_SECONDS)


def test_one_code_asset_and_async_retries(template_json: dict[str, Any]) -> None:
    functions = resources(template_json, "AWS::Lambda::Function")
    assert len(functions) == len(FUNCTIONS)
    assert len({str(f["Properties"]["Code"]) for f in functions.values()}) == 1
    configs = {
        render(c["Properties"]["FunctionName"]): c["Properties"]["MaximumRetryAttempts"]
        for c in resources(template_json, "AWS::Lambda::EventInvokeConfig").values()
    }
    planner = _ref(template_json, "ImportPlanner", "AWS::Lambda::Function")
    assert configs.pop(planner) == 2
    assert configs.pop(_ref(template_json, "ExecutionEnded", "AWS::Lambda::Function")) == 2
    assert configs.pop(_ref(template_json, "DeliveryReceipt", "AWS::Lambda::Function")) == 2
    assert set(configs.values()) == {0}
    dead_letter = _props(template_json, "ImportPlanner", "AWS::Lambda::Function")["DeadLetterConfig"]
    assert render(dead_letter) == {
        "TargetArn": _ref(template_json, "ImportRuleDeadLetterQueue", "AWS::SQS::Queue", "Arn")
    }


def test_plain_resources_only(template_json: dict[str, Any]) -> None:
    types = {res["Type"] for res in template_json["Resources"].values()}
    assert not {t for t in types if t.startswith("Custom::") or t == "AWS::CloudFormation::CustomResource"}
    assert "AWS::Lambda::LayerVersion" not in types
    assert "Fn::ImportValue" not in str(template_json)


# --- monitoring and outputs ----------------------------------------------------------------------------------------
def _alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [render(a["Properties"]) for a in resources(template, "AWS::CloudWatch::Alarm").values()]


def test_alarm_topic_encrypted_tls_and_email(template_json: dict[str, Any], variant_json: dict[str, Any]) -> None:
    (topic_id,) = resources(template_json, "AWS::SNS::Topic")
    topic = render(template_json["Resources"][topic_id]["Properties"])
    assert topic["KmsMasterKeyId"] == _ref(template_json, "EncryptionKey", "AWS::KMS::Key", "Arn")
    (policy,) = resources(template_json, "AWS::SNS::TopicPolicy").values()
    assert any(
        st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
    )
    (subscription,) = resources(template_json, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == TEST_CONFIG["alarmEmail"]
    assert not resources(variant_json, "AWS::SNS::Subscription")


def test_key_rotation_and_service_access(template_json: dict[str, Any]) -> None:
    props = render(_props(template_json, "EncryptionKey", "AWS::KMS::Key"))
    assert props["EnableKeyRotation"] is True
    principals = [st["Principal"] for st in props["KeyPolicy"]["Statement"]]
    assert {"Service": "logs.${AWS::Region}.amazonaws.com"} in principals
    assert {"Service": "cloudwatch.amazonaws.com"} in principals


@pytest.mark.parametrize("name", DLQS)
def test_dlq_depth_alarm(template_json: dict[str, Any], name: str) -> None:
    queue_name = _ref(template_json, name, "AWS::SQS::Queue", "QueueName")
    (alarm,) = [
        a
        for a in _alarms(template_json)
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and a["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
    ]
    assert alarm["Namespace"] == "AWS/SQS"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_state_machine_alarms(template_json: dict[str, Any]) -> None:
    machine = _ref(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine")
    by_metric = {
        a["MetricName"]: a
        for a in _alarms(template_json)
        if a.get("Namespace") == "AWS/States" and a["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine}]
    }
    assert set(by_metric) == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for alarm in by_metric.values():
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_lambda_error_alarms(template_json: dict[str, Any]) -> None:
    alarmed = {
        a["Dimensions"][0]["Value"]
        for a in _alarms(template_json)
        if a.get("Namespace") == "AWS/Lambda" and a["MetricName"] == "Errors" and a["Threshold"] == 1
    }
    assert alarmed == {_ref(template_json, name, "AWS::Lambda::Function") for name in FUNCTIONS}


def test_every_alarm_notifies_the_topic(template_json: dict[str, Any]) -> None:
    (topic_id,) = resources(template_json, "AWS::SNS::Topic")
    alarms = _alarms(template_json)
    assert len(alarms) == len(DLQS) + 2 + 2 + len(FUNCTIONS)  # DLQs, executions, backlog (age, drain), functions
    for alarm in alarms:
        assert alarm["AlarmActions"] == ["${" + topic_id + "}"]
        assert alarm["TreatMissingData"] == "notBreaching"


def test_dashboard(template_json: dict[str, Any]) -> None:
    (dashboard,) = resources(template_json, "AWS::CloudWatch::Dashboard").values()
    body = render(dashboard["Properties"]["DashboardBody"])
    for metric in ("ExecutionsFailed", "ApproximateNumberOfMessagesVisible", "Errors", "Throttles"):
        assert metric in body
    # the project's own metrics, as the handlers emit them (Powertools EMF: namespace and service dimension)
    widgets = json.loads(body)["widgets"]
    own = [m for w in widgets for m in w["properties"].get("metrics", []) if m[0] == METRICS_NAMESPACE]
    assert {m[1] for m in own} == {
        *("JobsSucceeded", "JobsFailed", "JobsRejected", "StatusChecks", "CopyDurationSeconds"),
        "JobAgeSeconds",  # the backlog's age (admission), beside SQS's own ApproximateAgeOfOldestMessage
    }
    assert all(m[2:4] == ["service", SERVICE_NAME] for m in own)
    stats = {opt.get("stat") for m in own for opt in m if isinstance(opt, dict) and m[1] == "CopyDurationSeconds"}
    assert stats == {"p50", "p95"}
    for metric in ("ExecutionThrottled", "ApproximateAgeOfOldestMessage"):
        assert metric in body
    # moto's CloudFormation (the offline runtime) creates no alarms: the dashboard must not reference them
    assert not [a for a in resources(template_json, "AWS::CloudWatch::Alarm") if a in str(dashboard)]


def test_outputs(template_json: dict[str, Any]) -> None:
    outputs = {name: render(out["Value"]) for name, out in template_json["Outputs"].items()}
    assert outputs == {
        "JobQueueUrl": _ref(template_json, "JobQueue", "AWS::SQS::Queue"),
        "JobDeadLetterQueueUrl": _ref(template_json, "JobDeadLetterQueue", "AWS::SQS::Queue"),
        "EventBusName": _ref(template_json, "CopyEventBus", "AWS::Events::EventBus"),
        "StateMachineArn": _ref(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine"),
    }


def test_backlog_retention_alarms_and_drain_time(template_json: dict[str, Any]) -> None:
    """Issue #13: jobs wait in the job queue up to SQS's 14 days; the backlog's age and depth are alarmed, and the
    dashboard shows the time to drain it at the configured rate (0.25/s, slots 3 % wider: 873.8 copies/h)."""
    assert _props(template_json, "JobQueue", "AWS::SQS::Queue")["MessageRetentionPeriod"] == 14 * 24 * 3600
    multi = [a for a in _alarms(template_json) if "Metrics" in a]
    (old,) = [
        a for a in multi if a["Metrics"][0].get("MetricStat", {}).get("Metric", {}).get("MetricName") == "JobAgeSeconds"
    ]
    stat = old["Metrics"][0]["MetricStat"]
    assert (stat["Metric"]["Namespace"], stat["Stat"], old["Threshold"]) == ("HealthImagingCopy", "Maximum", 6 * 3600)
    (deep,) = [a for a in multi if "Expression" in a["Metrics"][0]]
    assert deep["Metrics"][0]["Expression"] == "(visible + delayed + inflight) / 873.786"
    assert deep["Threshold"] == 7 * 24
    (dashboard,) = resources(template_json, "AWS::CloudWatch::Dashboard").values()
    body = render(dashboard["Properties"]["DashboardBody"])
    assert "time to drain" in body and "ApproximateNumberOfMessagesDelayed" in body and "JobAgeSeconds" in body
