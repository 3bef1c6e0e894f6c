"""``python -m offline run-job``: a user's job file, with placeholders filled from the seeded demo data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hicopy.contract import IMAGE_SET_ID_PATTERN
from offline import cli


def test_placeholders_are_substituted_and_unknown_ones_refused() -> None:
    assert cli.substitute('{"a": "${X}"}', {"X": "1"}) == '{"a": "1"}'
    with pytest.raises(cli.PlaceholderError, match="NOPE"):
        cli.substitute("${NOPE}", {"X": "1"})


def test_an_unknown_placeholder_is_a_usage_error_exit_2_not_a_failed_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"datastoreId": "${DATASTORE_ID}", "source": {"imageSetId": "${SOURCE_IMAGE_SET}"}}')
    assert cli.main(["run-job", str(path), "--seed", "--quiet"]) == 2  # 1 means "a job failed"
    err = capsys.readouterr().err
    assert "unknown placeholder(s) SOURCE_IMAGE_SET" in err and "Traceback" not in err


def test_without_seed_valid_placeholders_are_not_called_unknown_and_the_hint_is_add_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.json"
    path.write_text(
        '{"datastoreId": "${DATASTORE_ID}", "source": {"imageSetId": "${SOURCE_IMAGE_SET_ID}"},'
        ' "instances": ["${INSTANCE_UID_1_2}"]}'
    )
    assert cli.main(["run-job", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "INSTANCE_UID_1_2, SOURCE_IMAGE_SET_ID are filled only with --seed: add --seed" in err
    assert "unknown" not in err


def test_run_job_merges_into_the_seeded_destination(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = {
        "jobId": "cli-merge",
        "datastoreId": "${DATASTORE_ID}",
        "source": {"imageSetId": "${SOURCE_IMAGE_SET_ID}"},
        "destination": {"imageSetId": "${DESTINATION_IMAGE_SET_ID}"},
        "instances": ["${INSTANCE_UID_1_1}", "${INSTANCE_UID_1_2}"],
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))

    assert cli.main(["run-job", str(path), "--seed", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert '"detail-type": "Copy Job Succeeded"' in out
    assert "cli-merge" in out


def test_run_job_exits_1_when_a_job_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"datastoreId": "${DATASTORE_ID}", "source": {"imageSetId": "nope"}}')
    assert cli.main(["run-job", str(path), "--quiet"]) == 1


REPO = Path(__file__).resolve().parents[2]


def test_the_runtime_starts_without_pythonpath(tmp_path: Path) -> None:
    """`python -m offline ...` / `python -m offline.bench` run from a fresh shell: no PYTHONPATH, outside the
    repository. The packages import because `make venv` installs the project (editable), not through path hacks: the
    `hicopy` they import is this checkout's `functions/hicopy`."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    code = (
        "import hicopy; from offline.runtime import LocalRuntime\n"
        f"assert hicopy.__file__.startswith({str(REPO / 'functions')!r}), hicopy.__file__\n"
        "with LocalRuntime(time_scale=0.01) as rt:\n"
        "    print(rt.seed_image_set().image_set_id)\n"
    )
    done = python("-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.fullmatch(IMAGE_SET_ID_PATTERN, done.stdout.strip())
    for module in ("offline", "offline.bench"):
        done = python("-m", module, "--help")
        assert done.returncode == 0, done.stderr[-2000:]
