"""One environment contract: each function gets exactly the keys of the settings model its handler loads.

The expectation is derived, not restated: the models come from ``hicopy.settings`` and the model a handler loads
from its source (every ``load(<Model>)`` call in the handler module, or in a helper it imports from another
handler module, e.g. ``account_pacer``). The literal values the stack passes must validate with those models.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hicopy import settings
from hicopy.contract import METRICS_NAMESPACE, SERVICE_NAME
from hicopy.settings import EnvironmentMismatch, ObservabilityEnv, PlannerEnv, environment
from tests.infra.helpers import logical_id, render
from tests.infra.test_infra_resources import FUNCTIONS

ALL_FUNCTIONS = {**FUNCTIONS, "DeleteSource": "hicopy.handlers.delete_source"}
# Stand-ins for the values only known once deployed (CloudFormation references in the template).
DEPLOYED_VALUES = {
    "STATE_TABLE_NAME": "HealthImagingCopyOrchestrator-StateTable-1",
    "EVENT_BUS_NAME": "hicopy-events",
    "JOB_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/111122223333/jobs",
    "REJECTED_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/111122223333/dlq",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:111122223333:stateMachine:copy",
}


def _tree(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    return ast.parse(Path(spec.origin).read_text())


def _loads(node: ast.AST) -> set[str]:
    return {
        call.args[0].id
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "load"
        and call.args
        and isinstance(call.args[0], ast.Name)
    }


def loaded_models(module: str) -> list[type[BaseModel]]:
    """The settings models the handler ``module`` loads, itself or through the handler helpers it imports."""
    tree = _tree(module)
    names = _loads(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hicopy.handlers."):
            imported = {alias.name for alias in node.names}
            helpers = [f for f in _tree(node.module).body if isinstance(f, ast.FunctionDef) and f.name in imported]
            for helper in helpers:
                names |= _loads(helper)
    return [getattr(settings, name) for name in sorted(names)]


def _environment(template: dict[str, Any], name: str) -> dict[str, str]:
    props = template["Resources"][logical_id(template, name, "AWS::Lambda::Function")]["Properties"]
    return render(props["Environment"]["Variables"])  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(ALL_FUNCTIONS))
def test_each_function_gets_exactly_what_its_handler_loads(delete_json: dict[str, Any], name: str) -> None:
    env = _environment(delete_json, name)
    models = loaded_models(ALL_FUNCTIONS[name])
    expected = set(ObservabilityEnv.model_fields).union(*(model.model_fields for model in models))
    assert set(env) == expected
    deployed = {key: value for key, value in env.items() if "${" in value}
    assert set(deployed) <= set(DEPLOYED_VALUES), deployed
    for model in models:  # the literal values parse as the handler expects
        model.model_validate({**env, **{key: DEPLOYED_VALUES[key] for key in deployed}})


def test_the_handlers_load_the_models_we_expect() -> None:
    """Guards the source reading above: a parser that finds nothing would make the contract test vacuous."""
    found = {name: [m.__name__ for m in loaded_models(module)] for name, module in ALL_FUNCTIONS.items()}
    assert found == {
        "JobConsumer": ["ConsumerEnv"],
        "Prepare": ["PrepareEnv"],
        "Pace": ["PaceEnv", "PaceTaskEnv"],
        "Submit": ["PaceEnv"],
        "AwaitCopy": ["AwaitEnv"],
        "CopyWaker": ["WakerEnv"],
        "Publish": ["PublishEnv"],
        "ImportPlanner": ["PlannerEnv"],
        "DeleteSource": ["PaceEnv"],
        "ExecutionEnded": ["PublishEnv"],
        "DeliveryReceipt": ["ReceiptEnv"],
    }


@pytest.mark.parametrize("name", sorted(ALL_FUNCTIONS))
def test_powertools_environment(delete_json: dict[str, Any], name: str) -> None:
    env = _environment(delete_json, name)
    observability = ObservabilityEnv.model_validate(env)  # PHI-adjacent payloads are never logged or traced
    assert (observability.POWERTOOLS_SERVICE_NAME, observability.POWERTOOLS_METRICS_NAMESPACE) == (
        SERVICE_NAME,
        METRICS_NAMESPACE,
    )


def test_environment_takes_every_key_of_the_model_and_no_other() -> None:
    values: dict[str, settings.EnvValue] = {
        "DATASTORE_IDS": ["0123456789abcdef0123456789abcdef", "abcdefghijklmnopqrstuvwxyz012345"],
        "EVENT_BUS_NAME": "bus",
        "EVENT_SOURCE": "hicopy.orchestrator",
        "JOB_QUEUE_URL": "https://queue",
        "STATE_TABLE_NAME": "table",
        "POST_IMPORT_POLICY": "promote",
        "MANIFEST_WAIT_SECONDS": 120,
        "CONSOLIDATE_FORCE": True,
        "DELETE_AFTER_CONSOLIDATE": False,
        "IMPORT_REPORT_DETAILS": False,
    }
    env = environment(PlannerEnv, values)
    assert (env["DATASTORE_IDS"], env["CONSOLIDATE_FORCE"], env["DELETE_AFTER_CONSOLIDATE"]) == (
        "0123456789abcdef0123456789abcdef,abcdefghijklmnopqrstuvwxyz012345",
        "true",
        "false",
    )
    parsed = PlannerEnv.model_validate(env)
    assert (parsed.CONSOLIDATE_FORCE, parsed.MANIFEST_WAIT_SECONDS, len(parsed.datastore_ids)) == (True, 120, 2)
    with pytest.raises(EnvironmentMismatch, match=r"missing \['STATE_TABLE_NAME'\], not in the model \[\]"):
        environment(PlannerEnv, {k: v for k, v in values.items() if k != "STATE_TABLE_NAME"})
    with pytest.raises(EnvironmentMismatch, match=r"missing \[\], not in the model \['MAX_FRAMES_PER_COPY'\]"):
        environment(PlannerEnv, {**values, "MAX_FRAMES_PER_COPY": 1000})


def test_a_function_without_settings_takes_no_environment_of_its_own() -> None:
    from infra.lambda_factory import LambdaFactory

    assert LambdaFactory._own_environment("AwaitCopy", None, {}) == {}
    with pytest.raises(ValueError, match="its handler loads no settings"):
        LambdaFactory._own_environment("AwaitCopy", None, {"DATASTORE_IDS": "x"})
