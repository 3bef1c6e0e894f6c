"""A CDK app of a user: ``CopyOrchestrator`` next to resources of its own, with cdk-nag. The app is the README's
example itself ("Use it in your own CDK app"), run as written except that the test's ``App`` skips bundling."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from infra.nag import apply_nag
from tests.infra.helpers import resources

ROOT = Path(__file__).resolve().parents[2]
# What the README's app does after ``app = cdk.App()``; the test's App does the same, without bundling.
APP_TAIL = """cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), HIPAASecurityChecks(app))
ImagingStack(app, "Imaging")
app.synth()
"""


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- example: user-cdk-app -->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README: no user-cdk-app example"
    return match.group(1)


@dataclass(frozen=True)
class UserApp:
    outdir: Path
    findings: list[str]  # unacknowledged cdk-nag findings (the synth failed if any)

    def template(self) -> dict[str, Any]:
        return json.loads((self.outdir / "Imaging.template.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def user_app(tmp_path_factory: pytest.TempPathFactory) -> UserApp:
    """The README's stack class, in an App that skips bundling and runs the same cdk-nag packs."""
    definitions, tail = readme_example().split("\n\napp = cdk.App()\n", 1)
    assert tail == APP_TAIL
    namespace: dict[str, Any] = {"__name__": "readme_user_app"}
    exec(compile(definitions, "README.md (user-cdk-app)", "exec"), namespace)  # our own README
    outdir = tmp_path_factory.mktemp("user-app")
    app = cdk.App(outdir=str(outdir), context={"aws:cdk:bundling-stacks": []})
    apply_nag(app)  # the packs of the README's app: AwsSolutions and HIPAA Security
    namespace["ImagingStack"](app, "Imaging")
    try:
        app.synth()
    except Exception:  # jsii surfaces ValidationFailed as RuntimeError
        report = json.loads((outdir / "validation-report.json").read_text())
        findings = [
            f"{violation['ruleName']} @ {construct['constructPath']}"
            for plugin in report["pluginReports"]
            for violation in plugin["violations"]
            for construct in violation["violatingConstructs"]
        ]
        return UserApp(outdir, findings or ["the synth failed without findings"])
    return UserApp(outdir, [])


def test_user_app_passes_cdk_nag(user_app: UserApp) -> None:
    assert user_app.findings == []


def test_readme_example_is_ruff_clean() -> None:
    code = readme_example()
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["format", "--check"], ["check"]):
        result = subprocess.run(
            [str(ruff), *command, "--stdin-filename", "user_app.py", "-"],
            input=code,
            cwd=ROOT,  # pyproject.toml's ruff settings
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_user_app_has_its_resources_and_the_orchestrators(user_app: UserApp) -> None:
    assert user_app.findings == [], "see test_user_app_passes_cdk_nag"
    template = user_app.template()
    queues = set(resources(template, "AWS::SQS::Queue"))
    # the user's own queues next to the orchestrator's six
    mine = sorted(re.sub(r"[0-9A-F]{8}$", "", lid) for lid in queues if lid.startswith("CopyResults"))
    assert mine == ["CopyResults", "CopyResultsDeadLetterQueue"]
    assert len(queues) == 2 + 6
    (bus_id,) = resources(template, "AWS::Events::EventBus")
    rule = next(r for lid, r in resources(template, "AWS::Events::Rule").items() if lid.startswith("CopyFinished"))
    assert rule["Properties"]["EventBusName"] == {"Ref": bus_id}
    assert rule["Properties"]["EventPattern"] == {
        "source": ["hicopy.orchestrator"],
        "detail-type": ["Copy Job Succeeded", "Copy Job Failed"],
    }
    # the orchestrator, nested under the user's construct id "Copies"
    (machine_id,) = resources(template, "AWS::StepFunctions::StateMachine")
    assert machine_id.startswith("CopiesCopyCopyStateMachine")
    handlers = sorted(r["Properties"]["Handler"] for r in resources(template, "AWS::Lambda::Function").values())
    assert handlers == sorted(
        f"hicopy.handlers.{name}.handler"
        for name in (
            "prepare",
            "pace",
            "submit",
            "await_copy",
            "publish",
            "consumer",
            "planner",
            "execution_ended",
            "copy_waker",
            "receipt",
        )
    )
    pace = next(r for lid, r in resources(template, "AWS::Lambda::Function").items() if "Pace" in lid)
    assert pace["Properties"]["Environment"]["Variables"]["COPY_RATE_PER_SECOND"] == "0.5"  # the user's setting


def test_the_orchestrator_is_importable_as_documented() -> None:
    import infra
    from infra import CopyOrchestrator, HicopyConfig
    from infra.config import HicopyConfig as ConfigModel
    from infra.orchestrator import CopyOrchestrator as Construct

    assert (CopyOrchestrator, HicopyConfig) == (Construct, ConfigModel)
    assert {"CopyOrchestrator", "HicopyConfig"} <= set(infra.__all__)
    with pytest.raises(AttributeError):
        infra.NoSuchThing  # noqa: B018
