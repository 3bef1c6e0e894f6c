"""The botocore ``before-send.medical-imaging`` hook that short-circuits HTTP and answers from the emulator.

Registered in ``botocore.handlers.BUILTIN_HANDLERS`` (every botocore session created afterwards, as moto does) and on
boto3's existing default session, if any. botocore calls the most specific handler first, so this hook answers before
moto's generic ``before-send`` stub inside ``mock_aws``; outside ``mock_aws`` no request ever reaches the network.
One stable dispatcher is registered (once): clients created while an earlier emulator was installed are routed to the
current one, and with none installed they get a 500 answer, never the network.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import botocore.handlers
from botocore.awsrequest import AWSResponse

EVENT = "before-send.medical-imaging"
Hook = Callable[..., AWSResponse]


class Answerer(Protocol):
    """What the hook routes requests to (``HealthImagingEmulator.handle``); the hook needs nothing else of it."""

    def handle(
        self, method: str, url: str, body: bytes | str | None, operation: str | None = None
    ) -> tuple[int, dict[str, str], bytes]: ...


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


def _no_emulator(request: Any) -> AWSResponse:
    body = b'{"message": "no HealthImaging emulator is installed in this process"}'
    headers = {"x-amzn-ErrorType": "InternalServerException", "Content-Type": "application/json"}
    return AWSResponse(request.url, 500, headers, _RawBody(body))


def _dispatch(request: Any, event_name: str, **_: Any) -> AWSResponse:
    """The one hook ever registered: it answers from whichever emulator is installed now.

    Registering a single, stable function (instead of one per emulator) means that clients created while an earlier
    emulator was installed — a warm Lambda module's cached client, say — are routed to the current one, and with
    no emulator installed they get a 500 answer instead of reaching the network.
    """
    emulator = _current[0] if _current else None
    if emulator is None:
        return _no_emulator(request)
    operation = event_name.rsplit(".", 1)[-1]
    status, headers, body = emulator.handle(request.method, request.url, _body_bytes(request.body), operation)
    headers = {**headers, "x-amzn-RequestId": str(uuid.uuid4())}
    return AWSResponse(request.url, status, headers, _RawBody(body))


_current: list[Answerer] = []


def install_hook(emulator: Answerer) -> Hook:
    with _guard:
        if _current:
            raise RuntimeError("another HealthImagingEmulator is installed; uninstall it first")
        if (EVENT, _dispatch) not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append((EVENT, _dispatch))
        _register_on_default_session(_dispatch)
        _current.append(emulator)
        _installed[id(_dispatch)] = _dispatch
    return _dispatch


def uninstall_hook(hook: Hook) -> None:
    """Detach the emulator. The dispatcher stays registered (answering 500s) so stale clients never go online."""
    with _guard:
        _installed.pop(id(hook), None)
        _current.clear()


def _register_on_default_session(hook: Hook) -> None:
    import boto3

    session = boto3.DEFAULT_SESSION
    if session is not None:
        session._session.unregister(EVENT, hook)
        session._session.register(EVENT, hook)
