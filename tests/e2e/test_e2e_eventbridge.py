"""EventBridge target delivery the runtime adds to moto: Step Functions targets, and target dead-letter queues."""

from __future__ import annotations

import json

from offline.runtime import ACCOUNT, REGION, LocalRuntime


def test_rule_with_a_step_functions_target_starts_an_execution_with_the_whole_event(rt: LocalRuntime) -> None:
    events, stack = rt.client("events"), rt.deployment
    events.put_rule(
        Name="probe", EventBusName=stack.event_bus_name, EventPattern=json.dumps({"detail-type": ["Probe"]})
    )
    events.put_targets(
        Rule="probe", EventBusName=stack.event_bus_name, Targets=[{"Id": "sfn", "Arn": stack.state_machine_arn}]
    )
    event_id = rt.put_event("Probe", {"hello": "world"}, source="probe.client")
    rt.run_until_idle(timeout=30)

    [execution] = rt.executions()
    assert execution.input["id"] == event_id
    assert execution.input["detail-type"] == "Probe"
    assert execution.input["detail"] == {"hello": "world"}
    assert execution.input["account"] == ACCOUNT


def test_undeliverable_target_goes_to_the_rule_targets_dead_letter_queue(rt: LocalRuntime) -> None:
    stack = rt.deployment
    dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{stack.dlq_url.rsplit('/', 1)[-1]}"
    missing = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:does-not-exist"
    events = rt.client("events")
    events.put_rule(Name="lost", EventBusName=stack.event_bus_name, EventPattern=json.dumps({"detail-type": ["Lost"]}))
    events.put_targets(
        Rule="lost",
        EventBusName=stack.event_bus_name,
        Targets=[{"Id": "gone", "Arn": missing, "DeadLetterConfig": {"Arn": dlq_arn}}],
    )
    rt.put_event("Lost", {"n": 1}, source="probe.client")
    rt.run_until_idle(timeout=30)

    [dead] = rt.dlq_messages()
    assert dead["body"]["detail-type"] == "Lost"
    assert dead["MessageAttributes"]["TARGET_ARN"] == missing
    assert dead["MessageAttributes"]["RULE_ARN"].endswith("rule/hicopy-events/lost")
