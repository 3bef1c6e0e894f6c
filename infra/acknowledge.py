"""cdk-nag findings acknowledged where the resource is created, each with the reason it is acceptable.

Every ``acknowledge`` call sits next to the construct that carries the finding (never the stack, the app or the
orchestrator), and a wildcard finding names its exact resource, so a new finding anywhere still fails the gate
(``make nag``, tests/infra/test_infra_gate.py). CDK records each one in the construct's metadata
(``aws:cdk:acknowledged-rules``): that is the audit trail. ``infra.nag`` applies the rule packs.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

AWS_SOLUTIONS = "AwsSolutions::AwsSolutions"
HIPAA = "HIPAA.Security::HIPAA.Security"


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge ``finding`` (e.g. ``f"{HIPAA}-LambdaDLQ"``) on ``scope`` and its children."""
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


def logical_id(construct: IConstruct) -> str:
    """The logical id of ``construct``'s CloudFormation resource, as cdk-nag prints it in findings."""
    child = construct.node.default_child
    if not isinstance(child, cdk.CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    stack = cdk.Stack.of(construct)
    return str(stack.resolve(child.logical_id))
