"""End-to-end tests on the embedded local runtime: the real synthesized template, state machine and handlers.

One ``LocalRuntime`` per test (start-up ~1 s once the process has imported moto and the assembly is cached); the
cloud assembly is synthesized once per source change and cached on disk (``build/local-runtime``), so parallel
workers share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from offline.runtime import LocalRuntime

FAST = 0.01  # 100 virtual seconds per real second


@pytest.fixture
def make_runtime() -> Iterator[Callable[..., LocalRuntime]]:
    started: list[LocalRuntime] = []

    def make(**kwargs: Any) -> LocalRuntime:
        kwargs.setdefault("time_scale", FAST)
        rt = LocalRuntime(**kwargs)
        started.append(rt)
        return rt.start()

    yield make
    for rt in reversed(started):
        rt.stop()


@pytest.fixture
def rt(make_runtime: Callable[..., LocalRuntime]) -> LocalRuntime:
    return make_runtime()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A Lambda invocation that ends before adding a metric makes Powertools warn at flush; in AWS that is a log line.
    quiet = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(quiet)


@pytest.fixture
def rt_publish_broken(make_runtime: Callable[..., LocalRuntime]) -> LocalRuntime:
    """A runtime whose Publish function puts its events on a bus that does not exist: every PutEvents of the
    workflow's publisher fails (the safety net's own function is configured right)."""
    return make_runtime(env_overrides={"Publish": {"EVENT_BUS_NAME": "no-such-bus"}})
