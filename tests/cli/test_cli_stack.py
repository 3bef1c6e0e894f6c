"""The CLI finds a deployed stack through CloudFormation, and explains itself (``--help``)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hicopy.cli import main
from hicopy.cli.app import build_parser
from hicopy.cli.stack import Stack, StackNotFound, _from_resources, config_from_environments
from hicopy.contract import SUCCEEDED
from offline.runtime import LocalRuntime
from tests.cli.conftest import events_of

REPO = Path(__file__).resolve().parents[2]


def test_the_stack_is_found_by_its_cloudformation_outputs(rt: LocalRuntime) -> None:
    [deployed] = rt.client("cloudformation").describe_stacks()["Stacks"]
    stack = Stack.resolve(deployed["StackName"], region="us-east-1")
    assert (stack.job_queue_url, stack.dlq_url, stack.event_bus_name, stack.state_machine_arn) == (
        rt.deployment.job_queue_url,
        rt.deployment.dlq_url,
        rt.deployment.event_bus_name,
        rt.deployment.state_machine_arn,
    )
    assert stack.config.datastore_ids == frozenset({rt.datastore_id})  # read from the functions' environments
    assert stack.config.frame_limit == 1000 and stack.config.post_import_policy == "consolidate"
    # Without the outputs, the same resources are found in the stack's resource list (moto's CloudFormation gives
    # the event bus no physical ID: the bus is looked up there only in AWS).
    keys = ["JobQueueUrl", "JobDeadLetterQueueUrl", "StateMachineArn"]
    found = _from_resources(rt.client("cloudformation"), deployed["StackName"], keys)
    assert found == {k: rt.deployment.outputs[k] for k in keys}

    src = rt.seed_image_set()
    job = json.dumps({"jobId": "via-cfn", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    out, err = io.StringIO(), io.StringIO()
    assert main(["--region", "us-east-1", "submit", job], stdout=out, stderr=err) == 0, err.getvalue()
    rt.run_until_idle(timeout=30)
    assert events_of(rt, "via-cfn")["via-cfn"]["detail-type"] == SUCCEEDED

    err = io.StringIO()
    assert main(["status", "via-cfn", "--stack-name", "NoSuchStack", "--region", "us-east-1"], stderr=err) == 2
    assert "stack 'NoSuchStack' not found" in err.getvalue()


def test_the_configuration_is_read_with_the_functions_settings_models() -> None:
    envs = [
        {"STATE_TABLE_NAME": "t", "COPY_RATE_PER_SECOND": "0.5", "COPY_BURST": "2"},  # Pace
        {"DATASTORE_IDS": "a" * 32 + "," + "b" * 32, "MAX_FRAMES_PER_COPY": "250"},  # Prepare
    ]
    config = config_from_environments(envs, "test")
    assert (config.copy_rate_per_second, config.copy_burst, config.frame_limit) == (0.5, 2, 250)
    assert config.datastore_ids == frozenset({"a" * 32, "b" * 32})
    # What no function says is the settings models' default: their one home.
    assert (config.post_import_policy, config.consolidate_force, config.delete_after_consolidate) == (
        "none",
        False,
        False,
    )
    defaults = config_from_environments([], "nothing readable")
    assert (defaults.copy_rate_per_second, defaults.frame_limit, defaults.datastore_ids) == (0.25, 1000, None)


class _Resources:
    """A CloudFormation client that lists these resources (one page)."""

    def __init__(self, *resources: tuple[str, str, str]) -> None:
        rows = [
            {"LogicalResourceId": lid, "ResourceType": kind, "PhysicalResourceId": pid} for lid, kind, pid in resources
        ]
        self.page = {"StackResourceSummaries": rows}

    def get_paginator(self, name: str) -> _Resources:
        return self

    def paginate(self, **kwargs: object) -> list[dict[str, object]]:
        return [self.page]


def test_a_missing_output_is_found_by_the_construct_id_and_the_cdk_hash() -> None:
    cfn = _Resources(
        ("JobQueueReplicaQueue", "AWS::SQS::Queue", "https://decoy"),
        ("OrchestratorJobQueue0A1B2C3D", "AWS::SQS::Queue", "https://job-queue"),
        ("OrchestratorJobDeadLetterQueue4B560BCC", "AWS::SQS::Queue", "https://dlq"),
    )
    assert _from_resources(cfn, "S", ["JobQueueUrl", "JobDeadLetterQueueUrl"]) == {
        "JobQueueUrl": "https://job-queue",
        "JobDeadLetterQueueUrl": "https://dlq",
    }
    with pytest.raises(StackNotFound, match="no output StateMachineArn"):
        _from_resources(cfn, "S", ["StateMachineArn"])


@pytest.mark.parametrize(
    "command", [None, "submit", "plan", "status", "watch", "list", "rerun", "dlq", "backlog", "sweep"]
)
def test_every_command_explains_itself(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"] if command else ["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--stack-name" in text and "--json" in text
    assert len(text.split("\n\n")[1]) > 60  # a description, not just the usage


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hicopy.cli", "--help"],
        cwd=REPO / "functions",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: hicopy" in done.stdout
