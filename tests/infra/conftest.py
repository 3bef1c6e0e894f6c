"""Shared fixtures of the infrastructure tests: templates synthesized once per session, bundling skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # before the first aws_cdk import

from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.app_factory import build_app
from tests.infra.helpers import DELETE_CONFIG, TEST_CONFIG, VARIANT_CONFIG, BundledSynth, SynthOutput

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "network: runs pip against PyPI (Docker-free Lambda bundling); part of make test"
    )


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the bundling test last: its `python app.py` subprocess is started early and runs meanwhile."""
    items.sort(key=lambda item: item.get_closest_marker("network") is not None)


def _template(hicopy: dict[str, Any]) -> Template:
    # No bundling (no pip), no built-in CloudFormation validation (the gate test keeps it), no cdk-nag.
    _, stack = build_app(bundle=False, nag=False, cfn_validation=False, context={"hicopy": hicopy})
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def template() -> Template:
    return _template(TEST_CONFIG)


@pytest.fixture(scope="session")
def template_json(template: Template) -> dict[str, Any]:
    return dict(template.to_json())


@pytest.fixture(scope="session")
def variant_json() -> dict[str, Any]:
    """The same stack with non-default settings (no import buckets, no e-mail, other polling...)."""
    return dict(_template(VARIANT_CONFIG).to_json())


@pytest.fixture(scope="session")
def delete_json() -> dict[str, Any]:
    """The superset stack: deleteAfterConsolidate adds the DeleteSource function and branch."""
    return dict(_template(DELETE_CONFIG).to_json())


@pytest.fixture(scope="session")
def full_synth(tmp_path_factory: pytest.TempPathFactory) -> SynthOutput:
    """The superset stack synthesized with the cdk-nag packs (bundling skipped).

    CDK's built-in CloudFormation validation (~10 s on this stack) runs in the background `python app.py` synth
    instead (see below); cfn-lint covers the same rules here. Never raises: the gate test lists the findings.
    """
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(
        bundle=False, nag=True, cfn_validation=False, context={"hicopy": DELETE_CONFIG}, outdir=str(outdir)
    )
    try:
        app.synth()
    except Exception as exc:  # jsii surfaces ValidationFailed as RuntimeError
        return SynthOutput(outdir=outdir, stack=stack, error=str(exc))
    return SynthOutput(outdir=outdir, stack=stack, error=None)


# --- `python app.py` with bundling ON, run in the background while the other tests run -------------------------------
def _start_bundled_synth(outdir: Path) -> BundledSynth:
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({"hicopy": DELETE_CONFIG}),  # what the CDK CLI passes
        # the production path of `cdk synth`: bundling and CDK's built-in validation (the gate test runs cdk-nag)
        "CDK_VALIDATION": "false",
        "CDK_NAG": "0",
        "SKIP_BUNDLING": "0",
    }
    log = outdir.parent / f"{outdir.name}.log"
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    return BundledSynth(outdir=outdir, process=process, log=log)


@pytest.fixture(scope="session")
def _bundled_synth_holder() -> Iterator[dict[str, BundledSynth]]:
    holder: dict[str, BundledSynth] = {}
    yield holder
    started = holder.get("synth")
    if started is not None and started.process.poll() is None:  # our own subprocess, by its handle
        started.process.kill()
        started.process.wait()


@pytest.fixture(scope="session", autouse=True)
def _prestart_bundled_synth(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _bundled_synth_holder: dict[str, BundledSynth],
) -> None:
    """Start the bundling synth as soon as the infra tests start, if it is selected (not under xdist)."""
    wanted = any(item.get_closest_marker("network") for item in request.session.items)
    if wanted and "PYTEST_XDIST_WORKER" not in os.environ and "synth" not in _bundled_synth_holder:
        _bundled_synth_holder["synth"] = _start_bundled_synth(tmp_path_factory.mktemp("bundled"))


@pytest.fixture(scope="session")
def bundled_synth(
    tmp_path_factory: pytest.TempPathFactory, _bundled_synth_holder: dict[str, BundledSynth]
) -> BundledSynth:
    """The finished `python app.py` run with bundling ON (started earlier, or now)."""
    if "synth" not in _bundled_synth_holder:
        _bundled_synth_holder["synth"] = _start_bundled_synth(tmp_path_factory.mktemp("bundled"))
    synth = _bundled_synth_holder["synth"]
    synth.process.wait(timeout=900)
    return synth
