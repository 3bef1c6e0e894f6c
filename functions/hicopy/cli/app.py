"""``hicopy``: the command line for a deployed orchestrator (parser, global options, error handling).

Each subcommand lives with its logic (``jobs``/``planning``/``executions``/``watching``/``rerun``/``queues``/
``sweep``) and registers its own parser; this module wires them together.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from hicopy.cli import listing, local, planning, queues, rerun, submitting, sweep, watching
from hicopy.cli.context import Context
from hicopy.cli.jobs import InputError
from hicopy.cli.output import Output, UsageError
from hicopy.cli.stack import DEFAULT_STACK_NAME, Stack, StackNotFound

DESCRIPTION = """\
Operate a deployed HealthImaging copy orchestrator: send copy jobs, see what they would do, follow them, rerun
failed ones, inspect the dead-letter queue and the backlog, and backfill non-primary image sets.

The stack is found by its CloudFormation outputs (--stack-name, default $HICOPY_STACK_NAME or
HealthImagingCopyOrchestrator), with the usual AWS credentials, --region and --profile.
"""
EPILOG = """\
exit codes: 0 done (and, for jobs followed, every one succeeded); 1 a job is invalid, refused, failed or not found;
2 a usage, AWS or stack error.
Run `hicopy COMMAND --help` for a command's options. Output is for a person; --json gives JSON for scripts
(a stream of JSON Lines for watch).
"""
USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("stack and AWS options (before or after the command)")
    group.add_argument(
        "--stack-name", help=f"CloudFormation stack name (default: $HICOPY_STACK_NAME or {DEFAULT_STACK_NAME})"
    )
    group.add_argument("--region", help="AWS region (default: your AWS configuration)")
    group.add_argument("--profile", help="AWS named profile")
    group.add_argument("--endpoint-url", help="one endpoint for every AWS service (a local emulation)")
    group.add_argument("--json", action="store_true", help="JSON output for scripts")
    parser = argparse.ArgumentParser(
        prog="hicopy",
        description=DESCRIPTION,
        epilog=EPILOG,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (submitting, planning, listing, watching, rerun, queues, sweep, local):
        module.register(sub, common)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stack: Stack | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code. ``stack`` replaces the CloudFormation lookup (tests)."""
    args = build_parser().parse_args(argv)
    out = Output(as_json=bool(getattr(args, "json", False)), stream=stdout, errors=stderr)

    def resolve() -> Stack:
        if stack is not None:
            return stack
        return Stack.resolve(
            getattr(args, "stack_name", None) or os.environ.get("HICOPY_STACK_NAME") or DEFAULT_STACK_NAME,
            region=getattr(args, "region", None),
            profile=getattr(args, "profile", None),
            endpoint_url=getattr(args, "endpoint_url", None),
        )

    context = Context(resolve, out, stdin or sys.stdin)
    run: Callable[[argparse.Namespace, Context], int] = args.run
    try:
        return run(args, context)
    except (StackNotFound, InputError, UsageError) as exc:
        out.note(f"hicopy: error: {exc}")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        out.note(f"hicopy: error: {exc.operation_name}: {error.get('Code')}: {error.get('Message')}")
    except BotoCoreError as exc:
        out.note(f"hicopy: error: {exc}")
    except KeyboardInterrupt:
        out.note("hicopy: interrupted")
        return 130
    return USAGE_ERROR
