"""Fixtures for the HealthImaging emulator tests.

Every ``medical-imaging`` response any client receives during a test is validated against botocore's output shape
(``after-call`` handler in ``BUILTIN_HANDLERS``); a test fails at teardown if one did not fit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.handlers
import pytest
from botocore.config import Config

from offline.clock import ManualClock
from offline.healthimaging import HealthImagingEmulator, install, validate_response
from tests.emulator.helpers import STALE_ANSWERS

REGION = "us-east-1"
NO_RETRIES = Config(retries={"total_max_attempts": 1})


class ResponseLog:
    def __init__(self) -> None:
        self.checked: list[str] = []
        self.problems: list[tuple[str, list[str]]] = []

    def __call__(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if http_response.status_code >= 300:
            error = parsed.get("Error", {})
            problems = [] if error.get("Code") and error.get("Message") else [f"bad error body: {error}"]
        else:
            problems = validate_response(model.name, parsed)
        self.checked.append(model.name)
        if problems:
            self.problems.append((model.name, problems))


_logs: list[ResponseLog] = []


def _validate(**kwargs: Any) -> None:
    if _logs:
        _logs[-1](**kwargs)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def shared_session() -> boto3.session.Session:
    """One boto3 session for the suite (a fresh session per test costs ~0.3 s of model loading)."""
    session = boto3.session.Session(region_name=REGION)
    session._session.register("after-call.medical-imaging", _validate)
    return session


@pytest.fixture(autouse=True)
def responses(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, shared_session: boto3.session.Session
) -> Iterator[ResponseLog]:
    """Validates every medical-imaging response of the test against the model's output shape.

    The shared session is boto3's default session during the test; sessions the test creates itself (or moto's
    ``mock_aws`` creates) get the validator from ``BUILTIN_HANDLERS``.
    """
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", shared_session)
    log = ResponseLog()
    _logs.append(log)
    entry = ("after-call.medical-imaging", _validate)
    botocore.handlers.BUILTIN_HANDLERS.append(entry)
    try:
        yield log
    finally:
        botocore.handlers.BUILTIN_HANDLERS.remove(entry)
        _logs.pop()
    assert not log.problems, f"responses that do not fit the model: {log.problems}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def events() -> list[tuple[str, dict[str, Any], list[str]]]:
    return []


@pytest.fixture
def emu(clock: ManualClock, events: list[tuple[str, dict[str, Any], list[str]]]) -> Iterator[HealthImagingEmulator]:
    emulator = HealthImagingEmulator(
        clock=clock,
        copy_duration=2.0,
        event_sink=lambda t, d, r: events.append((t, d, r)),
        throttling=False,
        background=False,
        seed=7,
    )
    with install(emulator):
        yield emulator
    assert not emulator.effect_errors


@pytest.fixture
def mi(emu: HealthImagingEmulator) -> Any:
    """A real boto3 client (retries off, so that each error is seen once)."""
    return boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)


@pytest.fixture
def ds(emu: HealthImagingEmulator) -> str:
    return emu.create_datastore("test-store")


@pytest.fixture(params=list(STALE_ANSWERS))
def stale_answer(request: pytest.FixtureRequest, emu: HealthImagingEmulator) -> tuple[str, int, str | None]:
    """Runs the test once with each ``stale_version_error`` answer; returns (code, status, message or None)."""
    code: str = request.param
    emu.settings.stale_version_error = code
    return (code, *STALE_ANSWERS[code])
