"""What the CLI prints: text for a person by default; with ``--json``, JSON (a document, or JSON Lines for a stream)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO


class UsageError(Exception):
    """The command's arguments cannot be used (exit code 2)."""


class Output:
    def __init__(self, *, as_json: bool = False, stream: TextIO | None = None, errors: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream if stream is not None else sys.stdout
        self.errors = errors if errors is not None else sys.stderr

    @property
    def is_tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def result(self, data: Any, text: str | None) -> None:
        """A command's result: ``data`` as JSON with ``--json``, else ``text`` (nothing when None)."""
        if self.as_json:
            self.json(data, indent=2)
        elif text is not None:
            self.line(text)

    def json(self, data: Any, *, indent: int | None = None) -> None:
        self.line(json.dumps(data, indent=indent, default=_default, ensure_ascii=False))

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """Something for the person at the terminal (stderr: never mixed into the JSON)."""
        print(text, file=self.errors, flush=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def timestamp(value: datetime | float | None) -> str | None:
    """RFC 3339 UTC, to the second."""
    if value is None:
        return None
    moment = datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else value.astimezone(UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h10m``, ``3d4h``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned on the widest cell; the last column is never padded."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)), r[-1]]) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def shorten(text: str | None, limit: int) -> str:
    if text is None:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
