"""The README's claims that code can check: its examples validate, its tables match what the code computes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hicopy.domain.backoff import expected_status_checks
from tests.support.contracts import assert_valid_event, assert_valid_job

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def examples() -> dict[str, dict]:
    found = {}
    for name, body in re.findall(r"<!-- example: ([\w-]+) -->\s*```json\n(.*?)```", README, re.S):
        found[name] = json.loads(body)
    return found


def test_readme_has_every_example():
    assert set(examples()) >= {"copy-job", "copy-job-succeeded", "copy-job-failed", "copy-job-rejected"}


@pytest.mark.parametrize("name", ["copy-job-succeeded", "copy-job-failed", "copy-job-rejected"])
def test_readme_event_examples_match_the_schemas(name):
    event = examples()[name]
    assert_valid_event(event["detail-type"], event["detail"], event["source"])


def test_readme_job_example_matches_the_schema():
    assert_valid_job(examples()["copy-job"])


def test_readme_polling_table_matches_the_computation():
    table = README.split("<!-- polling-table -->", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"\| (\d+) (s|min) \| (\d+) \|", table)
    assert len(rows) == 3
    for amount, unit, checks in rows:
        seconds = int(amount) * (60 if unit == "min" else 1)
        assert expected_status_checks(seconds, 5, 2, 120) == int(checks)


def _table_rows(text: str, header_start: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_readme_throughput_table_is_the_latest_benchmark_run():
    """Both are written by the same `python -m offline.bench --update-docs`; neither is edited by hand."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "bench-results.md").read_text()
    block = README.split("<!-- bench-table: written by python -m offline.bench --update-docs -->", 1)[1]
    block = block.split("<!-- /bench-table -->", 1)[0]
    rows = _table_rows(block, "| backlog | policy | sustained rate")
    assert rows and rows == _table_rows(docs, "| backlog | policy | sustained rate")
    command = re.search(r"Command: `([^`]+)`", block)
    assert command is not None and f"Command: `{command.group(1)}`" in docs
    assert {"500 | shipped", "500 | naive"} <= {" | ".join(r.split(" | ")[:2]).lstrip("| ") for r in rows}
