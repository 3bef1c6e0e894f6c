"""The botocore ``before-send.medical-imaging`` hook that short-circuits HTTP and answers from the emulator.

Registered in ``botocore.handlers.BUILTIN_HANDLERS`` (every botocore session created afterwards, as moto does) and on
boto3's existing default session, if any. botocore calls the most specific handler first, so this hook answers before
moto's generic ``before-send`` stub inside ``mock_aws``; outside ``mock_aws`` no request ever reaches the network.
Clients created *before* ``install`` keep their own copy of the handlers and are not routed.
"""

from __future__ import annotations

import contextlib
import io
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import botocore.handlers
from botocore.awsrequest import AWSResponse

if TYPE_CHECKING:
    from offline.healthimaging.emulator import HealthImagingEmulator

EVENT = "before-send.medical-imaging"
Hook = Callable[..., AWSResponse]

_installed: dict[int, Hook] = {}
_guard = threading.Lock()


class _RawBody(io.BytesIO):
    """What botocore expects of ``AWSResponse.raw`` (``stream()`` plus ``read()`` for streaming payloads)."""

    def stream(self, amt: int = 1024 * 64, **_: Any) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


def _body_bytes(body: Any) -> bytes | str | None:
    if body is None or isinstance(body, bytes | str):
        return body
    if hasattr(body, "read"):
        data = body.read()
        if hasattr(body, "seek"):
            body.seek(0)
        return data  # type: ignore[no-any-return]
    return bytes(body)


def install_hook(emulator: HealthImagingEmulator) -> Hook:
    def hook(request: Any, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        status, headers, body = emulator.handle(request.method, request.url, _body_bytes(request.body), operation)
        headers = {**headers, "x-amzn-RequestId": str(uuid.uuid4())}
        return AWSResponse(request.url, status, headers, _RawBody(body))

    with _guard:
        if _installed:
            raise RuntimeError("another HealthImagingEmulator is installed; uninstall it first")
        botocore.handlers.BUILTIN_HANDLERS.append((EVENT, hook))
        _register_on_default_session(hook)
        _installed[id(hook)] = hook
    return hook


def uninstall_hook(hook: Hook) -> None:
    with _guard:
        _installed.pop(id(hook), None)
        with contextlib.suppress(ValueError):
            botocore.handlers.BUILTIN_HANDLERS.remove((EVENT, hook))
        _unregister_on_default_session(hook)


def _register_on_default_session(hook: Hook) -> None:
    import boto3

    session = boto3.DEFAULT_SESSION
    if session is not None:
        session._session.register(EVENT, hook)


def _unregister_on_default_session(hook: Hook) -> None:
    import boto3

    session = boto3.DEFAULT_SESSION
    if session is not None:
        session._session.unregister(EVENT, hook)
