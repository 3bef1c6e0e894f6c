"""``hicopy --help`` and the README's "Operating it" table say the same: the same commands, and every option the
table shows is one the command takes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hicopy.cli.app import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `hicopy (\w+)([^`]*)` \| (.+) \|$", re.MULTILINE)


def _section() -> str:
    text = README.read_text()
    start = text.index("### Operating it\n")
    return text[start : text.index("\n### ", start + 1)]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_readme_table_lists_exactly_the_commands_of_hicopy_help() -> None:
    rows = {m.group(1): m.group(2) for m in ROW.finditer(_section())}
    assert set(rows) == set(_subcommands())
    help_text = build_parser().format_help()
    for name in rows:
        assert re.search(rf"^\s+{name}\s", help_text, re.MULTILINE), f"{name} missing from hicopy --help"


def test_every_option_in_the_readme_table_is_one_the_command_takes() -> None:
    commands = _subcommands()
    for m in ROW.finditer(_section()):
        name, usage = m.group(1), m.group(2)
        options = {o for a in commands[name]._actions for o in a.option_strings}
        shown = set(re.findall(r"--[a-z][a-z-]*", usage))
        assert shown <= options, f"hicopy {name}: {sorted(shown - options)} not in `hicopy {name} --help`"
        # and the positional arguments the table shows are the command's own
        positionals = [a.metavar or a.dest for a in commands[name]._actions if not a.option_strings]
        for word in re.findall(r"\b[A-Z][A-Z_]+\b", usage):
            assert word in positionals, f"hicopy {name}: {word} is not an argument of the command ({positionals})"
