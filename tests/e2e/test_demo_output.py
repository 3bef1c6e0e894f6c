"""``make demo`` prints a clean story: nothing on stderr for the expected failures (moto's interpreter used to dump
each Fail state's error and cause there), and every line after the one that caused it (a state is entered before
its handler's result or the event it publishes; a batch is received before what its consumer publishes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hicopy.contract import FAILED, REJECTED, SUCCEEDED

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^  \[\s*[\d.]+s\] (.{22}) (.*)$")

pytestmark = pytest.mark.xdist_group("demo")


def _lines(stdout: str) -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in map(LINE.match, stdout.splitlines()) if m]


def _before(lines: list[tuple[str, str]], who: str, first: str, then: str) -> None:
    """``first`` is printed for ``who`` before the first line that starts with ``then``."""
    texts = [text for w, text in lines if w == who]
    later = next((i for i, text in enumerate(texts) if text.startswith(then)), None)
    assert first in texts and later is not None, (who, texts)
    assert texts.index(first) < later, f"{who}: {then!r} printed before {first!r}: {texts}"


def test_the_demo_prints_nothing_on_stderr_and_its_lines_in_causal_order() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "offline.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stderr == ""
    lines = _lines(done.stdout)
    for job, event in [
        ("whole copy", SUCCEEDED),
        ("subset copy", SUCCEEDED),
        ("merge into existing", SUCCEEDED),
        ("service fails copy", FAILED),
    ]:
        _before(lines, job, "execution started", "-> Prepare")
        _before(lines, job, "-> AwaitCopy", "AwaitCopy: still copying -> wait up to")
        publisher = "-> PublishResult" if event == SUCCEEDED else "-> PublishFailure"
        _before(lines, job, publisher, f"event on hicopy-events: {event}")
    # The rejected job: its batch is received before the consumer publishes the rejection.
    order = [text for _who, text in lines]
    rejected = order.index(f"event on hicopy-events: {REJECTED}")
    assert order[rejected - 1] == "SQS batch of 1 -> JobConsumer", order[rejected - 3 : rejected + 1]
