"""Every moto internal the local runtime replaces, in one place (moto is pinned at exactly 5.2.5).

Each patch is listed in ``PATCH_POINTS`` with the signature it expects; ``tests/e2e/test_moto_canaries.py`` checks
them, so a moto upgrade that moves or changes one fails loudly instead of silently falling back to moto's behaviour.

- ``LambdaFunction._invoke_lambda``: moto starts a Docker container -> run the handler in-process
  (``LambdaRunner``);
- ``Rule.send_to_targets``: moto raises ``NotImplementedError`` for Lambda/Step Functions targets, and its SQS
  bodies lack ``account`` and ignore ``Input``/``InputPath`` -> deliver every target like EventBridge does;
- ``EventsBackend.put_events`` (wrapped, not replaced) -> record every event put on every bus, with its envelope
  ``time`` on the runtime's virtual clock when the caller sets none;
- ``StepFunctionsParserBackend.start_execution``: unnamed executions are all named ``None`` (the second one fails
  with ``ExecutionAlreadyExists``) -> a UUID name, as AWS does;
- ``Execution.get_start_execution_details``: the context object's ``$$.Execution.StartTime`` is the wall clock ->
  the runtime clock (what the task functions' clock reads, as in AWS where both are the same clock);
- ``retrier_decl.time`` (module global): ``Retry`` sleeps in real seconds -> scaled with the runtime clock;
- ``WaitFunction._wait_interval``: ``Wait`` sleeps in real seconds -> scaled with the runtime clock;
- ``Timeout._eval_body``: a task's ``TimeoutSeconds``/``TimeoutSecondsPath`` (AwaitCopy's callback wait) runs out in
  real seconds -> scaled with the runtime clock (moto's ``.waitForTaskToken`` and ``SendTaskSuccess`` themselves
  work as AWS documents them: see ``tests/e2e/test_moto_canaries.py``);
- ``Timestamp._get_wait_seconds``: ``Timestamp``/``TimestampPath`` compare with the wall clock -> the runtime clock;
- ``Program.eval``: the state machine's ``TimeoutSeconds`` is waited in real seconds -> scaled with the runtime clock
  (an execution still running then ends ``TIMED_OUT``, as in AWS);
- ``sqs.models.Message.delay``: ``DelaySeconds`` (a deferred job's copy) counts real seconds -> the runtime clock;
- ``lambda_eval_utils.boto_client_for``: a new boto3 Lambda client for every Lambda task (~40 ms each) -> one
  cached client per runtime;
- ``botocore.session.create_loader`` (botocore, not moto): every new botocore session (moto resets boto3's default
  session for each mock, and each Lambda container creates clients) parses the service models again (~0.1 s per
  service) -> one shared, memoized loader per search path;
- ``SQSBackend.change_message_visibility`` (wrapped, not replaced): a handler that delays a message (the consumer
  after a failed rejection) sets a visibility timeout in real seconds -> reported to ``on_visibility`` so that the
  SQS poller releases the message after that many *virtual* seconds;
- ``StepFunctionResponse.get_execution_history``: ``reverseOrder`` is ignored (always oldest first) -> newest first
  when asked, as AWS does (the safety net reads the last task state);
- ``Environment.set_error``: an error raised after the execution was stopped or timed out (a task or a Retry
  back-off still under way) overwrites ABORTED/TIMED_OUT with FAILED -> ignored once the program no longer runs, as
  ``set_ended``/``set_stop`` already are (AWS: a stopped execution is ABORTED);
- ``Program.eval``: the state machine's ``TimeoutSeconds`` is waited for in real seconds -> scaled with the runtime
  clock (an execution times out after its virtual timeout);
- ``Environment.as_inner_frame_of`` and ``lambda_eval_utils.execute_lambda_function_integration``: a task state's
  thread runs on after its frame ended (the state's timeout, the execution's, StopExecution), and recorded events
  with values popped from the wrong place (a TaskScheduled whose timeout was the state's input: GetExecutionHistory
  failed to serialize) -> a frame that no longer runs records no event and invokes no Lambda function, as in AWS;
- ``ExecutionState._evaluate_with_timeout``: a state that ran out of its time took its late thread's last exception
  over the timeout -> the timeout, as in AWS (moto's function otherwise unchanged);
- ``cloudformation.models.Stack.parse_template``: every template goes through PyYAML's pure-Python loader
  (0.3-1 s for ours) -> ``json.loads`` first (same result for JSON), YAML otherwise.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import threading
import time
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from offline.clock import ScaledClock
from offline.runtime.eventbridge import EventRouter
from offline.runtime.lambdas import LambdaRunner

MOTO_VERSION = "5.2.5"
_MISSING = object()


@dataclass(frozen=True)
class PatchPoint:
    module: str
    owner: str  # class name, or "" for a module attribute
    attribute: str
    parameters: tuple[str, ...] | None  # expected parameter names (None: not a function)


PATCH_POINTS: tuple[PatchPoint, ...] = (
    PatchPoint("moto.awslambda.models", "LambdaFunction", "_invoke_lambda", ("self", "event")),
    PatchPoint("moto.events.models", "Rule", "send_to_targets", ("self", "original_event", "transform_input")),
    PatchPoint("moto.events.models", "EventsBackend", "put_events", ("self", "events")),
    PatchPoint(
        "moto.stepfunctions.parser.models",
        "StepFunctionsParserBackend",
        "start_execution",
        ("self", "state_machine_arn", "name", "execution_input", "trace_header"),
    ),
    PatchPoint("moto.stepfunctions.parser.backend.execution", "Execution", "get_start_execution_details", ("self",)),
    PatchPoint("moto.stepfunctions.parser.asl.component.common.retry.retrier_decl", "", "time", None),
    PatchPoint(
        "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function",
        "WaitFunction",
        "_wait_interval",
        ("self", "env", "wait_seconds"),
    ),
    PatchPoint(
        "moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp",
        "Timestamp",
        "_get_wait_seconds",
        ("self", "env"),
    ),
    PatchPoint(
        "moto.stepfunctions.parser.asl.component.common.timeouts.timeout", "Timeout", "_eval_body", ("self", "env")
    ),
    PatchPoint("moto.cloudformation.models", "Stack", "parse_template", ("template",)),
    PatchPoint("moto.stepfunctions.parser.asl.component.program.program", "Program", "eval", ("self", "env")),
    PatchPoint("moto.sqs.models", "Message", "delay", ("self", "delay_seconds")),
    PatchPoint(
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
        "",
        "boto_client_for",
        ("region", "service", "state_credentials"),
    ),
    PatchPoint("botocore.session", "", "create_loader", ("search_path_string",)),
    PatchPoint(
        "moto.sqs.models",
        "SQSBackend",
        "change_message_visibility",
        ("self", "queue_name", "receipt_handle", "visibility_timeout"),
    ),
    PatchPoint("moto.stepfunctions.parser.asl.component.program.program", "Program", "eval", ("self", "env")),
    PatchPoint("moto.stepfunctions.responses", "StepFunctionResponse", "get_execution_history", ("self",)),
    PatchPoint("moto.stepfunctions.parser.asl.eval.environment", "Environment", "set_error", ("self", "error")),
    PatchPoint(
        "moto.stepfunctions.parser.asl.eval.environment",
        "Environment",
        "as_inner_frame_of",
        ("env", "variable_store", "event_history_frame_cache"),
    ),
    PatchPoint(
        "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
        "ExecutionState",
        "_evaluate_with_timeout",
        ("self", "env"),
    ),
    PatchPoint(
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
        "",
        "execute_lambda_function_integration",
        ("env", "parameters", "region", "state_credentials"),
    ),
)

# Other moto internals read (not replaced); also checked by the canary tests.
READ_POINTS: tuple[PatchPoint, ...] = (
    PatchPoint("moto.stepfunctions.models", "StepFunctionBackend", "describe_state_machine", ("self", "arn")),
    PatchPoint("moto.stepfunctions.models", "", "stepfunctions_backends", None),
    PatchPoint("moto.events.models", "", "events_backends", None),
    PatchPoint("moto.events.utils", "EventTemplateParser", "parse", ("input_template", "input_paths_map", "event")),
    PatchPoint("moto.utilities.arns", "", "parse_arn", ("arn",)),
    PatchPoint("moto.awslambda.utils", "", "get_backend", ("account_id", "region")),
    PatchPoint("moto.stepfunctions.responses", "", "get_backend", ("account", "region")),
    PatchPoint("moto.sqs.models", "", "sqs_backends", None),
    PatchPoint("moto.sqs.models", "Queue", "approximate_number_of_messages", None),
    PatchPoint("moto.sqs.models", "Queue", "approximate_number_of_messages_not_visible", None),
    PatchPoint("moto.sqs.models", "Queue", "approximate_number_of_messages_delayed", None),
    PatchPoint("moto.stepfunctions.parser.models", "", "stepfunctions_parser_backends", None),
    PatchPoint("moto.cloudformation.models", "", "cloudformation_backends", None),
    PatchPoint("moto.cloudformation.parsing", "", "clean_json", ("resource_json", "resources_map")),
    PatchPoint(
        "moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp",
        "Timestamp",
        "_from_timestamp_string",
        ("timestamp",),
    ),
)


def resolve(point: PatchPoint) -> tuple[Any, Any]:
    """(owner object, current attribute value) of a patch point."""
    import importlib

    module = importlib.import_module(point.module)
    owner = getattr(module, point.owner) if point.owner else module
    return owner, getattr(owner, point.attribute)


def parameters_of(func: Any) -> tuple[str, ...]:
    func = inspect.unwrap(func)
    if isinstance(func, staticmethod):
        func = func.__func__
    return tuple(inspect.signature(func).parameters)


_LOADERS: dict[str | None, Any] = {}
_LOADERS_LOCK = threading.Lock()


def _shared_loader(search_path_string: str | None = None) -> Any:
    """``botocore.loaders.create_loader``, memoized: one Loader (and its parsed-model cache) per search path."""
    from botocore.loaders import create_loader

    with _LOADERS_LOCK:
        if search_path_string not in _LOADERS:
            _LOADERS[search_path_string] = create_loader(search_path_string)
        return _LOADERS[search_path_string]


@dataclass(frozen=True)
class RetrySleep:
    """One Step Functions ``Retry`` back-off, as the interpreter computed it (after MaxDelay and jitter)."""

    at: float  # wall-clock time the sleep started (time.time())
    seconds: float  # virtual seconds requested; the real sleep is seconds * time_scale
    thread: str  # the execution's worker thread


class _FrameEvents:
    """A frame's view of the execution's event manager: events of a frame that no longer runs are dropped. The
    check and the append hold the frame's state lock, which ``set_ended``/``set_stop``/``set_timed_out`` take too."""

    def __init__(self, events: Any, frame: Any) -> None:
        self._events, self._frame = events, frame

    def add_event(self, context: Any, *args: Any, **kwargs: Any) -> Any:
        with self._frame._state_mutex:
            if not self._frame.is_running():
                return context.last_published_event_id
            return self._events.add_event(context, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._events, name)


def _evaluate_with_timeout(state: Any, env: Any) -> None:
    """``ExecutionState._evaluate_with_timeout`` of moto 5.2.5, with one change: a state that ran out of its time
    raises ``EvalTimeoutError`` whatever its thread raised after that. moto ended the frame and then took the
    thread's last exception, so the late thread's own error (the one ``_apply_ended_frames`` raises, or any other)
    could replace the timeout: the state then failed instead of timing out."""
    import copy

    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
    from moto.stepfunctions.parser.utils import TMP_THREADS

    state.timeout.eval(env=env)
    timeout_seconds = env.stack.pop()
    frame = env.open_frame()
    frame.states.reset(input_value=env.states.get_input())
    frame.stack = copy.deepcopy(env.stack)
    execution_outputs: list[Any] = []
    execution_exceptions: list[Exception | None] = [None]
    terminated_event = threading.Event()

    def _exec_and_notify() -> None:
        try:
            state._eval_execution(frame)
            execution_outputs.extend(frame.stack)
        except Exception as ex:
            execution_exceptions.append(ex)
        terminated_event.set()

    thread = threading.Thread(target=_exec_and_notify, daemon=True)
    TMP_THREADS.append(thread)
    thread.start()
    finished_on_time = terminated_event.wait(timeout_seconds)
    frame.set_ended()
    env.close_frame(frame)
    if not finished_on_time:
        raise EvalTimeoutError()
    execution_exception = execution_exceptions.pop()
    if execution_exception:
        raise execution_exception
    execution_output = execution_outputs.pop()
    env.stack.append(execution_output)
    if not state._is_language_query_jsonpath():
        env.states.set_result(execution_output)
    if state.assign_decl:
        state.assign_decl.eval(env=env)
    if state.result_selector:
        state.result_selector.eval(env=env)
    if state.result_path:
        state.result_path.eval(env)
    else:
        res = env.stack.pop()
        env.states.reset(input_value=res)


class Patcher:
    """Sets attributes of classes and modules (``_set``) and puts every one back as it was (``undo``), in reverse
    order; an attribute a class only inherited is deleted again rather than copied onto it."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    def _set(self, owner: Any, name: str, value: Any) -> None:
        own = owner.__dict__.get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name)
        self._undo.append((owner, name, own))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self._undo:
            owner, name, value = self._undo.pop()
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


class MotoPatches(Patcher):
    """Applies the patches on ``apply()``; ``undo()`` restores moto exactly.

    The patched functions hand over to the runtime's parts: Lambda invocations to ``runner``, rule targets and
    accepted events to ``router``; ``Retry`` and ``Wait`` run on ``clock``, and each ``Retry`` back-off is recorded
    in ``retry_sleeps``.
    """

    def __init__(
        self,
        *,
        runner: LambdaRunner,
        router: EventRouter,
        clock: ScaledClock,
        retry_sleeps: list[RetrySleep],
        on_visibility: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__()
        self.runner = runner
        self.router = router
        self.clock = clock
        self.retry_sleeps = retry_sleeps
        self.on_visibility = on_visibility

    def apply(self) -> None:
        from moto.awslambda.models import LambdaFunction
        from moto.events.models import EventsBackend, Rule
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function import timestamp as ts_mod
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function as wf_mod
        from moto.stepfunctions.parser.backend.execution import Execution
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        runner, router, clock, retry_sleeps = self.runner, self.router, self.clock, self.retry_sleeps

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            return runner.invoke(fn.function_name, fn.function_arn, event)

        self._set(LambdaFunction, "_invoke_lambda", _invoke_lambda)

        original_send = Rule.send_to_targets

        def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
            router.route(rule, original_event, transform_input, original_send)

        self._set(Rule, "send_to_targets", send_to_targets)

        original_put = EventsBackend.put_events

        def put_events(backend: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            # The envelope's ``time`` on the virtual clock, like the detail's times (moto would use the real one).
            events = [event if event.get("Time") else {**event, "Time": clock.now()} for event in events]
            entries: list[dict[str, Any]] = original_put(backend, events)
            router.record(backend, events, entries)
            return entries

        self._set(EventsBackend, "put_events", put_events)

        original_start = StepFunctionsParserBackend.start_execution

        def start_execution(
            backend: Any,
            state_machine_arn: str,
            name: Any = None,
            execution_input: Any = None,
            trace_header: Any = None,
        ) -> Any:
            return original_start(backend, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

        self._set(StepFunctionsParserBackend, "start_execution", start_execution)

        original_details = Execution.get_start_execution_details

        def get_start_execution_details(execution: Any) -> Any:
            details = original_details(execution)
            details.start_time = dt.datetime.fromtimestamp(clock.now(), tz=dt.UTC)  # type: ignore[misc,assignment]
            return details

        self._set(Execution, "get_start_execution_details", get_start_execution_details)

        real_time = retrier_decl.time  # type: ignore[attr-defined]

        def scaled_sleep(seconds: float) -> None:
            retry_sleeps.append(RetrySleep(time.time(), float(seconds), threading.current_thread().name))
            if seconds > 0:
                real_time.sleep(clock.real_seconds(seconds))

        scaled_time = types.SimpleNamespace(
            **{k: getattr(real_time, k) for k in dir(real_time) if not k.startswith("__")}
        )
        scaled_time.sleep = scaled_sleep
        self._set(retrier_decl, "time", scaled_time)

        def _wait_interval(wait_fn: Any, env: Any, wait_seconds: float) -> None:
            if wait_seconds > 0:
                env.program_state_event.wait(clock.real_seconds(wait_seconds))

        self._set(wf_mod.WaitFunction, "_wait_interval", _wait_interval)
        self._scale_message_delays(clock)

        from_string = ts_mod.Timestamp._from_timestamp_string

        def _get_wait_seconds(wait_fn: Any, env: Any) -> int:
            wait_fn.string.eval(env=env)
            timestamp_str: str = env.stack.pop()
            timestamp = from_string(timestamp=timestamp_str)
            if timestamp is None:
                from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
                    FailureEventException,
                )

                raise FailureEventException(wait_fn._create_failure_event(env, timestamp_str))
            target = timestamp.replace(tzinfo=dt.UTC).timestamp()
            return int(target - clock.now())

        self._set(ts_mod.Timestamp, "_get_wait_seconds", _get_wait_seconds)

        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import Timeout
        from moto.stepfunctions.parser.asl.utils.json_path import extract_json

        def _eval_timeout(timeout: Any, env: Any) -> None:
            # Both of moto's waits read this value: the task's own (ExecutionState) and the callback's, each on its
            # own frame. moto's TimeoutSecondsPath reads its input from the top of the frame's stack; the path is read
            # from the state's input instead, which is what AWS evaluates it against. (A thread whose frame ended
            # evaluated nothing here and popped the input as its timeout: see ``_apply_ended_frames``.)
            json_path = getattr(getattr(timeout, "string_sampler", None), "json_path", None)
            if isinstance(json_path, str):
                seconds = extract_json(json_path, env.states.get_input())
            else:
                seconds = timeout._eval_seconds(env=env)
            env.stack.append(clock.real_seconds(seconds))

        self._set(Timeout, "_eval_body", _eval_timeout)

        from moto.cloudformation.models import Stack

        yaml_parse = Stack.parse_template

        def parse_template(template: str) -> Any:
            try:
                return json.loads(template)
            except ValueError:
                return yaml_parse(template)

        self._set(Stack, "parse_template", staticmethod(parse_template))

        from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

        make_client = lambda_eval_utils.boto_client_for  # type: ignore[attr-defined]
        clients: dict[tuple[str, str], Any] = {}
        clients_lock = threading.Lock()

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            with clients_lock:
                key = (region, service)
                if key not in clients:
                    clients[key] = make_client(region=region, service=service, state_credentials=state_credentials)
                return clients[key]

        self._set(lambda_eval_utils, "boto_client_for", boto_client_for)

        import botocore.session

        self._set(botocore.session, "create_loader", _shared_loader)
        self._apply_visibility()
        self._apply_execution_timeout()
        self._apply_history_order()
        self._apply_ended_frames()

    def _apply_history_order(self) -> None:
        from moto.stepfunctions.responses import StepFunctionResponse

        original = StepFunctionResponse.get_execution_history

        def get_execution_history(response: Any) -> Any:
            result = original(response)
            if response._get_param("reverseOrder"):
                history = result.result if hasattr(result, "result") else None
                if isinstance(history, dict) and isinstance(history.get("events"), list):
                    history["events"] = list(reversed(history["events"]))
            return result

        self._set(StepFunctionResponse, "get_execution_history", get_execution_history)

    def _apply_visibility(self) -> None:
        from moto.sqs.models import SQSBackend

        original = SQSBackend.change_message_visibility
        on_visibility = self.on_visibility

        def change_message_visibility(
            backend: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
        ) -> None:
            original(backend, queue_name, receipt_handle, visibility_timeout)
            if on_visibility is not None:
                on_visibility(receipt_handle, int(visibility_timeout))

        self._set(SQSBackend, "change_message_visibility", change_message_visibility)

    def _apply_execution_timeout(self) -> None:
        from moto.stepfunctions.parser.asl.component.program import program as program_mod
        from moto.stepfunctions.parser.asl.eval.environment import Environment

        original_set_error = Environment.set_error

        def set_error(env: Any, error: Any) -> None:
            if env.is_running():
                original_set_error(env, error)

        self._set(Environment, "set_error", set_error)

        clock = self.clock
        program_cls = program_mod.Program

        def eval_program(program: Any, env: Any) -> None:
            timeout = program.timeout_seconds.timeout_seconds if program.timeout_seconds else None
            env.next_state_name = program.start_at.start_at_name
            body = super(program_cls, program).eval  # type: ignore[misc]  # EvalComponent.eval: the program's body
            worker = threading.Thread(target=body, args=(env,), daemon=True)
            program_mod.TMP_THREADS.append(worker)  # type: ignore[attr-defined]
            worker.start()
            worker.join(timeout=clock.real_seconds(timeout) if timeout is not None else None)
            if worker.is_alive():
                env.set_timed_out()

        self._set(program_cls, "eval", eval_program)

    def _apply_ended_frames(self) -> None:
        """A task state runs in a frame on its own thread (``ExecutionState._evaluate_with_timeout``); the state's
        timeout, the execution's timeout or StopExecution end the frame, and moto lets the thread run on. Such a
        thread's evaluations are then no-ops (``EvalComponent.eval`` checks ``is_running``) but the ``env.stack.pop()``
        after each one is not: it took the state's input as a timeout and recorded it in a TaskScheduled event (a dict
        where an integer belongs: GetExecutionHistory failed to serialize, and the safety net could not read the
        execution). In AWS a task that timed out or was stopped adds nothing to the history and invokes nothing: a
        frame that no longer runs records no event and starts no Lambda invocation."""
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
        from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
        from moto.stepfunctions.parser.asl.eval.environment import Environment

        inner_frame_of = Environment.__dict__["as_inner_frame_of"].__func__

        def as_inner_frame_of(cls: Any, env: Any, variable_store: Any, event_history_frame_cache: Any = None) -> Any:
            frame = inner_frame_of(
                cls, env=env, variable_store=variable_store, event_history_frame_cache=event_history_frame_cache
            )
            frame.event_manager = _FrameEvents(frame.event_manager, frame)
            return frame

        self._set(Environment, "as_inner_frame_of", classmethod(as_inner_frame_of))

        invoke = lambda_eval_utils.execute_lambda_function_integration

        def execute_lambda_function_integration(
            env: Any, parameters: dict[str, Any], region: str, state_credentials: Any
        ) -> None:
            if not env.is_running():
                raise EvalTimeoutError()  # the task's frame ended before its Lambda function was invoked
            invoke(env=env, parameters=parameters, region=region, state_credentials=state_credentials)

        self._set(lambda_eval_utils, "execute_lambda_function_integration", execute_lambda_function_integration)
        self._set(ExecutionState, "_evaluate_with_timeout", _evaluate_with_timeout)

    def _scale_message_delays(self, clock: ScaledClock) -> None:
        """SQS message delays on the runtime clock (a deferred job's copy: issue #13's scaled backlog test)."""
        from moto.core.utils import unix_time_millis
        from moto.sqs import models as sqs_models

        def delay(message: Any, delay_seconds: int) -> None:
            message.delayed_until = unix_time_millis() + clock.real_seconds(int(delay_seconds)) * 1000

        self._set(sqs_models.Message, "delay", delay)
