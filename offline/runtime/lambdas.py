"""Run Lambda handlers in this process, one warm "container" per function.

moto's Lambda API stays in charge of functions, configuration and invoke semantics; only the step where moto would
start a Docker container (``LambdaFunction._invoke_lambda``) is routed here.

Isolation model (documented in the README):

- **One container per function**, like Lambda: each function gets its own, private copy of the modules of its code
  asset (e.g. the ``hicopy`` package), imported on its first invocation under that function's environment variables
  (a cold start) and kept warm for later invocations. Module-level state (config read from the environment, boto3
  clients, caches) is therefore never shared between two functions, exactly as in AWS.
- At any moment **only one copy of a code package is in ``sys.modules``**: while a handler runs, its container's
  modules are swapped in (and whatever was there before, e.g. the ``hicopy`` a unit test imported from
  ``functions/``, is swapped out and restored afterwards).
- Handler calls are serialized by one re-entrant lock (``os.environ`` is process-global). A handler that invokes
  another function synchronously nests correctly.
- Before a container imports its handler module, the runtime's clock is installed in that container's
  ``hicopy.clock`` (``set_clock``), so handler time is the scaled clock. Its ``sleep`` gives the lock up while it
  sleeps (the handler's environment and modules are swapped out, then back in): like separate Lambdas, a handler
  that sleeps (Submit waiting for its pacing slot) does not hold every other function up.
- ``print``/logging to stdout/stderr inside a handler is captured per invocation (``Invocation.logs``).

**The handlers run from the CDK asset folder**, not from ``functions/`` or an installed ``hicopy``: a container's
own packages (those of its code folder that nothing else provides, and always the handler's top-level package) are
imported from the function's code asset (``_ContainerFinder``, first on ``sys.meta_path`` while the handler runs).
That is on purpose: what runs is what the asset would ship, so a module missing from the asset fails here as it
would in Lambda, even when the same package is importable in this process. Third-party packages come from the
environment (a bundled asset's vendored copies may be built for another Python).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # hicopy is the function code; the runtime makes it importable when it starts
    from hicopy.clock import Clock


@dataclass
class Invocation:
    """One handler call."""

    function: str  # logical id of the function in the template (e.g. ``JobConsumerFunction1A2B3C``)
    construct_id: str  # construct id (e.g. ``JobConsumer``)
    function_name: str  # physical name
    event: Any
    started: float
    ended: float = 0.0
    ok: bool = True
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    logs: str = ""
    cold_start: bool = False
    request_id: str = ""

    @property
    def duration(self) -> float:
        return self.ended - self.started


@dataclass
class FunctionSpec:
    """What the runner needs to know about one deployed function."""

    logical_id: str
    construct_id: str
    function_name: str
    function_arn: str
    handler: str
    code_dir: Path
    timeout: int = 3
    memory_size: int = 128


@dataclass
class _Container:
    spec: FunctionSpec
    modules: dict[str, types.ModuleType] = field(default_factory=dict)
    handler: Callable[[Any, Any], Any] | None = None
    invocations: int = 0


class _Activation:
    """One handler call's view of the process (its environment variables and its container's modules), which can be
    suspended while the handler sleeps and resumed after."""

    def __init__(self, runner: LambdaRunner, container: _Container, request_id: str) -> None:
        self.runner, self.container, self.request_id = runner, container, request_id
        self._entered: contextlib.ExitStack | None = None

    def resume(self) -> None:
        entered = contextlib.ExitStack()
        try:
            entered.enter_context(self.runner._environment(self.container.spec, self.request_id))
            entered.enter_context(self.runner._modules(self.container))
        except BaseException:
            entered.close()
            raise
        self._entered = entered

    def suspend(self) -> None:
        entered, self._entered = self._entered, None
        if entered is not None:
            entered.close()


class _CooperativeClock:
    """The runtime clock as the handlers see it: ``sleep`` releases the runner's lock meanwhile."""

    def __init__(self, clock: Clock, runner: LambdaRunner) -> None:
        self._clock, self._runner = clock, runner

    def now(self) -> float:
        return float(self._clock.now())

    def sleep(self, seconds: float) -> None:
        self._runner.sleep_released(seconds, self._clock)


class MarshalError(Exception):
    """The handler returned something that is not JSON-serializable (AWS: ``Runtime.MarshalError``)."""

    lambda_error_type = "Runtime.MarshalError"


def _marshal(result: Any) -> str:
    try:
        return json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise MarshalError(f"Unable to marshal response: {exc}") from exc


_CODE_CACHE: dict[tuple[str, int, int], types.CodeType] = {}
_CODE_CACHE_LOCK = threading.Lock()


class _CachingSourceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that compiles each file once per process (keyed by path, mtime and size).

    Every cold start imports the function's code package again; with ``PYTHONDONTWRITEBYTECODE`` (or a read-only
    tree) that would recompile every module for every container.
    """

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        with _CODE_CACHE_LOCK:
            code = _CODE_CACHE.get(key)
        if code is None:
            code = super().get_code(fullname)
            if code is None:  # pragma: no cover - only for source-less modules
                raise ImportError(f"no code for {fullname}")
            with _CODE_CACHE_LOCK:
                _CODE_CACHE[key] = code
        return code


class _ContainerFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of one code asset (top-level names ``tops``) in ``code_dir`` with the caching loader."""

    def __init__(self, code_dir: Path, tops: set[str]) -> None:
        self.code_dir = str(code_dir)
        self.tops = tops

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] not in self.tops:
            return None
        search = list(path) if path is not None else [self.code_dir]
        spec = importlib.machinery.PathFinder.find_spec(fullname, search)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or not spec.origin:
            return spec
        loader = _CachingSourceLoader(fullname, spec.origin)
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=loader, submodule_search_locations=spec.submodule_search_locations
        )


# Process-wide on purpose: a logging handler created during one runtime keeps the stream object it saw (e.g.
# Powertools' Logger), so every stand-in must route on the same thread-local capture buffer.
_CAPTURE = threading.local()


class _ThreadLocalStream(io.TextIOBase):
    """A stdout/stderr stand-in: writes go to the invocation's buffer in handler threads, else to the real stream."""

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def _sink(self) -> TextIO:
        buf: io.StringIO | None = getattr(_CAPTURE, "buffer", None)
        return buf if buf is not None else self._target

    def write(self, s: str) -> int:
        return self._sink().write(s)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self._sink().flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", "utf-8")


_LOGGER_ATTRIBUTES = ("level", "handlers", "propagate", "disabled", "filters")
_POWERTOOLS_ATTRIBUTES = ("init", "powertools_handler", "powertools_buffer_config", "powertools_buffer_cache")


class LoggingSnapshot:
    """The ``logging`` tree is process-wide, and Powertools' ``Logger`` configures the stdlib logger of its service
    once per process (level, a handler, an ``init`` marker). ``restore()`` puts every logger back as it was before
    the runtime started, and resets loggers the handlers created, so the runtime leaves no trace in the process."""

    def __init__(self) -> None:
        manager = logging.Logger.manager
        self._names = set(manager.loggerDict)
        self._state: dict[str, dict[str, Any]] = {}
        for name, lg in [("", logging.getLogger()), *list(manager.loggerDict.items())]:
            if isinstance(lg, logging.Logger):
                state = {a: copy.copy(getattr(lg, a)) for a in _LOGGER_ATTRIBUTES}
                state.update({a: getattr(lg, a) for a in _POWERTOOLS_ATTRIBUTES if hasattr(lg, a)})
                self._state[name] = state

    def restore(self, packages: set[str] | None = None) -> None:
        """Restore the loggers that existed; reset new ones that the handlers configured (Powertools' marker, or
        a logger of the function code's ``packages``). Other new loggers (libraries imported meanwhile) stay."""
        manager = logging.Logger.manager
        for name, lg in list(manager.loggerDict.items()):
            if not isinstance(lg, logging.Logger):
                continue
            if name in self._state:
                self._apply(lg, self._state[name])
            elif hasattr(lg, "init") or name.split(".", 1)[0] in (packages or set()):
                self._apply(lg, {"level": logging.NOTSET, "handlers": [], "propagate": True, "disabled": False})
        self._apply(logging.getLogger(), self._state[""])
        getattr(logging.Logger.manager, "_clear_cache", lambda: None)()  # the per-logger isEnabledFor caches

    @staticmethod
    def _apply(lg: logging.Logger, state: dict[str, Any]) -> None:
        for attr in _POWERTOOLS_ATTRIBUTES:
            if attr not in state and hasattr(lg, attr):
                delattr(lg, attr)
        for attr, value in state.items():
            setattr(lg, attr, copy.copy(value) if attr in ("handlers", "filters") else value)


class LambdaRunner:
    """Loads and calls handlers for moto-deployed functions."""

    def __init__(
        self,
        *,
        region: str,
        account: str,
        clock: Clock | None = None,
        env_overrides: Mapping[str, Mapping[str, str]] | None = None,
        forced_env: Mapping[str, str] | None = None,
        on_invocation: Callable[[Invocation], None] | None = None,
        on_start: Callable[[FunctionSpec, Any], None] | None = None,
        clock_module: str = "hicopy.clock",
    ) -> None:
        self.clock_module = clock_module
        self.region = region
        self.account = account
        self.clock = clock
        self.env_overrides = {k: dict(v) for k, v in (env_overrides or {}).items()}
        self.forced_env = dict(forced_env or {})
        self.functions: dict[str, FunctionSpec] = {}  # by physical function name
        self.invocations: list[Invocation] = []
        self.on_invocation = on_invocation
        self.on_start = on_start
        self._containers: dict[str, _Container] = {}
        self._tops: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._active = threading.local()  # per thread: the stack of handler calls in progress (nested invokes)
        self._streams: tuple[TextIO, TextIO] | None = None

    # ------------------------------------------------------------------------------------------------ lifecycle

    def register(self, spec: FunctionSpec) -> None:
        self.functions[spec.function_name] = spec

    def install_streams(self) -> None:
        if self._streams is None:
            self._streams = (sys.stdout, sys.stderr)
            sys.stdout = _ThreadLocalStream(sys.stdout)
            sys.stderr = _ThreadLocalStream(sys.stderr)

    def uninstall_streams(self) -> None:
        if self._streams is not None:
            sys.stdout, sys.stderr = self._streams
            self._streams = None

    def close(self) -> None:
        with self._lock:
            self.uninstall_streams()
            self._containers.clear()

    @property
    def packages(self) -> set[str]:
        """Top-level packages private to the containers (the function code's own, e.g. ``hicopy``)."""
        return set().union(*self._tops.values()) if self._tops else set()

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    # ------------------------------------------------------------------------------------------------ invoke

    def invoke(self, function_name: str, function_arn: str, event: Any) -> tuple[str, bool, str]:
        """moto's ``_invoke_lambda`` contract: ``(payload json, errored, logs)``."""
        spec = self.functions.get(function_name)
        if spec is None:
            missing = {"errorMessage": f"function {function_name} has no local code", "errorType": "ResourceNotFound"}
            return json.dumps(missing), True, ""
        if isinstance(event, (str, bytes)):
            with contextlib.suppress(ValueError):
                event = json.loads(event or "{}")
        inv = Invocation(
            function=spec.logical_id,
            construct_id=spec.construct_id,
            function_name=spec.function_name,
            event=event,
            started=time.time(),
            request_id=str(uuid.uuid4()),
        )
        if self.on_start is not None:
            with contextlib.suppress(Exception):
                self.on_start(spec, event)
        with self._lock:
            container = self._containers.get(function_name)
            if container is None:
                container = self._containers[function_name] = _Container(spec)
                inv.cold_start = True
            buffer = io.StringIO()
            previous_buffer = getattr(_CAPTURE, "buffer", None)
            _CAPTURE.buffer = buffer
            try:
                with self._activation(container, inv.request_id):
                    handler = self._handler(container)
                    context = self._context(spec, inv.request_id)
                    result = handler(event, context)
                payload = _marshal(result)
                inv.result = result
                errored = False
            except Exception as exc:
                error_type = str(getattr(exc, "lambda_error_type", type(exc).__name__))
                err: dict[str, Any] = {
                    "errorMessage": str(exc),
                    "errorType": error_type,
                    "requestId": inv.request_id,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                }
                payload = json.dumps(err)
                inv.ok = False
                inv.error_type = error_type
                inv.error_message = str(exc)
                inv.result = err
                errored = True
                buffer.write(f"[ERROR] {inv.error_type}: {inv.error_message}\n")
            finally:
                _CAPTURE.buffer = previous_buffer
                container.invocations += 1
            inv.ended = time.time()
            inv.logs = buffer.getvalue()
            self.invocations.append(inv)
        if self.on_invocation is not None:
            with contextlib.suppress(Exception):
                self.on_invocation(inv)
        return payload, errored, inv.logs

    def sleep_released(self, seconds: float, clock: Clock) -> None:
        """Sleep on ``clock`` for a handler, letting other handlers run meanwhile (see the module docstring).

        Only a top-level handler call gives the lock up; a nested one (a handler invoking another function) sleeps
        holding it, as does a thread that holds the lock itself around the call.
        """
        stack = self._stack()
        if seconds <= 0 or len(stack) != 1:
            clock.sleep(seconds)
            return
        activation = stack[0]
        activation.suspend()
        self._lock.release()
        try:
            clock.sleep(seconds)
        finally:
            self._lock.acquire()
            activation.resume()

    # ------------------------------------------------------------------------------------------------ internals

    def _stack(self) -> list[_Activation]:
        stack: list[_Activation] | None = getattr(self._active, "stack", None)
        if stack is None:
            stack = self._active.stack = []
        return stack

    @contextlib.contextmanager
    def _activation(self, container: _Container, request_id: str) -> Iterator[None]:
        activation = _Activation(self, container, request_id)
        activation.resume()
        stack = self._stack()
        stack.append(activation)
        try:
            yield
        finally:
            stack.pop()
            activation.suspend()

    def _handler(self, container: _Container) -> Callable[[Any, Any], Any]:
        if container.handler is None:
            spec = container.spec
            module_name, _, func_name = spec.handler.rpartition(".")
            if not module_name:
                raise ImportError(f"bad handler string {spec.handler!r}")
            if self.clock_module.split(".", 1)[0] in self._top_packages(spec.code_dir):
                self._install_clock()
            module = importlib.import_module(module_name)
            container.handler = getattr(module, func_name)
        return container.handler

    def _install_clock(self) -> None:
        """Put the runtime clock into this container's ``hicopy.clock`` before any handler code reads the time."""
        if self.clock is None:
            return
        try:
            clock_module = importlib.import_module(self.clock_module)
        except ImportError:
            return
        set_clock = getattr(clock_module, "set_clock", None)
        if callable(set_clock):
            set_clock(_CooperativeClock(self.clock, self))

    def _top_packages(self, code_dir: Path) -> set[str]:
        """Top-level modules that belong to each container: the function code's own packages in ``code_dir``.

        Entries the environment can import from elsewhere (third-party packages a bundled asset vendors, e.g.
        pydantic built for another Python) are left to the environment, so a bundled ``cdk.out`` still runs.
        """
        key = str(code_dir)
        if key not in self._tops:
            others = [p for p in sys.path if p and Path(p).resolve() != code_dir.resolve()]
            names: set[str] = set()
            for entry in code_dir.iterdir():
                if entry.is_dir() and (entry / "__init__.py").is_file():
                    name = entry.name
                elif entry.suffix == ".py":
                    name = entry.stem
                else:
                    continue
                if importlib.machinery.PathFinder.find_spec(name, others) is None or any(
                    spec.handler.split(".", 1)[0] == name for spec in self.functions.values()
                ):
                    names.add(name)
            self._tops[key] = names
        return self._tops[key]

    @contextlib.contextmanager
    def _modules(self, container: _Container) -> Iterator[None]:
        code_dir = container.spec.code_dir
        tops = self._top_packages(code_dir)

        def ours(name: str) -> bool:
            return name.split(".", 1)[0] in tops

        outer = {name: mod for name, mod in sys.modules.items() if ours(name)}
        for name in outer:
            del sys.modules[name]
        sys.modules.update(container.modules)
        finder = _ContainerFinder(code_dir, tops)
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(finder)
            container.modules = {name: mod for name, mod in sys.modules.items() if ours(name)}
            for name in container.modules:
                del sys.modules[name]
            sys.modules.update(outer)

    @contextlib.contextmanager
    def _environment(self, spec: FunctionSpec, request_id: str) -> Iterator[None]:
        from moto.awslambda.utils import get_backend

        fn = get_backend(self.account, self.region).get_function(spec.function_name)
        env: dict[str, str] = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local/[$LATEST]local",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.x_local",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "_X_AMZN_TRACE_ID": f"Root=1-{int(time.time()):08x}-{request_id.replace('-', '')[:24]}",
        }
        env.update({k: str(v) for k, v in (fn.environment_vars or {}).items()})
        env.update(self.env_overrides.get("*", {}))
        env.update(self.env_overrides.get(spec.construct_id, {}))
        env.update(self.env_overrides.get(spec.logical_id, {}))
        env.update(self.forced_env)
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _context(self, spec: FunctionSpec, request_id: str) -> Any:
        deadline = time.time() + spec.timeout
        return types.SimpleNamespace(
            function_name=spec.function_name,
            function_version="$LATEST",
            invoked_function_arn=spec.function_arn,
            memory_limit_in_mb=spec.memory_size,
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{spec.function_name}",
            log_stream_name="local/[$LATEST]local",
            identity=None,
            client_context=None,
            get_remaining_time_in_millis=lambda: max(0, int((deadline - time.time()) * 1000)),
        )
