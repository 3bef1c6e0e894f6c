"""Shared fixtures of the infrastructure tests: templates synthesized once per session, bundling skipped."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # before the first aws_cdk import

from typing import Any

import pytest
from aws_cdk.assertions import Template
from infra_helpers import TEST_CONFIG, VARIANT_CONFIG, SynthOutput

from infra.app_factory import build_app


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "network: runs pip against PyPI (Docker-free Lambda bundling); part of make test"
    )


def _template(hicopy: dict[str, Any]) -> Template:
    # No bundling (no pip), no built-in CloudFormation validation (the gate test keeps it), no cdk-nag.
    _, stack = build_app(bundle=False, nag=False, cfn_validation=False, context={"hicopy": hicopy})
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def template() -> Template:
    return _template(TEST_CONFIG)


@pytest.fixture(scope="session")
def template_json(template: Template) -> dict[str, Any]:
    return template.to_json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def variant_json() -> dict[str, Any]:
    """The same stack with non-default settings (no import buckets, no e-mail, other polling...)."""
    return _template(VARIANT_CONFIG).to_json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def full_synth(tmp_path_factory: pytest.TempPathFactory) -> SynthOutput:
    """The production synth path: cdk-nag packs + CDK's built-in CloudFormation validation (bundling skipped).

    Never raises: the gate test reports the failure with the validation report.
    """
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(
        bundle=False, nag=True, cfn_validation=True, context={"hicopy": TEST_CONFIG}, outdir=str(outdir)
    )
    try:
        app.synth()
    except Exception as exc:  # jsii surfaces ValidationFailed as RuntimeError
        return SynthOutput(outdir=outdir, stack=stack, error=str(exc))
    return SynthOutput(outdir=outdir, stack=stack, error=None)
