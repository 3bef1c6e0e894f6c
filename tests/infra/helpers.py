"""Helpers of the infrastructure tests: read a synthesized template the way CloudFormation would."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DS1 = "0123456789abcdef0123456789abcdef"
DS2 = "abcdefghijklmnopqrstuvwxyz012345"
BUCKET = "my-import-output"
KMS_KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

TEST_CONFIG: dict[str, Any] = {
    "datastoreIds": [DS1, DS2],
    "importOutputBuckets": [BUCKET],
    "importOutputKmsKeyArns": [KMS_KEY_ARN],
    "postImportPolicy": "consolidate",
    "alarmEmail": "imaging-ops@example.com",
}
# The superset stack: post-import delete-after adds the DeleteSource function and branch.
# Its data stores are encrypted with a customer-managed key (datastoreKmsKeyArns): cdk-nag checks those grants too.
DATASTORE_KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8899-aabbccddeeff"
DELETE_CONFIG: dict[str, Any] = {
    **TEST_CONFIG,
    "deleteAfterConsolidate": True,
    "datastoreKmsKeyArns": [DATASTORE_KEY_ARN],
}
VARIANT_CONFIG: dict[str, Any] = {
    "datastoreIds": [DS1],
    "polling": {"firstIntervalSeconds": 10, "backoffRate": 1.5, "maxDelaySeconds": 300, "maxWaitSeconds": 7200},
    "logExecutionData": True,
    "consumerMaxConcurrency": 5,
    "archiveRetentionDays": 7,
    "logRetentionDays": 90,
    "executionTimeoutHours": 6,
    "eventBusName": "other-bus",
}
STACK_NAME = "HealthImagingCopyOrchestrator"


@dataclass(frozen=True)
class SynthOutput:
    outdir: Path
    stack: Any
    error: str | None

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{STACK_NAME}.template.json"

    def report(self) -> dict[str, Any]:
        return json.loads((self.outdir / "validation-report.json").read_text())  # type: ignore[no-any-return]


@dataclass(frozen=True)
class BundledSynth:
    """A `python app.py` subprocess run with bundling ON."""

    outdir: Path
    process: subprocess.Popen[str]
    log: Path

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{STACK_NAME}.template.json"


def render(value: Any) -> Any:
    """Intrinsics -> strings: {"Ref": "X"} -> "${X}", GetAtt -> "${X.Attr}", Fn::Join -> the joined string."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return "${" + value["Ref"] + "}"
        if set(value) == {"Fn::GetAtt"}:
            return "${" + ".".join(value["Fn::GetAtt"]) + "}"
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(render(part)) for part in parts)
        return {key: render(item) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item) for item in value]
    return value


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: res for lid, res in template["Resources"].items() if res["Type"] == resource_type}


def logical_id(template: dict[str, Any], construct_id: str, resource_type: str) -> str:
    """The logical id (``<id><8 hex digits>``) of the orchestrator's construct ``construct_id``: the stack keeps the
    ids of the flat layout (infra.stack), whatever capability group the construct is in."""
    pattern = re.compile(rf"^{re.escape(construct_id)}[0-9A-F]{{8}}$")
    found: list[str] = [
        lid for lid, res in template["Resources"].items() if pattern.match(lid) and res["Type"] == resource_type
    ]
    assert len(found) == 1, f"{construct_id} ({resource_type}): {found}"
    return found[0]


def definition(template: dict[str, Any]) -> dict[str, Any]:
    """The state machine definition as a dict; function ARNs appear as "${<FnLogicalId>.Arn}"."""
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    return json.loads(render(machine["Properties"]["DefinitionString"]))  # type: ignore[no-any-return]


def function_role(template: dict[str, Any], function_id: str) -> str:
    role = template["Resources"][function_id]["Properties"]["Role"]
    assert set(role) == {"Fn::GetAtt"}, role
    return role["Fn::GetAtt"][0]  # type: ignore[no-any-return]


def role_statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every IAM statement that applies to ``role_id``: inline policies, AWS::IAM::Policy and managed policies."""
    statements: list[dict[str, Any]] = []
    role = template["Resources"][role_id]["Properties"]
    for policy in role.get("Policies", []):
        statements += policy["PolicyDocument"]["Statement"]
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for res in resources(template, policy_type).values():
            if {"Ref": role_id} in res["Properties"].get("Roles", []):
                statements += res["Properties"]["PolicyDocument"]["Statement"]
    return [render(statement) for statement in statements]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for st in statements if st["Effect"] == "Allow" for action in as_list(st["Action"])}


def resources_for(statements: list[dict[str, Any]], action: str) -> set[str]:
    return {
        resource
        for st in statements
        if st["Effect"] == "Allow" and action in as_list(st["Action"])
        for resource in as_list(st["Resource"])
    }
