"""Every AWS operation a handler performs, recorded by handler, and the AWS service limits moto does not enforce
(checked on every recorded call). The security suite checks the IAM policies against the recording; the fuzz and
security suites assert that no call would break a limit."""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers

# --- AWS limits moto does not enforce (checked on every recorded call) -------------------------------------------
PUT_EVENTS_ENTRY_LIMIT = 256 * 1024  # bytes per PutEvents entry (EventBridge quota)
EXECUTION_INPUT_LIMIT = 256 * 1024  # bytes of StartExecution input (Step Functions quota)


_SQS_REFUSED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_text_problem(text: str) -> str | None:
    """SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF in bodies and attributes."""
    found = _SQS_REFUSED.search(text)
    if found is None:
        return None
    return f"character U+{ord(found.group()):04X} at {found.start()} is not allowed by SQS"


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def limit_problems(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """What the real service would refuse in this call (moto accepts it)."""
    problems: list[str] = []
    if service == "sqs" and operation == "SendMessage":
        if (p := sqs_text_problem(params.get("MessageBody", ""))) is not None:
            problems.append(f"SendMessage body: {p}")
        for name, value in (params.get("MessageAttributes") or {}).items():
            if (p := sqs_text_problem(value.get("StringValue", ""))) is not None:
                problems.append(f"SendMessage attribute {name}: {p}")
    elif service == "events" and operation == "PutEvents":
        for entry in params.get("Entries", []):
            # EventBridge's documented entry size: Time (14) + Source + DetailType + Detail + Resources, UTF-8.
            size = 14 + sum(_utf8_len(entry.get(k, "")) for k in ("Source", "DetailType", "Detail"))
            size += sum(_utf8_len(r) for r in entry.get("Resources", []))
            if size > PUT_EVENTS_ENTRY_LIMIT:
                problems.append(f"PutEvents {entry.get('DetailType')}: entry is {size} bytes (limit 256 KiB)")
    elif service == "stepfunctions" and operation == "StartExecution":
        size = _utf8_len(params.get("input", ""))
        if size > EXECUTION_INPUT_LIMIT:
            problems.append(f"StartExecution {params.get('name')}: input is {size} bytes (limit 256 KiB)")
    return problems


# --- recording the AWS operations a handler performs --------------------------------------------------------------
_EMULATOR_DIR = str(Path(__file__).resolve().parents[2] / "offline")  # the emulator's own calls are not recorded


@dataclass(frozen=True)
class Call:
    handler: str  # e.g. "hicopy.handlers.submit.handler", as in the template's Handler property
    service: str  # botocore service name: medical-imaging, sqs, events, stepfunctions, dynamodb, s3
    operation: str  # API operation name, e.g. CopyImageSet
    params: dict[str, Any]


def _copy(params: dict[str, Any]) -> dict[str, Any]:
    try:
        return copy.deepcopy(params)
    except Exception:  # a streaming body, say: keep the rest
        return dict(params)


@dataclass
class CallRecorder:
    """A botocore ``before-parameter-build`` handler: every API call any client makes while a handler runs.

    Registered in ``botocore.handlers.BUILTIN_HANDLERS`` (sessions created later) and on boto3's default session
    (clients created later), like the emulator's hook; the handlers create their clients lazily, after their caches
    are cleared, so every client they use goes through it. Calls made by the emulator itself are not the handler's.
    """

    calls: list[Call] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # AWS limits the call would break
    handler: str | None = None

    def __repr__(self) -> str:  # botocore logs handlers at DEBUG: never the recorded parameters
        return f"<CallRecorder {len(self.calls)} calls>"

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.handler is None or self._from_emulator():
            return
        service, operation = model.service_model.service_name, model.name
        self.calls.append(Call(self.handler, service, operation, _copy(params)))
        self.problems += [f"{self.handler}: {p}" for p in limit_problems(service, operation, params)]

    @staticmethod
    def _from_emulator() -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename.startswith(_EMULATOR_DIR):
                return True
            frame = frame.f_back  # type: ignore[assignment]
        return False

    @contextmanager
    def running(self, handler: str) -> Iterator[None]:
        previous, self.handler = self.handler, handler
        try:
            yield
        finally:
            self.handler = previous

    def install(self) -> None:
        botocore.handlers.BUILTIN_HANDLERS.append(("before-parameter-build", self))
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION._session.register("before-parameter-build", self)

    def uninstall(self) -> None:
        if ("before-parameter-build", self) in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.remove(("before-parameter-build", self))
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION._session.unregister("before-parameter-build", self)

    def of(self, handler: str) -> list[Call]:
        return [c for c in self.calls if c.handler == handler]

    def clear(self) -> None:
        self.calls.clear()
        self.problems.clear()
