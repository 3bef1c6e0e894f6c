"""Gates on the production synth path: cdk-nag (AwsSolutions + HIPAA Security) and cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from aws_cdk import Validations
from constructs import IConstruct

from tests.infra.helpers import SynthOutput

ROOT = Path(__file__).resolve().parents[2]
# Warnings accepted in .cfnlintrc; the reasons are written there.
ACCEPTED_CFN_LINT_WARNINGS = {"W3005"}


def test_no_unacknowledged_nag_findings(full_synth: SynthOutput) -> None:
    if full_synth.error is not None:
        report_path = full_synth.outdir / "validation-report.json"
        if not report_path.exists():
            pytest.fail(f"synth failed without a validation report: {full_synth.error}")
        findings = [
            f"{violation['ruleName']} @ {construct['constructPath']}"
            for plugin in full_synth.report()["pluginReports"]
            for violation in plugin["violations"]
            for construct in violation["violatingConstructs"]
        ]
        pytest.fail(
            "unacknowledged findings (fix them, or acknowledge them where the resource is created, "
            "see infra/acknowledge.py):\n" + "\n".join(findings)
        )


def _acknowledgements(scope: IConstruct) -> list[tuple[str, str, str]]:
    """(construct path, finding, reason) of every acknowledgement under ``scope`` (CDK's construct metadata)."""
    return [
        (construct.node.path, finding, reason)
        for construct in scope.node.find_all()
        for entry in construct.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for finding, reason in entry.data.items()
    ]


def test_every_acknowledgement_is_specific_and_used(full_synth: SynthOutput) -> None:
    assert full_synth.error is None, "see test_no_unacknowledged_nag_findings"
    acks = _acknowledgements(full_synth.stack)
    assert acks
    used = {
        (violation["acknowledgedId"], violation["acknowledgedAt"])
        for plugin in full_synth.report()["pluginReports"]
        for violation in plugin.get("suppressedViolations", [])
    }
    plugins = {plugin["pluginName"] for plugin in full_synth.report()["pluginReports"]}
    assert any("AwsSolutions" in name for name in plugins), plugins
    assert any("HIPAA" in name for name in plugins), plugins
    too_wide = {full_synth.stack.node.path, full_synth.stack.orchestrator.node.path}
    for path, finding, reason in acks:
        assert len(reason) >= 60, f"reason too vague: {finding} @ {path}: {reason}"
        assert path not in too_wide, f"acknowledged stack-wide: {finding}"
        assert (finding, path) in used, f"stale acknowledgement (no such finding): {finding} @ {path}"


def test_cfn_lint_has_no_errors(full_synth: SynthOutput) -> None:
    assert full_synth.template_path.exists(), full_synth.error
    config = yaml.safe_load((ROOT / ".cfnlintrc").read_text())
    assert set(config["ignore_checks"]) == ACCEPTED_CFN_LINT_WARNINGS
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--format", "json", str(full_synth.template_path)],
        cwd=ROOT,  # reads .cfnlintrc
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['Rule']['Id']} {f['Message']} ({f['Location']['Path']})" for f in findings)
    assert result.returncode == 0, result.stderr
