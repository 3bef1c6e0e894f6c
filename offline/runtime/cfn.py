"""Deploying a CDK template into moto's CloudFormation: the gaps of moto 5.2.5 and how each is bridged.

``prepare_template`` returns a template moto can create, plus the resources it had to take out; after
``CreateStack``, ``apply_deferred`` creates the ones that matter through the service APIs (with the template's
intrinsics resolved by moto's own resolver). Every change is listed in ``PreparedTemplate.notes``.

- ``AWS::Events::Archive`` without ``ArchiveName``: moto's generated name is longer than the 48 characters its own
  API allows, the create fails -> an explicit name (the logical id);
- ``AWS::Events::Archive`` ``EventPattern`` as an object (valid CloudFormation): ``TypeError`` -> a JSON string;
- ``Ref`` of an ``AWS::Events::EventBus`` resolves to moto's internal object, rules on the bus fail -> the bus name;
- ``AWS::Lambda::EventInvokeConfig``: not supported (skipped) -> ``PutFunctionEventInvokeConfig`` after the stack;
- ``AWS::CloudWatch::Alarm``: not supported (skipped, and a dashboard's ``GetAtt Alarm.Arn`` then fails the stack)
  -> ``PutMetricAlarm`` after the stack, ``GetAtt .Arn`` replaced by the alarm's ARN;
- ``AWS::SQS::QueuePolicy``, ``AWS::SNS::TopicPolicy``: not supported -> dropped (moto enforces no resource policy);
- ``AWS::Lambda::Function`` ``DeadLetterConfig``: dropped by moto -> the runtime reads it from the template for its
  asynchronous-invocation emulation (``AsyncInvoker``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ARCHIVE_NAME_MAX = 48
DEFERRED_TYPES = ("AWS::Lambda::EventInvokeConfig", "AWS::CloudWatch::Alarm")
DROPPED_TYPES = ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy")


@dataclass
class PreparedTemplate:
    template: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    deferred: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> resource
    dropped: dict[str, str] = field(default_factory=dict)  # logical id -> type


def _walk_replace(node: Any, match: Any, value: Any) -> tuple[Any, int]:
    if node == match:
        return value, 1
    count = 0
    if isinstance(node, dict):
        for key, child in list(node.items()):
            node[key], n = _walk_replace(child, match, value)
            count += n
    elif isinstance(node, list):
        for i, child in enumerate(node):
            node[i], n = _walk_replace(child, match, value)
            count += n
    return node, count


def alarm_name(stack_name: str, logical_id: str, props: Mapping[str, Any]) -> str:
    name = props.get("AlarmName")
    return name if isinstance(name, str) else f"{stack_name}-{logical_id}"


def prepare_template(template: Mapping[str, Any], *, stack_name: str, account: str, region: str) -> PreparedTemplate:
    fixed: dict[str, Any] = json.loads(json.dumps(template))
    out = PreparedTemplate(template=fixed)
    resources: dict[str, Any] = fixed.get("Resources", {})
    for lid, res in list(resources.items()):
        rtype = res.get("Type")
        props = res.setdefault("Properties", {})
        if rtype == "AWS::Events::Archive":
            if "ArchiveName" not in props:
                props["ArchiveName"] = lid[:ARCHIVE_NAME_MAX]
                out.notes.append(f"{lid}: ArchiveName {props['ArchiveName']!r} (moto's generated name is too long)")
            if isinstance(props.get("EventPattern"), dict):
                props["EventPattern"] = json.dumps(props["EventPattern"])
                out.notes.append(f"{lid}: EventPattern passed as a JSON string")
        elif rtype == "AWS::Events::EventBus" and isinstance(props.get("Name"), str):
            _, n = _walk_replace(fixed, {"Ref": lid}, props["Name"])
            if n:
                out.notes.append(f"{lid}: {n} Ref(s) replaced by the bus name {props['Name']!r}")
        elif rtype in DEFERRED_TYPES:
            out.deferred[lid] = resources.pop(lid)
            out.notes.append(f"{lid}: {rtype} created through the API after the stack (moto's CFN skips it)")
            if rtype == "AWS::CloudWatch::Alarm":
                arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm_name(stack_name, lid, props)}"
                _walk_replace(fixed, {"Fn::GetAtt": [lid, "Arn"]}, arn)
                _walk_replace(fixed, {"Fn::GetAtt": f"{lid}.Arn"}, arn)
                _walk_replace(fixed, {"Ref": lid}, alarm_name(stack_name, lid, props))
        elif rtype in DROPPED_TYPES:
            resources.pop(lid)
            out.dropped[lid] = rtype
            out.notes.append(f"{lid}: {rtype} dropped (not supported by moto; no effect locally)")
    for res in resources.values():  # DependsOn on removed resources
        deps = res.get("DependsOn")
        if isinstance(deps, list):
            res["DependsOn"] = [d for d in deps if d in resources]
            if not res["DependsOn"]:
                del res["DependsOn"]
        elif isinstance(deps, str) and deps not in resources:
            del res["DependsOn"]
    return out


def resolve(node: Any, *, stack_name: str, account: str, region: str) -> Any:
    """Resolve intrinsics (Ref, GetAtt, Join, Sub, ...) against the created stack, with moto's own resolver."""
    from moto.cloudformation.models import cloudformation_backends
    from moto.cloudformation.parsing import clean_json

    stack = cloudformation_backends[account][region].get_stack(stack_name)
    return clean_json(json.loads(json.dumps(node)), stack.resource_map)


def apply_deferred(
    prepared: PreparedTemplate, *, clients: Any, stack_name: str, account: str, region: str
) -> list[str]:
    """Create the deferred resources; returns problems (resources that could not be created)."""
    problems: list[str] = []
    for lid, res in prepared.deferred.items():
        try:
            props = resolve(res.get("Properties", {}), stack_name=stack_name, account=account, region=region)
            if res["Type"] == "AWS::Lambda::EventInvokeConfig":
                kwargs = {
                    k: props[k]
                    for k in ("FunctionName", "Qualifier", "MaximumRetryAttempts", "MaximumEventAgeInSeconds")
                    if k in props
                }
                if "DestinationConfig" in props:
                    kwargs["DestinationConfig"] = props["DestinationConfig"]
                clients("lambda").put_function_event_invoke_config(**kwargs)
            elif res["Type"] == "AWS::CloudWatch::Alarm":
                props["AlarmName"] = alarm_name(stack_name, lid, props)
                props.pop("Tags", None)
                clients("cloudwatch").put_metric_alarm(**props)
        except Exception as exc:
            problems.append(f"{lid} ({res['Type']}): {type(exc).__name__}: {exc}")
    return problems
