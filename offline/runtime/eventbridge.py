"""EventBridge rule-target delivery the way AWS does it, on top of moto's pattern matching.

moto 5.2.5 raises ``NotImplementedError`` for Lambda and Step Functions targets (inside ``PutEvents``), sends SQS
targets a body without the ``account`` key and ignores ``Input``/``InputPath``. ``EventRouter.route`` replaces
``Rule.send_to_targets``:

- the payload is the whole event in AWS shape (``version, id, detail-type, source, account, time, region,
  resources, detail``; ISO ``time``), or the target's ``Input`` / ``InputPath`` / ``InputTransformer`` result;
- SQS targets: ``SendMessage`` (``MessageGroupId`` for FIFO);
- Lambda targets: an asynchronous invocation (queued, run by the runtime's pump; Lambda's async retry policy and
  on-failure destination / function DLQ apply, see ``AsyncInvoker``);
- Step Functions targets: ``StartExecution`` with a UUID name;
- CloudWatch Logs, archives, other buses, API destinations: moto's own code;
- a delivery that fails goes to the target's ``DeadLetterConfig`` queue with EventBridge's message attributes
  (``ERROR_CODE``, ``ERROR_MESSAGE``, ``RULE_ARN``, ``TARGET_ARN``), as AWS does.

``default_bus_sink`` puts the HealthImaging emulator's events on the default bus, as the service does.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

LOG = logging.getLogger(__name__)
AWS_EVENT_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


def iso_time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, (int, float)):
        moment = dt.datetime.fromtimestamp(float(value), dt.UTC)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromtimestamp(float(value), dt.UTC)
        except ValueError:
            return value
    else:
        moment = dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def aws_shape(event: dict[str, Any]) -> dict[str, Any]:
    """The event as a target receives it from EventBridge (no moto-internal keys, ISO ``time``)."""
    shaped = {k: event.get(k) for k in AWS_EVENT_KEYS}
    shaped["version"] = shaped["version"] or "0"
    shaped["time"] = iso_time(event.get("time"))
    shaped["resources"] = shaped["resources"] or []
    return shaped


@dataclass
class PublishedEvent:
    """An event accepted by ``PutEvents`` on some bus (recorded for ``LocalRuntime.published_events``)."""

    bus: str
    event: dict[str, Any]
    recorded_at: float = field(default_factory=time.time)


@dataclass(order=True)
class _AsyncItem:
    due: float
    seq: int
    function_arn: str = field(compare=False)
    payload: Any = field(compare=False)
    attempt: int = field(compare=False, default=0)
    origin: str = field(compare=False, default="")


class AsyncInvoker:
    """Lambda's asynchronous invocation queue (``InvocationType=Event``) with its retry policy.

    A failed async invocation is retried ``MaximumRetryAttempts`` times (function event-invoke config, default 2)
    after 1 and 2 minutes (virtual time), then sent to the on-failure destination or the function's dead-letter
    queue (SQS or SNS) if one is configured, through ``clients`` (service name -> boto3 client). moto keeps
    neither a function's ``DeadLetterConfig`` nor acts on it, so ``dead_letter_targets`` (function ARN -> target
    ARN) comes from the template.
    """

    RETRY_DELAYS = (60.0, 120.0)

    def __init__(
        self,
        *,
        account: str,
        region: str,
        real_seconds: Callable[[float], float],
        clients: Callable[[str], Any],
        dead_letter_targets: dict[str, str] | None = None,
    ) -> None:
        self.dead_letter_targets = dead_letter_targets if dead_letter_targets is not None else {}
        self.account = account
        self.region = region
        self.real_seconds = real_seconds
        self.clients = clients
        self._queue: list[_AsyncItem] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._running = 0
        self.failures: list[dict[str, Any]] = []

    def submit(self, function_arn: str, payload: Any, *, origin: str = "") -> None:
        with self._lock:
            heapq.heappush(self._queue, _AsyncItem(time.monotonic(), next(self._seq), function_arn, payload, 0, origin))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._running

    def run_due(self) -> int:
        """Run every invocation that is due; returns how many ran."""
        ran = 0
        while True:
            with self._lock:
                if not self._queue or self._queue[0].due > time.monotonic():
                    return ran
                item = heapq.heappop(self._queue)
                self._running += 1
            try:
                self._run(item)
            finally:
                with self._lock:
                    self._running -= 1
            ran += 1

    def _run(self, item: _AsyncItem) -> None:
        from moto.awslambda.utils import get_backend

        backend = get_backend(self.account, self.region)
        headers: dict[str, str] = {}
        error: str | None = None
        try:
            body = backend.invoke(item.function_arn, None, json.dumps(item.payload), {}, headers)
            if headers.get("x-amz-function-error"):
                error = body.decode() if isinstance(body, bytes) else str(body)
        except Exception as exc:
            error = json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)})
        if error is None:
            return
        config = self._invoke_config(backend, item.function_arn)
        max_retries = int(config.get("MaximumRetryAttempts", 2))
        if item.attempt < max_retries:
            delay = self.RETRY_DELAYS[min(item.attempt, len(self.RETRY_DELAYS) - 1)]
            with self._lock:
                heapq.heappush(
                    self._queue,
                    _AsyncItem(
                        time.monotonic() + self.real_seconds(delay),
                        next(self._seq),
                        item.function_arn,
                        item.payload,
                        item.attempt + 1,
                        item.origin,
                    ),
                )
            return
        record = {"function": item.function_arn, "payload": item.payload, "error": error, "attempts": item.attempt + 1}
        self.failures.append(record)
        parsed = _loads(error)
        request_id = str(uuid.uuid4())
        message = str(parsed.get("errorMessage", "")) if isinstance(parsed, dict) else str(parsed)
        destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if destination:  # an on-failure destination gets the invocation record
            record_body: Any = {
                "version": "1.0",
                "timestamp": dt.datetime.now(dt.UTC).isoformat(),
                "requestContext": {
                    "requestId": request_id,
                    "functionArn": item.function_arn,
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": item.attempt + 1,
                },
                "requestPayload": item.payload,
                "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
                "responsePayload": parsed,
            }
            self._send_failure(destination, record_body, {})
        elif item.function_arn in self.dead_letter_targets:  # a dead-letter queue gets the event itself
            self._send_failure(
                self.dead_letter_targets[item.function_arn],
                item.payload,
                {"RequestID": request_id, "ErrorCode": "200", "ErrorMessage": message[:256]},
            )

    def _send_failure(self, target: str, body: Any, attributes: dict[str, str]) -> None:
        """Deliver a failed invocation to an SQS queue or SNS topic (dead-letter queue or on-failure destination)."""
        message = body if isinstance(body, str) else json.dumps(body)
        message_attributes = {k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()}
        if ":sqs:" in target:
            sqs = self.clients("sqs")
            url = sqs.get_queue_url(QueueName=target.rsplit(":", 1)[-1])["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=message, MessageAttributes=message_attributes)
        elif ":sns:" in target:
            self.clients("sns").publish(TopicArn=target, Message=message, MessageAttributes=message_attributes)

    @staticmethod
    def _invoke_config(backend: Any, function_arn: str) -> dict[str, Any]:
        try:
            config: dict[str, Any] = backend.get_function_event_invoke_config(function_arn)
            return config
        except Exception:
            return {}


def default_bus_sink(clients: Callable[[str], Any], source: str) -> Callable[[str, Mapping[str, Any], list[str]], None]:
    """An emulator's ``event_sink``: each event goes to the default bus with ``source`` (the service's own)."""

    def put(detail_type: str, detail: Mapping[str, Any], resources: list[str]) -> None:
        entry = {
            "Source": source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail),
            "Resources": list(resources),
        }
        result = clients("events").put_events(Entries=[entry])
        if result.get("FailedEntryCount"):
            LOG.warning("could not put %s on the default bus: %s", detail_type, result["Entries"])

    return put


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class EventRouter:
    """Delivers rule targets (installed as ``Rule.send_to_targets``) and records every accepted event."""

    def __init__(self, *, account: str, region: str, async_invoker: AsyncInvoker) -> None:
        self.account = account
        self.region = region
        self.async_invoker = async_invoker
        self.published: list[PublishedEvent] = []
        self.deliveries: list[dict[str, Any]] = []
        self.on_publish: Callable[[PublishedEvent], None] | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------------ recording

    def record(self, backend: Any, events: list[dict[str, Any]], entries: list[dict[str, Any]]) -> None:
        for raw, entry in zip(events, entries, strict=False):
            event_id = entry.get("EventId")
            if not event_id:
                continue
            try:
                detail = json.loads(raw.get("Detail") or "null")
            except ValueError:
                detail = raw.get("Detail")
            bus = backend._normalize_event_bus_arn(raw.get("EventBusName"))
            published = PublishedEvent(
                bus=bus,
                event={
                    "version": "0",
                    "id": event_id,
                    "detail-type": raw.get("DetailType"),
                    "source": raw.get("Source"),
                    "account": backend.account_id,
                    "time": iso_time(raw.get("Time", time.time())),
                    "region": backend.region_name,
                    "resources": list(raw.get("Resources") or []),
                    "detail": detail,
                },
            )
            with self._lock:
                self.published.append(published)
            if self.on_publish is not None:
                try:
                    self.on_publish(published)
                except Exception:  # pragma: no cover - progress output must never break PutEvents
                    LOG.exception("on_publish callback failed")

    # ------------------------------------------------------------------------------------------------ delivery

    def route(self, rule: Any, event: dict[str, Any], transform_input: bool, original: Callable[..., Any]) -> None:
        if getattr(rule, "state", "ENABLED") != "ENABLED":
            return
        if not rule.event_pattern.matches_event(event):
            return
        from moto.utilities.arns import parse_arn

        for target in list(rule.targets):
            arn = parse_arn(target["Arn"])
            try:
                if arn.service in ("sqs", "lambda", "states"):
                    payload = self._payload(target, event) if transform_input else aws_shape(event)
                    self._deliver(arn, target, payload)
                else:
                    with self._lock:
                        saved, rule.targets = rule.targets, [target]
                        try:
                            original(rule, event, transform_input)
                        finally:
                            rule.targets = saved
                self.deliveries.append({"rule": rule.arn, "target": target["Arn"], "ok": True})
            except Exception as exc:
                LOG.warning("EventBridge delivery to %s failed: %s", target["Arn"], exc)
                self.deliveries.append({"rule": rule.arn, "target": target["Arn"], "ok": False, "error": str(exc)})
                self._dead_letter(rule, target, event, exc)

    def _payload(self, target: dict[str, Any], event: dict[str, Any]) -> Any:
        whole = aws_shape(event)
        if "Input" in target and target["Input"] is not None:
            return _loads(target["Input"])
        if target.get("InputPath"):
            from jsonpath_ng import ext  # moto's own dependency

            matches = ext.parse(target["InputPath"]).find(whole)  # type: ignore[attr-defined]
            return matches[0].value if matches else None
        if target.get("InputTransformer"):
            from moto.events.utils import EventTemplateParser

            transformer = target["InputTransformer"]
            return EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event=cast(Any, {**whole, "ingestion-time": event.get("ingestion-time", time.time())}),
            )
        return whole

    def _deliver(self, arn: Any, target: dict[str, Any], payload: Any) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        if arn.service == "sqs":
            from moto.sqs.models import sqs_backends

            group_id = (target.get("SqsParameters") or {}).get("MessageGroupId")
            sqs_backends[arn.account][arn.region].send_message(
                queue_name=arn.resource_id, message_body=body, group_id=group_id
            )
        elif arn.service == "lambda":
            from moto.awslambda.utils import get_backend

            get_backend(arn.account, arn.region).get_function(target["Arn"])  # raises if it does not exist
            self.async_invoker.submit(target["Arn"], payload, origin="events")
        else:
            from moto.stepfunctions.responses import get_backend as sfn_backend

            sfn_backend(arn.account, arn.region).start_execution(target["Arn"], str(uuid.uuid4()), body)

    def _dead_letter(self, rule: Any, target: dict[str, Any], event: dict[str, Any], exc: Exception) -> None:
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not dlq:
            return
        from moto.sqs.models import sqs_backends
        from moto.utilities.arns import parse_arn

        arn = parse_arn(dlq)
        attributes = {
            "ERROR_CODE": {"DataType": "String", "StringValue": type(exc).__name__},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": str(exc)[:256] or "delivery failed"},
            "RULE_ARN": {"DataType": "String", "StringValue": rule.arn},
            "TARGET_ARN": {"DataType": "String", "StringValue": target["Arn"]},
        }
        try:
            sqs_backends[arn.account][arn.region].send_message(
                queue_name=arn.resource_id, message_body=json.dumps(aws_shape(event)), message_attributes=attributes
            )
        except Exception:
            LOG.exception("could not dead-letter an event to %s", dlq)
