"""Least privilege: every function's own role, its exact actions and resources (policies parsed, not counted)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.helpers import (
    BUCKET,
    DS1,
    DS2,
    KMS_KEY_ARN,
    actions,
    function_role,
    logical_id,
    resources,
    resources_for,
    role_statements,
)

PREFIX = "arn:${AWS::Partition}:medical-imaging:${AWS::Region}:${AWS::AccountId}:datastore/"
DATASTORE_RESOURCES = {f"{PREFIX}{DS1}", f"{PREFIX}{DS1}/imageset/*", f"{PREFIX}{DS2}", f"{PREFIX}{DS2}/imageset/*"}
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
DATASTORE_KEY_ACTIONS = {"kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey"}
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
SQS_CONSUME = {
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}

EXPECTED_ACTIONS: dict[str, set[str]] = {
    "Prepare": {
        "medical-imaging:GetImageSet",
        "medical-imaging:GetImageSetMetadata",
    },
    "Pace": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "Submit": {
        "medical-imaging:CopyImageSet",
        "medical-imaging:GetImageSet",
        "medical-imaging:GetImageSetMetadata",
        "medical-imaging:SearchImageSets",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",  # abandons its own SUBMITTING record
    },
    "AwaitCopy": {"medical-imaging:GetImageSet", "dynamodb:GetItem"},  # + when copy events were last heard
    "CopyWaker": {"dynamodb:UpdateItem", "states:SendTaskSuccess"},  # wake records; wakes a waiting task
    # + the "published" marker; UpdateItem: a put whose answer was lost is recorded pending (receipt#...)
    "Publish": {"events:PutEvents", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
    # Our own terminal and rejection events seen on the bus: their receipt#... item, nothing else
    "DeliveryReceipt": {"dynamodb:UpdateItem", "sqs:SendMessage"},  # + its own async-invocation DLQ
    "JobConsumer": {
        "states:StartExecution",
        "states:DescribeExecution",  # a job ID that names an execution: same job (duplicate) or JobIdReused
        "events:PutEvents",
        "sqs:SendMessage",
        "dynamodb:GetItem",  # rejected#<messageId>: one DLQ copy and one event per rejected message
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",  # admission: the start turn (GetItem: the pacing horizon too)
        "sqs:GetQueueAttributes",  # the job queue's depth (drain estimate); also polled by the event source
        *SQS_CONSUME,  # the SQS event source mapping polls with the function's role (ChangeMessageVisibility too)
    },
    # The safety net: the ended execution's description and history, its terminal event and the outcome marker.
    "ExecutionEnded": {
        "states:DescribeExecution",
        "states:GetExecutionHistory",
        "events:PutEvents",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",  # a put whose answer was lost is recorded pending (receipt#...)
        "sqs:SendMessage",  # its own async-invocation DLQ
    },
    "ImportPlanner": {
        "medical-imaging:GetDICOMImportJob",
        "medical-imaging:GetImageSetMetadata",
        "medical-imaging:SearchImageSets",
        "medical-imaging:GetImageSet",
        "s3:GetObject",
        "s3:ListBucket",
        "kms:Decrypt",
        "sqs:SendMessage",
        "events:PutEvents",
        "dynamodb:GetItem",  # once-only marker per import job
        "dynamodb:PutItem",
    },
}


def _statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return role_statements(template, function_role(template, logical_id(template, name, "AWS::Lambda::Function")))


def _ref(template: dict[str, Any], construct_id: str, resource_type: str, attr: str | None = None) -> str:
    lid = logical_id(template, construct_id, resource_type)
    return "${" + (f"{lid}.{attr}" if attr else lid) + "}"


def test_each_function_has_its_own_role_without_managed_policies(template_json: dict[str, Any]) -> None:
    roles = [
        function_role(template_json, logical_id(template_json, name, "AWS::Lambda::Function"))
        for name in EXPECTED_ACTIONS
    ]
    assert len(set(roles)) == len(roles) == len(resources(template_json, "AWS::Lambda::Function"))
    for role in roles:
        props = template_json["Resources"][role]["Properties"]
        assert "ManagedPolicyArns" not in props
        assert props["AssumeRolePolicyDocument"]["Statement"] == [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
        ]
    assert not resources(template_json, "AWS::IAM::ManagedPolicy")


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_exact_actions_per_function(template_json: dict[str, Any], name: str) -> None:
    statements = _statements(template_json, name)
    assert all(st["Effect"] == "Allow" for st in statements)
    assert actions(statements) == EXPECTED_ACTIONS[name] | XRAY | LOGS


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_no_wildcards_except_xray(template_json: dict[str, Any], name: str) -> None:
    for statement in _statements(template_json, name):
        acts = set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        assert not any("*" in action for action in acts), statement
        res = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in res:
            assert acts == XRAY, statement
        assert "NotAction" not in statement
        assert "NotResource" not in statement


@pytest.mark.parametrize("name", ["Prepare", "Submit", "AwaitCopy", "ImportPlanner"])
def test_medical_imaging_only_on_configured_datastores(template_json: dict[str, Any], name: str) -> None:
    statements = _statements(template_json, name)
    for action in actions(statements):
        if action.startswith("medical-imaging:"):
            assert resources_for(statements, action) == DATASTORE_RESOURCES, action


def test_log_writes_only_to_own_log_group(template_json: dict[str, Any]) -> None:
    for name in EXPECTED_ACTIONS:
        statements = _statements(template_json, name)
        for action in LOGS:
            assert resources_for(statements, action) == {
                _ref(template_json, f"{name}LogGroup", "AWS::Logs::LogGroup", "Arn")
            }


def test_resource_scoping(template_json: dict[str, Any]) -> None:
    table = _ref(template_json, "StateTable", "AWS::DynamoDB::Table", "Arn")
    bus = _ref(template_json, "CopyEventBus", "AWS::Events::EventBus", "Arn")
    job_queue = _ref(template_json, "JobQueue", "AWS::SQS::Queue", "Arn")
    job_dlq = _ref(template_json, "JobDeadLetterQueue", "AWS::SQS::Queue", "Arn")
    import_dlq = _ref(template_json, "ImportRuleDeadLetterQueue", "AWS::SQS::Queue", "Arn")
    machine = _ref(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine")

    for name in ("Pace", "Submit", "Publish", "ImportPlanner", "JobConsumer", "ExecutionEnded"):
        statements = _statements(template_json, name)
        for action in actions(statements):
            if action.startswith("dynamodb:"):
                assert resources_for(statements, action) == {table}
    for name in ("Publish", "JobConsumer", "ImportPlanner", "ExecutionEnded"):
        assert resources_for(_statements(template_json, name), "events:PutEvents") == {bus}
    safety_net = _statements(template_json, "ExecutionEnded")
    executions = (
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:"
        + _ref(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine", "Name")
        + ":*"
    )
    for action in ("states:DescribeExecution", "states:GetExecutionHistory"):  # this state machine's executions
        assert resources_for(safety_net, action) == {executions}
    assert resources_for(safety_net, "sqs:SendMessage") == {
        _ref(template_json, "ExecutionEndedDeadLetterQueue", "AWS::SQS::Queue", "Arn")
    }

    consumer = _statements(template_json, "JobConsumer")
    assert resources_for(consumer, "states:StartExecution") == {machine}
    assert resources_for(consumer, "states:DescribeExecution") == {
        f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:${{{machine.strip('${}')}.Name}}:*"
    }
    # rejected jobs are kept in the DLQ; deferred jobs go back to the job queue (admission)
    assert resources_for(consumer, "sqs:SendMessage") == {job_dlq, job_queue}
    assert resources_for(consumer, "sqs:ReceiveMessage") == {job_queue}

    planner = _statements(template_json, "ImportPlanner")
    # the job queue, and the planner's own async-invocation DLQ
    assert resources_for(planner, "sqs:SendMessage") == {job_queue, import_dlq}
    assert resources_for(planner, "s3:GetObject") == {f"arn:${{AWS::Partition}}:s3:::{BUCKET}/*"}
    assert resources_for(planner, "s3:ListBucket") == {f"arn:${{AWS::Partition}}:s3:::{BUCKET}"}
    (kms,) = [st for st in planner if "kms:Decrypt" in st["Action"]]
    assert kms["Resource"] == KMS_KEY_ARN
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.${AWS::Region}.amazonaws.com"}}


def test_delete_source_only_with_delete_after(template_json: dict[str, Any], delete_json: dict[str, Any]) -> None:
    assert "medical-imaging:DeleteImageSet" not in str(template_json)
    statements = _statements(delete_json, "DeleteSource")
    # its turn to call (the state table's pacing item) and the import planner's record of the job
    turn = {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    # the checks before deleting: the source's and the destination's instances, the source's latest version
    checks = {"medical-imaging:GetImageSet", "medical-imaging:GetImageSetMetadata"}
    # + its data store key (DELETE_CONFIG sets datastoreKmsKeyArns; tests/infra/test_infra_kms.py checks those)
    assert (
        actions(statements) - DATASTORE_KEY_ACTIONS == {"medical-imaging:DeleteImageSet"} | checks | turn | XRAY | LOGS
    )
    for action in ("medical-imaging:DeleteImageSet", *checks):
        assert resources_for(statements, action) == DATASTORE_RESOURCES
    table = _ref(delete_json, "StateTable", "AWS::DynamoDB::Table", "Arn")
    for action in turn:
        assert resources_for(statements, action) == {table}
    for name in EXPECTED_ACTIONS:  # nobody else may delete
        assert "medical-imaging:DeleteImageSet" not in actions(_statements(delete_json, name))


def test_planner_without_import_buckets_reads_no_s3(variant_json: dict[str, Any]) -> None:
    acts = actions(_statements(variant_json, "ImportPlanner"))
    assert not {a for a in acts if a.startswith(("s3:", "kms:"))}


def test_state_machine_role(template_json: dict[str, Any]) -> None:
    machine = logical_id(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine")
    role = template_json["Resources"][machine]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    statements = role_statements(template_json, role)
    task_functions = [logical_id(template_json, n, "AWS::Lambda::Function") for n in ("Prepare", "Pace", "Submit")]
    task_functions += [
        logical_id(template_json, n, "AWS::Lambda::Function") for n in ("AwaitCopy", "Publish", "CopyWaker")
    ]
    invokable = {f"${{{fn}.Arn}}" for fn in task_functions} | {f"${{{fn}.Arn}}:*" for fn in task_functions}
    assert resources_for(statements, "lambda:InvokeFunction") == invokable
    # Resource "*" only where the service offers nothing narrower: X-Ray and CloudWatch Logs vended delivery.
    for statement in statements:
        res = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in res:
            assert all(a.startswith(("xray:", "logs:")) for a in statement["Action"]), statement
    assert not any(a.startswith(("medical-imaging:", "s3:", "dynamodb:")) for a in actions(statements))


def test_no_medical_imaging_wildcard_anywhere(template_json: dict[str, Any]) -> None:
    text = str(template_json)
    assert "medical-imaging:*" not in text
    assert ":datastore/*" not in text


def test_copy_waker_wakes_only_this_state_machines_tasks(template_json: dict[str, Any]) -> None:
    statements = _statements(template_json, "CopyWaker")
    assert resources_for(statements, "states:SendTaskSuccess") == {
        _ref(template_json, "CopyStateMachine", "AWS::StepFunctions::StateMachine")
    }
    assert resources_for(statements, "dynamodb:UpdateItem") == {
        _ref(template_json, "StateTable", "AWS::DynamoDB::Table", "Arn")
    }
