"""What every subcommand runs with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from hicopy.cli.output import Output
from hicopy.cli.stack import Stack


@dataclass
class Context:
    """What a command runs with: the stack (resolved on first use), the output and stdin."""

    resolve: Callable[[], Stack]
    out: Output
    stdin: TextIO
    _stack: Stack | None = field(default=None, init=False)

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            self._stack = self.resolve()
        return self._stack
