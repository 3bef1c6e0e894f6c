"""Session fixtures of the security suite: one run of every handler scenario, and the synthesized template."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # before the first aws_cdk import

from typing import Any

import pytest

from tests.security.scenarios import ScenarioRun, scenario_run
from tests.support.aws import IMPORT_BUCKET
from tests.support.environment import DATASTORE_ID

# The superset stack (post-import delete-after adds DeleteSource), scoped to the emulator's data store.
HICOPY_CONFIG: dict[str, Any] = {
    "datastoreIds": [DATASTORE_ID],
    "importOutputBuckets": [IMPORT_BUCKET],
    "postImportPolicy": "consolidate",
    "deleteAfterConsolidate": True,
}


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """Synthesized like tests/infra: no bundling (no pip), no cdk-nag, no built-in CloudFormation validation."""
    from aws_cdk.assertions import Template

    from infra.app_factory import build_app

    _, stack = build_app(bundle=False, nag=False, cfn_validation=False, context={"hicopy": HICOPY_CONFIG})
    return dict(Template.from_stack(stack).to_json())


@pytest.fixture(scope="session")
def run() -> ScenarioRun:
    return scenario_run()
