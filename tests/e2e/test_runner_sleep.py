"""The local runtime's Lambda runner: a handler that sleeps gives the runner's lock up, like a separate Lambda would
not hold every other function up, and resumes with its own environment and modules."""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offline.clock import ScaledClock
from offline.runtime.lambdas import FunctionSpec, LambdaRunner

CODE = {
    "sleepclock.py": """
        import time

        class _Real:
            def now(self):
                return time.time()

            def sleep(self, seconds):
                time.sleep(seconds)

        _clock = _Real()

        def get_clock():
            return _clock

        def set_clock(clock):
            global _clock
            _clock = clock
    """,
    "sleeper.py": """
        import os
        import sys

        import sleepclock

        def handler(event, context):
            me = sys.modules[__name__]
            before = (os.environ["WHO"], sys.modules["sleeper"] is me)
            sleepclock.get_clock().sleep(event["sleep"])
            after = (os.environ["WHO"], sys.modules["sleeper"] is me)
            return {"before": list(before), "after": list(after)}
    """,
}


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[LambdaRunner]:
    for name, text in CODE.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    r = LambdaRunner(region="us-east-1", account="123456789012", clock=ScaledClock(1.0), clock_module="sleepclock")

    @contextlib.contextmanager
    def environment(spec: FunctionSpec, request_id: str) -> Iterator[None]:  # moto's function lookup, replaced
        saved = dict(os.environ)
        os.environ["WHO"] = spec.function_name
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    r._environment = environment  # type: ignore[method-assign]
    for name in ("slow", "fast"):
        r.register(
            FunctionSpec(
                logical_id=name,
                construct_id=name,
                function_name=name,
                function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
                handler="sleeper.handler",
                code_dir=tmp_path,
            )
        )
    yield r
    r.close()
    assert "sleeper" not in sys.modules and "WHO" not in os.environ


def test_a_sleeping_handler_lets_another_one_run_and_resumes_as_itself(runner: LambdaRunner) -> None:
    results: dict[str, Any] = {}

    def call(name: str, seconds: float) -> None:
        payload, errored, _ = runner.invoke(name, f"arn:{name}", {"sleep": seconds})
        assert not errored, payload
        results[name] = payload

    slow = threading.Thread(target=call, args=("slow", 1.0))
    slow.start()
    time.sleep(0.3)  # slow is asleep by now
    fast = threading.Thread(target=call, args=("fast", 0.0))
    fast.start()
    fast.join(timeout=0.5)
    assert not fast.is_alive(), "the sleeping handler held the lock: fast could not run meanwhile"
    slow.join(timeout=5)
    by_name = {inv.function_name: inv for inv in runner.invocations}
    assert by_name["fast"].ended < by_name["slow"].ended
    # Each call saw its own environment and its own container's module before and after the other one ran.
    assert '"before": ["slow", true], "after": ["slow", true]' in results["slow"]
    assert '"before": ["fast", true], "after": ["fast", true]' in results["fast"]


def test_a_call_inside_a_held_lock_sleeps_holding_it(runner: LambdaRunner) -> None:
    """A thread that holds the lock around the call (as the runtime does to quiesce) cannot give it up: nobody else
    runs meanwhile, and nothing deadlocks."""
    fast = threading.Thread(target=runner.invoke, args=("fast", "arn:fast", {"sleep": 0.0}))
    with runner.lock:
        fast.start()
        payload, errored, _ = runner.invoke("slow", "arn:slow", {"sleep": 0.3})
        assert fast.is_alive()  # still waiting for the lock
    fast.join(timeout=5)
    by_name = {inv.function_name: inv for inv in runner.invocations}
    assert not errored and by_name["slow"].ended < by_name["fast"].ended
    assert '"after": ["slow", true]' in payload
