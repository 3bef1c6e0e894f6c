"""``hicopy local``: the local runtime as a server on 127.0.0.1 that real AWS clients talk to.

One HTTP endpoint answers every service: moto's own server application (``DomainDispatcherApplication``: SQS,
EventBridge, Step Functions, DynamoDB, S3, Lambda, CloudFormation, CloudWatch, ...) behind a small WSGI router that
sends requests signed for ``medical-imaging`` (the service named in the SigV4 credential scope of the
``Authorization`` header) to the HealthImaging emulator, which parses them with botocore's own model.

The server runs in the process of a started ``LocalRuntime``, so both share moto's in-memory backends: a message the
AWS CLI sends over HTTP is the one the runtime's SQS poller hands to the consumer Lambda, an execution the consumer
starts in-process is the one ``hicopy status`` describes over HTTP. The handlers, the state machine and the
runtime's event loop (``LocalRuntime.pump``) run in this process; ``serve`` pumps until it is told to stop.

Clients need: the endpoint, region ``us-east-1``, any credentials (e.g. ``testing``/``testing``), and for
``medical-imaging`` no host prefix (botocore prefixes most of its operations with ``runtime-``, also on a custom
endpoint): ``AWS_DISABLE_HOST_PREFIX_INJECTION=true`` or botocore ``Config(inject_host_prefix=False)``.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offline.healthimaging import HealthImagingEmulator
    from offline.runtime import LocalRuntime

HOST = "127.0.0.1"  # never another interface: the server has no authentication
DEFAULT_PORT = 4599
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
CLIENT_ENV = {"AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
SERVICE = "medical-imaging"
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")  # region, service

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").title()] = environ[key]
    return headers


def _raw_path(environ: dict[str, Any]) -> str:
    """The path and query as sent (percent-encoded, as the services route them), not werkzeug's decoded PATH_INFO."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = environ.get("QUERY_STRING")
    return str(environ.get("PATH_INFO", "/")) + (f"?{query}" if query else "")


class Router:
    """The WSGI application: every request is answered in this process, by moto or the HealthImaging emulator.

    The service is the one the request was signed for (the SigV4 credential scope of ``Authorization``).
    ``medical-imaging`` goes to the emulator; every other service to moto's own request dispatcher (the one
    ``mock_aws`` answers in-process clients with, ``BotocoreStubber.process_request``), with the request's URL
    rewritten to the service's AWS host in the signed region, so the same backends, URL routes and the runtime's
    patches answer it. A request moto does not know gets a 404 naming the service."""

    def __init__(self, emulator: HealthImagingEmulator) -> None:
        from moto.core.botocore_stubber import BotocoreStubber

        self.emulator = emulator
        self.moto = BotocoreStubber()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = str(environ["REQUEST_METHOD"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
        path = _raw_path(environ)
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION") or "")
        service, region = (scope.group(2), scope.group(1)) if scope else (None, None)
        if service == SERVICE:
            url = f"http://{environ.get('HTTP_HOST', HOST)}{path}"
            status, headers, payload = self.emulator.handle(method, url, body)
            headers = {**headers, "x-amzn-RequestId": str(uuid.uuid4())}
        elif service is not None:
            status, headers, payload = self._moto(
                method, f"https://{service}.{region}.amazonaws.com{path}", _headers(environ), body
            )
        else:
            status, headers, payload = 403, {"Content-Type": "text/plain"}, b"unsigned request: sign it with SigV4"
        out = {str(k): str(v) for k, v in headers.items() if str(k).lower() not in _HOP_BY_HOP}
        out["Content-Length"] = str(len(payload))
        start_response(f"{status} {HTTPStatus(status).phrase}", list(out.items()))
        return [payload] if method != "HEAD" else []

    def _moto(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        from botocore.awsrequest import AWSPreparedRequest
        from botocore.compat import HTTPHeaders

        prepared_headers = HTTPHeaders()
        for key, value in headers.items():
            prepared_headers[key] = value
        request = AWSPreparedRequest(method=method, url=url, headers=prepared_headers, body=body, stream_output=False)
        answer = self.moto.process_request(request)
        if answer is None:
            return 404, {"Content-Type": "text/plain"}, f"not emulated here: {url}".encode()
        status, response_headers, payload = answer
        data = payload.encode() if isinstance(payload, str) else bytes(payload or b"")
        return int(status), dict(response_headers or {}), data


_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "server", "date"}


@dataclass(frozen=True)
class Endpoints:
    """What a client needs to know (``as_json`` for scripts)."""

    endpoint_url: str
    region: str
    stack_name: str
    job_queue_url: str
    dlq_url: str
    event_bus_name: str
    state_machine_arn: str
    datastore_id: str
    seeded: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "endpointUrl": self.endpoint_url,
            "region": self.region,
            "stackName": self.stack_name,
            "jobQueueUrl": self.job_queue_url,
            "deadLetterQueueUrl": self.dlq_url,
            "eventBusName": self.event_bus_name,
            "stateMachineArn": self.state_machine_arn,
            "datastoreId": self.datastore_id,
            "seeded": self.seeded,
            "clientEnvironment": {"AWS_DEFAULT_REGION": self.region, **CREDENTIALS, **CLIENT_ENV},
        }


class LocalServer:
    """Moto's server application plus the emulator on ``127.0.0.1:port`` (0: any free port), for a started
    runtime. ``start`` serves on a daemon thread; ``serve`` pumps the runtime until ``stop_event`` is set."""

    def __init__(self, rt: LocalRuntime, *, port: int = DEFAULT_PORT) -> None:
        self.rt = rt
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:  # no access log on stderr
                return None

        self._server = make_server(
            HOST, self.port, Router(self.rt.emulator), threaded=True, request_handler=QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="hicopy-local", daemon=True)
        self._thread.start()
        return self.endpoint_url

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def endpoints(self, seeded: dict[str, str] | None = None) -> Endpoints:
        from offline.runtime import REGION

        deployment = self.rt.deployment
        [stack] = self.rt.client("cloudformation").describe_stacks()["Stacks"]
        return Endpoints(
            endpoint_url=self.endpoint_url,
            region=REGION,
            stack_name=stack["StackName"],
            job_queue_url=deployment.job_queue_url,
            dlq_url=deployment.dlq_url,
            event_bus_name=deployment.event_bus_name,
            state_machine_arn=deployment.state_machine_arn,
            datastore_id=self.rt.datastore_id,
            seeded=dict(seeded or {}),
        )

    def serve(self, stop_event: threading.Event, *, interval: float = 0.02) -> None:
        """Drive the pipeline (SQS mappings, async invocations, emulator time) until ``stop_event`` is set."""
        while not stop_event.is_set():
            moved = self.rt.pump()
            if not moved:
                stop_event.wait(interval)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def describe(e: Endpoints) -> str:
    """What ``hicopy local`` prints for a person: where everything is and how to point a client at it."""
    lines = [
        f"hicopy local: the orchestrator is running at {e.endpoint_url} (region {e.region}); Ctrl-C stops it.",
        "",
        f"  endpoint           {e.endpoint_url}   (every service, including medical-imaging)",
        f"  stack              {e.stack_name}",
        f"  job queue          {e.job_queue_url}",
        f"  dead-letter queue  {e.dlq_url}",
        f"  event bus          {e.event_bus_name}",
        f"  state machine      {e.state_machine_arn}",
        f"  data store         {e.datastore_id}",
    ]
    if e.seeded:
        lines += ["", "  seeded:"] + [f"    {k:<26} {v}" for k, v in e.seeded.items()]
    lines += [
        "",
        "Point a client at it: any credentials, this region, and for medical-imaging no host prefix (botocore puts",
        "'runtime-' before the host of most of its operations, even on a custom endpoint):",
        f"  export AWS_DEFAULT_REGION={e.region} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing",
        "  export AWS_DISABLE_HOST_PREFIX_INJECTION=true",
        "  boto3: boto3.client(service, endpoint_url=..., region_name=..., "
        "config=botocore.config.Config(inject_host_prefix=False))",
        "  AWS CLI: pass --endpoint-url (for sqs, AWS CLI v1 ignores AWS_ENDPOINT_URL: it uses the queue URL's host)",
        "",
        f"  aws --endpoint-url {e.endpoint_url} sqs send-message --queue-url {e.job_queue_url} \\",
        "      --message-body file://job.json",
        f'  aws --endpoint-url {e.endpoint_url} events put-events --entries \'[{{"EventBusName": '
        f'"{e.event_bus_name}", "Source": "my.pacs", "DetailType": "Copy Requested", "Detail": "..."}}]\'',
        f"  aws --endpoint-url {e.endpoint_url} medical-imaging get-image-set --datastore-id {e.datastore_id} "
        "--image-set-id <id>",
        f"  hicopy --endpoint-url {e.endpoint_url} submit job.json --wait",
    ]
    return "\n".join(lines)


def wait_until_serving(url: str, timeout: float = 10.0) -> None:
    """Block until ``url`` accepts connections (bounded)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((parts.hostname, parts.port or 80), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
