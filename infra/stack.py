"""This project's stack: one :class:`~infra.orchestrator.CopyOrchestrator` and the outputs an operator needs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnElement, CfnOutput, Stack
from constructs import Construct

from infra.config import HicopyConfig
from infra.logical_ids import make_unique_id, without_group
from infra.orchestrator import (
    COPY_ID,
    IMPORT_PLANNING_ID,
    INGRESS_ID,
    RECEIPTS_ID,
    SAFETY_NET_ID,
    CopyOrchestrator,
)

# CDK leaves "Default" out of logical and unique ids: the orchestrator adds nothing to its resources' ids.
ORCHESTRATOR_ID = "Default"
# Capability groups whose resources were direct children of the stack before CopyOrchestrator (logical ids kept),
# and those added since (SafetyNet, Receipts), named the same flat way.
FLATTENED_GROUPS = (INGRESS_ID, COPY_ID, IMPORT_PLANNING_ID, SAFETY_NET_ID, RECEIPTS_ID)


class CopyOrchestratorStack(Stack):
    """Environment-agnostic (no lookups): deployable with one ``cdk deploy`` into any account/region."""

    def __init__(self, scope: Construct, construct_id: str, *, config: HicopyConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.template_options.description = (
            "HealthImaging CopyImageSet orchestrator: SQS/EventBridge triggers -> Step Functions -> completion events"
        )
        self.orchestrator = CopyOrchestrator(self, ORCHESTRATOR_ID, config=config)
        orchestrator = self.orchestrator
        CfnOutput(self, "JobQueueUrl", value=orchestrator.job_queue.queue_url, description="Send copy jobs here")
        CfnOutput(
            self,
            "JobDeadLetterQueueUrl",
            value=orchestrator.job_dead_letter_queue.queue_url,
            description="Rejected and undeliverable jobs",
        )
        CfnOutput(
            self,
            "EventBusName",
            value=orchestrator.event_bus.event_bus_name,
            description="Copy Requested in, completion events out",
        )
        CfnOutput(
            self, "StateMachineArn", value=orchestrator.state_machine.state_machine_arn, description="Copy workflow"
        )

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        """CDK's logical id of the path without the capability group (see ``infra.logical_ids``)."""
        path = cfn_element.node.path.split("/")[len(self.node.path.split("/")) :]
        return make_unique_id(without_group(path, parent=ORCHESTRATOR_ID, groups=FLATTENED_GROUPS))
