"""Least privilege, checked against behaviour: the AWS operations every handler performs while driven through its
success and failure scenarios (``scenarios.py``) versus what its role in the synthesized template allows.

(a) Every recorded operation ``<service>:<Operation>`` is allowed to the function whose ``Handler`` ran it, on a
    resource pattern that matches what the call touched: the data store / image set ARN for HealthImaging, the
    bucket/key for S3, and for queues, tables, buses and the state machine the template resource that the
    function's environment variable names (so the wiring is checked too).
(b) Every granted action other than logs/xray/kms is used by some scenario, unless ``USED_OUTSIDE_THE_CODE`` says
    who uses it and why.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pytest

from tests.infra.helpers import render
from tests.security.scenarios import ScenarioRun
from tests.support.calls import Call

IAM_PREFIX = {
    "medical-imaging": "medical-imaging",
    "events": "events",
    "sqs": "sqs",
    "stepfunctions": "states",
    "dynamodb": "dynamodb",
    "s3": "s3",
}
ACTION_OF_OPERATION = {  # where the IAM action is not the API operation's name
    "s3:HeadObject": "s3:GetObject",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
NOT_CHECKED_FOR_USE = ("logs:", "xray:", "kms:")  # platform plumbing (log delivery, tracing, decryption via S3)

# Granted actions the Lambda code does not call itself, and who does. An action here that the role does not grant
# fails the test (the list must not go stale).
USED_OUTSIDE_THE_CODE: dict[str, dict[str, str]] = {
    "hicopy.handlers.consumer.handler": {
        # The SQS event source mapping polls the job queue with the function's execution role.
        "sqs:ReceiveMessage": "event source mapping (polls the job queue)",
        "sqs:DeleteMessage": "event source mapping (deletes the processed messages)",
        "sqs:GetQueueAttributes": "event source mapping (reads the queue's settings)",
        # Added by CDK's SqsEventSource (queue.grantConsumeMessages); the mapping does not document needing them
        # (AWSLambdaSQSQueueExecutionRole has only the three above). Trim candidates, scoped to the job queue.
        "sqs:ChangeMessageVisibility": "CDK SqsEventSource grant (grantConsumeMessages); our code uses it only when "
        "a rejection's event could not be published (the message comes back later), not in these scenarios",
        "sqs:GetQueueUrl": "CDK SqsEventSource grant (grantConsumeMessages); not needed by our code",
    },
    "hicopy.handlers.planner.handler": {
        # Without ListBucket, S3 answers a missing object with 403 AccessDenied instead of 404 NoSuchKey, and
        # S3Reader would turn "the manifest is not written yet" into a transient error instead of ManifestNotReady.
        "s3:ListBucket": "S3 reports missing objects as NoSuchKey only to callers allowed to list the bucket",
    },
    "hicopy.handlers.execution_ended.handler": {
        "sqs:SendMessage": "the Lambda service (its asynchronous-invocation DLQ, ExecutionEndedDeadLetterQueue)",
    },
    "hicopy.handlers.receipt.handler": {
        "sqs:SendMessage": "the Lambda service (its asynchronous-invocation DLQ, DeliveryReceiptDeadLetterQueue)",
    },
}
# Lambda's asynchronous-invocation DLQ (the import rule's DLQ) is written by the Lambda service with the
# planner's role: sqs:SendMessage on that queue is used outside the code; the action itself is used by the code.

KNOWN_MISSING: dict[str, str] = {}
KNOWN_UNUSED: dict[str, str] = {}
HANDLERS = [
    "hicopy.handlers.consumer.handler",
    "hicopy.handlers.prepare.handler",
    "hicopy.handlers.pace.handler",
    "hicopy.handlers.submit.handler",
    "hicopy.handlers.await_copy.handler",
    "hicopy.handlers.delete_source.handler",
    "hicopy.handlers.publish.handler",
    "hicopy.handlers.planner.handler",
    "hicopy.handlers.execution_ended.handler",
    "hicopy.handlers.copy_waker.handler",
    "hicopy.handlers.receipt.handler",
]


def _cases(known: dict[str, str]) -> list[Any]:
    return [
        pytest.param(
            h, id=h.split(".")[2], marks=[pytest.mark.xfail(strict=True, reason=known[h])] if h in known else []
        )
        for h in HANDLERS
    ]


# --- the template -------------------------------------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_of(template: dict[str, Any], handler: str) -> dict[str, Any]:
    found = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == handler
    ]
    assert len(found) == 1, f"{handler}: {len(found)} functions"
    function: dict[str, Any] = found[0]
    return function


def statements_of(template: dict[str, Any], handler: str) -> list[dict[str, Any]]:
    """Allow statements of the function's role: inline policies, AWS::IAM::Policy and managed policies."""
    role_ref = function_of(template, handler)["Properties"]["Role"]
    assert set(role_ref) == {"Fn::GetAtt"}, role_ref
    role_id = role_ref["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    statements = [st for p in role.get("Policies", []) for st in p["PolicyDocument"]["Statement"]]
    for res in template["Resources"].values():
        policy_types = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        if res["Type"] in policy_types and {"Ref": role_id} in res["Properties"].get("Roles", []):
            statements += res["Properties"]["PolicyDocument"]["Statement"]
    assert not role.get("ManagedPolicyArns"), f"{handler}: AWS managed policies cannot be checked here"
    assert all(st["Effect"] == "Allow" for st in statements), "Deny statements: extend this check"
    return [render(st) for st in statements]


def granted(statements: list[dict[str, Any]]) -> set[str]:
    return {action for st in statements for action in as_list(st["Action"])}


def _pattern(resource: str) -> re.Pattern[str]:
    """An IAM resource pattern (``*`` and ``?`` wildcards) as a regex."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource))


def allows(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    return any(
        any(_pattern(a).fullmatch(action) for a in as_list(st["Action"]))
        and any(_pattern(r).fullmatch(arn) for r in as_list(st["Resource"]))
        for st in statements
    )


# --- what a call touched ------------------------------------------------------------------------------------------
PARTITION_REGION_ACCOUNT = "arn:${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}:"
ARN_OF_TYPE = {  # how a policy names the resource that a Ref in the environment points at
    "AWS::SQS::Queue": "${{{}.Arn}}",
    "AWS::DynamoDB::Table": "${{{}.Arn}}",
    "AWS::Events::EventBus": "${{{}.Arn}}",
    "AWS::StepFunctions::StateMachine": "${{{}}}",  # Ref is the ARN
}


def action_of(call: Call) -> str:
    action = f"{IAM_PREFIX[call.service]}:{call.operation}"
    return ACTION_OF_OPERATION.get(action, action)


def _wired(template: dict[str, Any], handler: str, run: ScenarioRun, value: str) -> str:
    """The template ARN of the resource the function reached through an environment variable holding ``value``."""
    names = [name for name, v in run.variables.items() if v == value]
    assert names, f"{handler} touched {value!r}, which no environment variable names (built by the code?)"
    environment = function_of(template, handler)["Properties"].get("Environment", {}).get("Variables", {})
    wired = [environment[n] for n in names if n in environment]
    assert wired, f"{handler} used {names} but its function's environment has none of them"
    ref = wired[0]
    if set(ref) == {"Fn::GetAtt"}:
        logical = ref["Fn::GetAtt"][0]
    else:
        assert set(ref) == {"Ref"}, ref
        logical = ref["Ref"]
    resource_type = template["Resources"][logical]["Type"]
    return ARN_OF_TYPE[resource_type].format(logical)


def touched(template: dict[str, Any], run: ScenarioRun, call: Call) -> list[str]:
    """The resource ARN(s) the call acted on, written the way the template writes ARNs."""
    p = call.params
    if call.service == "medical-imaging":
        base = PARTITION_REGION_ACCOUNT.replace("{service}", "medical-imaging") + f"datastore/{p['datastoreId']}"
        image_sets = [p[k] for k in ("imageSetId", "sourceImageSetId") if k in p]
        destination = (p.get("copyImageSetInformation") or {}).get("destinationImageSet") or {}
        image_sets += [destination["imageSetId"]] if "imageSetId" in destination else []
        return [f"{base}/imageset/{i}" for i in image_sets] or [base]
    if call.service == "s3":
        return [f"arn:${{AWS::Partition}}:s3:::{p['Bucket']}/{p['Key']}"]
    if call.service == "sqs":
        return [_wired(template, call.handler, run, p["QueueUrl"])]
    if call.service == "dynamodb":
        return [_wired(template, call.handler, run, p["TableName"])]
    if call.service == "events":
        return [_wired(template, call.handler, run, e["EventBusName"]) for e in p["Entries"]]
    if call.service == "stepfunctions" and "executionArn" in p:  # an execution of the state machine the consumer starts
        machine_arn, _, name = p["executionArn"].replace(":execution:", ":stateMachine:").rpartition(":")
        assert machine_arn == run.variables["STATE_MACHINE_ARN"], p["executionArn"]
        (machine,) = [
            lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::StepFunctions::StateMachine"
        ]
        return [PARTITION_REGION_ACCOUNT.replace("{service}", "states") + f"execution:${{{machine}.Name}}:{name}"]
    if call.service == "stepfunctions" and call.operation == "SendTaskSuccess":
        # A task token belongs to a state machine: the only one in the stack (the waker wakes its tasks).
        (machine,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::StepFunctions::StateMachine"]
        return [ARN_OF_TYPE["AWS::StepFunctions::StateMachine"].format(machine)]
    if call.service == "stepfunctions":
        return [_wired(template, call.handler, run, p["stateMachineArn"])]
    raise AssertionError(f"no resource mapping for {call.service}:{call.operation}")


def used_actions(run: ScenarioRun) -> dict[str, set[str]]:
    used: dict[str, set[str]] = defaultdict(set)
    for call in run.calls:
        used[call.handler].add(action_of(call))
    return used


# --- the checks ---------------------------------------------------------------------------------------------------
def test_every_handler_is_a_function_and_every_function_was_exercised(
    template: dict[str, Any], run: ScenarioRun
) -> None:
    functions = {
        r["Properties"]["Handler"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and str(r["Properties"].get("Handler", "")).startswith("hicopy.")
    }
    assert functions == set(HANDLERS)
    assert {c.handler for c in run.calls} == set(HANDLERS), "a handler made no AWS call in its scenarios"
    assert run.limit_problems == []


def test_scenarios_cover_the_rare_paths(run: ScenarioRun) -> None:
    """The paths some grants exist for: reconciliation (SearchImageSets), abandoning a record (DeleteItem),
    delete-after (DeleteImageSet), the planner's isPrimary look-up (GetImageSet)."""
    used = used_actions(run)
    assert "medical-imaging:SearchImageSets" in used["hicopy.handlers.submit.handler"]
    assert "dynamodb:DeleteItem" in used["hicopy.handlers.submit.handler"]
    assert "medical-imaging:DeleteImageSet" in used["hicopy.handlers.delete_source.handler"]
    assert "medical-imaging:GetImageSet" in used["hicopy.handlers.planner.handler"]


def test_the_resource_check_is_not_vacuous(template: dict[str, Any], run: ScenarioRun) -> None:
    """The same calls on the wrong resources are refused: another data store, another queue, another action."""
    prepare = statements_of(template, "hicopy.handlers.prepare.handler")
    (call, *_) = [c for c in run.calls if c.handler == "hicopy.handlers.prepare.handler"]
    (arn,) = touched(template, run, call)
    assert allows(prepare, action_of(call), arn)
    assert not allows(prepare, action_of(call), arn.replace(call.params["datastoreId"], "f" * 32))
    assert not allows(prepare, "medical-imaging:CopyImageSet", arn)
    assert not allows(prepare, action_of(call), arn.split("/imageset/")[0] + "2/imageset/x")  # a prefix is not it
    consumer = statements_of(template, "hicopy.handlers.consumer.handler")
    queues = {lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    sendable = {q for q in queues if allows(consumer, "sqs:SendMessage", f"${{{q}.Arn}}")}
    # the DLQ (rejected jobs) and the job queue itself (deferred jobs, issue #13); no other queue
    assert sorted(q.rstrip("0123456789ABCDEF") for q in sendable) == ["JobDeadLetterQueue", "JobQueue"]


@pytest.mark.parametrize("handler", _cases(KNOWN_MISSING))
def test_every_call_is_allowed_on_what_it_touched(template: dict[str, Any], run: ScenarioRun, handler: str) -> None:
    statements = statements_of(template, handler)
    denied: set[str] = set()
    for call in run.calls:
        if call.handler != handler:
            continue
        action = action_of(call)
        denied |= {f"{action} on {arn}" for arn in touched(template, run, call) if not allows(statements, action, arn)}
    assert not denied, f"{handler} would be denied:\n" + "\n".join(sorted(denied))


@pytest.mark.parametrize("handler", _cases(KNOWN_UNUSED))
def test_every_grant_is_used(template: dict[str, Any], run: ScenarioRun, handler: str) -> None:
    grants = granted(statements_of(template, handler))
    explained = USED_OUTSIDE_THE_CODE.get(handler, {})
    assert set(explained) <= grants, f"stale USED_OUTSIDE_THE_CODE entries: {set(explained) - grants}"
    unused = {
        action
        for action in grants - used_actions(run)[handler] - set(explained)
        if not action.startswith(NOT_CHECKED_FOR_USE)
    }
    assert not unused, f"{handler} is granted actions no scenario uses: {sorted(unused)}"


def unused_permissions(template: dict[str, Any], run: ScenarioRun) -> dict[str, list[str]]:
    """Per function: every granted action the code never used (including the explained ones and logs/xray/kms)."""
    used = used_actions(run)
    return {h: sorted(granted(statements_of(template, h)) - used[h]) for h in HANDLERS}


def test_unused_permissions_are_reported(template: dict[str, Any], run: ScenarioRun, record_property: Any) -> None:
    """The full list, printed (``pytest -rA``) and in the JUnit XML: what each function may do that its code never
    did (logs/xray/kms and the explained actions included)."""
    report = unused_permissions(template, run)
    for handler, actions in report.items():
        record_property(handler, ", ".join(actions))
        print(f"{handler}: {', '.join(actions) or '-'}")
    assert set(report) == set(HANDLERS)
