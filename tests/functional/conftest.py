"""Handlers driven end to end against moto (SQS, EventBridge, DynamoDB, Step Functions API) and the HealthImaging
emulator, with a manual clock shared by the handlers and the emulator (no sleeping): ``tests/support``'s
environment, one per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.environment import AwsEnv, aws_environment
from tests.support.handlers import CTX, task_event

Stack = AwsEnv  # the ``stack`` fixture's type


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # The consolidate policy without deleting the sources.
    with aws_environment(monkeypatch, DELETE_AFTER_CONSOLIDATE="false") as env:
        yield env


def task(module: Any, state: dict[str, Any], retry: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = module.handler(task_event(state, retry), CTX)
    return result
