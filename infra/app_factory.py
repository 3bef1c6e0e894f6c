"""``build_app``: the one way to build the CDK app (``app.py``, the CLI, tests and the offline runtime)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk

from infra.config import load_config
from infra.paths import ROOT
from infra.stack import CopyOrchestratorStack

CDK_JSON = ROOT / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's ``context``: ``cdk synth`` passes it in CDK_CONTEXT_JSON, a bare ``App()`` would not see it."""
    context = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    if not isinstance(context, dict):
        raise ValueError(f"{CDK_JSON}: 'context' must be a JSON object")
    return context


def build_app(
    *,
    bundle: bool = True,
    nag: bool = False,
    outdir: str | None = None,
    context: Mapping[str, Any] | None = None,
    cfn_validation: bool = True,
) -> tuple[cdk.App, CopyOrchestratorStack]:
    """Build the app and its one stack (nothing is synthesized yet; call ``app.synth()``).

    ``context`` overrides cdk.json's context (e.g. ``{"hicopy": {"datastoreIds": [...]}}``); the CDK CLI's own
    context (``-c`` options, passed in CDK_CONTEXT_JSON) overrides both. ``bundle=False`` skips the pip bundling
    (assets then point at ``functions/``; the asset hash is the same). Raises ``infra.config.ConfigError`` with a
    readable message when the ``hicopy`` configuration is invalid.
    """
    merged = {**cdk_json_context(), **dict(context or {})}
    # post_cli_context wins over the CLI's own "aws:cdk:bundling-stacks": ["**"]
    post_cli_context: dict[str, Any] | None = None if bundle else {"aws:cdk:bundling-stacks": []}
    app = cdk.App(
        context=merged,
        post_cli_context=post_cli_context,
        outdir=outdir,
        builtin_cloud_formation_validation=cfn_validation,
    )
    config = load_config(app.node.try_get_context)
    stack = CopyOrchestratorStack(app, config.stack_name, stack_name=config.stack_name, config=config)
    if nag:
        from infra.nag import apply_nag

        apply_nag(app)
    return app, stack
