"""Two memoizations of pure parsing work inside moto, applied for the benchmark only.

With hundreds of concurrent executions, moto spends most of the benchmark's CPU re-parsing things that never change,
and at scaled time that CPU shows up as virtual seconds of delay between a pacing slot and the call it was reserved
for (handler calls are serialized in the local runtime):

- ``AmazonStateLanguageParser.parse(definition)``: every execution parses the whole ASL definition with ANTLR
  (~0.1 s of CPU per execution). The parsed program keeps no per-execution state (retry counters etc. live in the
  execution's ``Environment.heap`` under each component's ``heap_key``), so one parse per definition is shared;
  every component's lazily generated ``heap_key`` is generated once, up front, so that racing executions cannot
  observe two different keys.
- ``jsonpath_ng.parse`` / ``jsonpath_ng.ext.parse``: each call builds a new PLY parser (tables included) before
  parsing a path. moto calls it for every ``InputPath``/``Parameters``/``ResultPath`` evaluation and for the event
  archive's input transformer on every ``PutEvents``. Parsed paths are immutable, so they are cached by string.

Both are semantics-preserving; they belong in ``offline/runtime/patches.py`` (reported to the runtime's owner).
``BenchSpeedups`` applies them on ``__enter__`` and restores moto exactly on ``__exit__``.
"""

from __future__ import annotations

import functools
import threading
from types import TracebackType
from typing import Any

from offline.runtime.patches import Patcher


def _touch_heap_keys(root: Any) -> int:
    """Generate ``heap_key`` of every evaluation component reachable from ``root``; returns how many."""
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    stack = [root]
    count = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, EvalComponent):
            _ = obj.heap_key
            count += 1
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("moto.stepfunctions"):
            stack.extend(vars(obj).values())
    return count


class BenchSpeedups(Patcher):
    def __init__(self) -> None:
        super().__init__()
        self.parsed_definitions = 0

    def __enter__(self) -> BenchSpeedups:
        import jsonpath_ng
        import jsonpath_ng.ext
        from moto.stepfunctions.parser.asl.component.common.path import result_path
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
        from moto.stepfunctions.parser.asl.utils import json_path

        ext_parse = functools.lru_cache(maxsize=8192)(jsonpath_ng.ext.parse)  # type: ignore[attr-defined]
        base_parse = functools.lru_cache(maxsize=8192)(jsonpath_ng.parse)  # type: ignore[attr-defined]
        self._set(jsonpath_ng.ext, "parse", ext_parse)  # moto.events.utils imports it at call time
        self._set(json_path, "parse", ext_parse)
        self._set(result_path, "parse", base_parse)

        original = AmazonStateLanguageParser.parse
        cache: dict[str, Any] = {}
        lock = threading.Lock()

        def parse(definition: str) -> Any:
            with lock:
                if definition not in cache:
                    parsed = original(definition)
                    _touch_heap_keys(parsed[0])
                    cache[definition] = parsed
                    self.parsed_definitions += 1
                return cache[definition]

        self._set(AmazonStateLanguageParser, "parse", staticmethod(parse))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.undo()
