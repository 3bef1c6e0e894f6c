"""Logical ids: CDK's algorithm reproduced, and the deployed stack's ids kept across the regrouping into constructs."""

from __future__ import annotations

import re
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.logical_ids import make_unique_id, without_group

# Every logical id of the superset stack before CopyOrchestrator grouped its resources (2344eb9). Only the
# EventBridge permission to invoke the planner is new: its construct id embeds the planner's unique id.
DEPLOYED_IDS = (
    "AwaitCopy447B8B2B",
    "AwaitCopyEventInvokeConfigBCEF8B90",
    "AwaitCopyLogGroup1EE98B97",
    "AwaitCopyRole3B822D49",
    "AwaitCopyRoleDefaultPolicyDC97CD3C",
    "CopyEventArchive",
    "CopyEventBus14E9D800",
    "CopyRequestedRuleAE265B2A",
    "CopyRequestedRuleDeadLetterQueueEC46EB47",
    "CopyRequestedRuleDeadLetterQueuePolicyF8ED03AD",
    "CopyStateMachine00F80716",
    "CopyStateMachineRole6577954D",
    "CopyStateMachineRoleDefaultPolicy5C4DDDA2",
    "CopyWorkflowLogs31F279DE",
    "DeleteSource3A9B3DBB",
    "DeleteSourceEventInvokeConfig382FEA02",
    "DeleteSourceLogGroup9038280C",
    "DeleteSourceRoleDefaultPolicyDC490E04",
    "DeleteSourceRoleE9F4538C",
    "EncryptionKey1B843E66",
    "ImportEventsRule43643DF4",
    "ImportPlanner57D0EFDF",
    "ImportPlannerEventInvokeConfig7615AA1F",
    "ImportPlannerLogGroup44E6DC8D",
    "ImportPlannerRole1FD863E7",
    "ImportPlannerRoleDefaultPolicy302ECE66",
    "ImportRuleDeadLetterQueue1BC37E82",
    "ImportRuleDeadLetterQueuePolicy7DD36AAA",
    "JobConsumerE50D40A2",
    "JobConsumerEventInvokeConfig7084E40C",
    "JobConsumerLogGroup494E0621",
    "JobConsumerRole8883494E",
    "JobConsumerRoleDefaultPolicy60675867",
    "JobConsumerSqsEventSourceHealthImagingCopyOrchestratorJobQueue8FE5057540676CB5",
    "JobDeadLetterQueue4B560BCC",
    "JobDeadLetterQueuePolicyC89F4250",
    "JobQueueEE3AD499",
    "JobQueuePolicy1B11027A",
    "MonitoringAlarmTopicAF62D4F1",
    "MonitoringAlarmTopicPolicyCB9CCFB0",
    "MonitoringAlarmTopicimagingopsexamplecomCF7D20B1",
    "MonitoringAwaitCopyErrors722E9684",
    "MonitoringCopyRequestedRuleDeadLetterQueueNotEmpty2254F69C",
    "MonitoringDashboard0C3675C6",
    "MonitoringDeleteSourceErrors05BABC3E",
    "MonitoringExecutionsFailedACC22879",
    "MonitoringExecutionsTimedOutC6BB25FD",
    "MonitoringImportPlannerErrors7E0A7902",
    "MonitoringImportRuleDeadLetterQueueNotEmptyBF8DB629",
    "MonitoringJobConsumerErrorsD996CA1C",
    "MonitoringJobDeadLetterQueueNotEmpty60D584BB",
    "MonitoringPaceErrors057F41E6",
    "MonitoringPrepareErrors5AF9A6EF",
    "MonitoringPublishErrors69027B06",
    "MonitoringSubmitErrorsBD250726",
    "Pace54999752",
    "PaceEventInvokeConfigAB77C884",
    "PaceLogGroup25A9E2AE",
    "PaceRole7FD40AEC",
    "PaceRoleDefaultPolicy7C45D9ED",
    "Prepare75E8D311",
    "PrepareEventInvokeConfig7B01975C",
    "PrepareLogGroup4A0988EE",
    "PrepareRoleDefaultPolicyD8BCAD92",
    "PrepareRoleF7C686B4",
    "Publish2E9BDF73",
    "PublishEventInvokeConfig1D357C79",
    "PublishLogGroup50157229",
    "PublishRoleDefaultPolicy9257B12D",
    "PublishRoleF42F66B6",
    "StateTable9728C7E5",
    "Submit5FB37002",
    "SubmitEventInvokeConfig753B2F77",
    "SubmitLogGroup6C9926C6",
    "SubmitRoleAA35A90C",
    "SubmitRoleDefaultPolicyCF76AC09",
)
# Added since (issue #12): the safety net for executions that end without their terminal event.
ADDED_IDS = (
    "ExecutionEndedCD26BCE0",
    "ExecutionEndedDeadLetterQueue263F48E6",
    "ExecutionEndedDeadLetterQueuePolicy08CC7E89",
    "ExecutionEndedEventInvokeConfigB153B6F6",
    "ExecutionEndedLogGroup8378A781",
    "ExecutionEndedRole486D6AFC",
    "ExecutionEndedRoleDefaultPolicyEA6EEAAB",
    "ExecutionEndedRule91071ADC",
    "MonitoringExecutionEndedDeadLetterQueueNotEmpty0E759EBE",
    "MonitoringExecutionEndedErrors6F8F726E",
    # and the copy waker (issue #15): HealthImaging's copy events end AwaitCopy's waits early
    "CopyEventsRule5FD50520",
    "CopyEventsRuleAllowEventRuleHealthImagingCopyOrchestratorCopyCopyWaker380D5CB2C3ED53EE",
    "CopyWakerC1ED69BE",
    "CopyWakerEventInvokeConfigB5CD970D",
    "CopyWakerLogGroup8159AD42",
    "CopyWakerRole6924E744",
    "CopyWakerRoleDefaultPolicyB6B79A6F",
    "CopyWakerTaskResponseA307BB2F",
    "MonitoringCopyWakerErrorsD6399621",
    # and the delivery receipts (issue #12): a lost PutEvents answer is reconciled, never put twice
    "DeliveryReceipt97742D98",
    "DeliveryReceiptDeadLetterQueueF7332FCA",
    "DeliveryReceiptDeadLetterQueuePolicy65433EB7",
    "DeliveryReceiptEventInvokeConfig71A3A76F",
    "DeliveryReceiptLogGroup09404689",
    "DeliveryReceiptRole2620D3B7",
    "DeliveryReceiptRoleDefaultPolicy9128F327",
    "DeliveryReceiptRule8C5F2D48",
    "DeliveryReceiptRuleAllowEventRuleHealthImagingCopyOrchestratorReceiptsDeliveryReceipt823DC028F1CF8862",
    "MonitoringDeliveryReceiptDeadLetterQueueNotEmptyB6C1669D",
    "MonitoringDeliveryReceiptErrors80709384",
)
SAFETY_NET_PERMISSION = re.compile(
    r"^ExecutionEndedRuleAllowEventRuleHealthImagingCopyOrchestratorSafetyNetExecutionEnded[0-9A-F]{16}$"
)
PLANNER_PERMISSION = re.compile(
    r"^ImportEventsRuleAllowEventRuleHealthImagingCopyOrchestratorImportPlanningImportPlanner[0-9A-F]{16}$"
)


# Resources added since (new ids, nothing renamed): the backlog alarms (issue #13).
ADDED_BACKLOG_IDS = re.compile(r"^Monitoring(JobBacklogOld|JobBacklogDeep)[0-9A-F]{8}$")


def test_the_deployed_stack_keeps_its_logical_ids(delete_json: dict[str, Any]) -> None:
    backlog_alarms = {lid for lid in delete_json["Resources"] if ADDED_BACKLOG_IDS.match(lid)}
    assert len(backlog_alarms) == 2
    ids = set(delete_json["Resources"]) - set(ADDED_IDS) - backlog_alarms
    permissions = {lid for lid in ids if PLANNER_PERMISSION.match(lid) or SAFETY_NET_PERMISSION.match(lid)}
    assert ids - set(DEPLOYED_IDS) == permissions
    assert len(ids - set(DEPLOYED_IDS)) == 2
    assert set(DEPLOYED_IDS) <= ids
    assert set(ADDED_IDS) <= set(delete_json["Resources"])


def test_make_unique_id_is_cdks() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Stack")
    group = Construct(stack, "Group-1")
    sqs.CfnQueue(group, "Queue")
    sqs.Queue(Construct(stack, "Default"), "Hidden")
    sqs.Queue(Construct(group, "Pipeline"), "Pipeline")
    sqs.CfnQueue(stack, "TopLevel_Queue")
    sqs.CfnQueue(Construct(stack, "L" * 250), "Long")
    elements = [c for c in stack.node.find_all() if isinstance(c, cdk.CfnElement)]
    assert len(elements) == 5
    for element in elements:
        path = element.node.path.split("/")[1:]
        assert make_unique_id(path) == stack.resolve(element.logical_id), element.node.path


def test_without_group_drops_only_the_group_under_the_parent() -> None:
    groups = {"Copy"}
    assert without_group(["Default", "Copy", "Prepare", "Resource"], parent="Default", groups=groups) == [
        "Default",
        "Prepare",
        "Resource",
    ]
    assert without_group(["Default", "Monitoring", "Copy"], parent="Default", groups=groups) == [
        "Default",
        "Monitoring",
        "Copy",
    ]
    assert without_group(["Other", "Copy", "X"], parent="Default", groups=groups) == ["Other", "Copy", "X"]
