"""``hicopy local``: the whole orchestrator on 127.0.0.1 (``offline.server``), until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hicopy.cli.context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "local",
        parents=[common],
        help="run the orchestrator locally, as a server on 127.0.0.1, until Ctrl-C",
        description="Deploy the stack into the local runtime (moto and the HealthImaging emulator; the real "
        "template, state machine and handlers, run in this process) and serve it on one endpoint on 127.0.0.1, "
        "for every service including medical-imaging, so that the AWS CLI, boto3 and hicopy itself work against "
        "it unchanged. Prints the endpoint, the queue URLs, the bus and the seeded IDs, and what a client needs "
        "(with --json: one JSON object), then runs until Ctrl-C.",
    )
    p.add_argument("--port", type=int, default=4599, help="port on 127.0.0.1 (default 4599; 0: any free port)")
    p.add_argument("--seed", action="store_true", help="seed demo image sets and print their IDs")
    p.add_argument("--seed-series", type=int, default=2, metavar="N", help="series of the seeded source (2)")
    p.add_argument("--seed-instances", type=int, default=3, metavar="M", help="instances per series (3)")
    p.add_argument("--seed-frames", type=int, default=1, metavar="F", help="frames per instance (1)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        metavar="S",
        help="real seconds per virtual second (default 0.01: copies, waits and retries run 100x faster)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, context: Context) -> int:
    from hicopy.cli.output import UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port")
    if args.time_scale <= 0:
        raise UsageError("--time-scale must be positive")
    from offline.cli import SEED, seed_data
    from offline.runtime import LocalRuntime
    from offline.runtime.console import ProgressPrinter
    from offline.server import LocalServer, describe

    out = context.out
    printer = None if args.quiet else ProgressPrinter(out.errors)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C while stopping: give up waiting
            raise KeyboardInterrupt
        stop.set()

    # Ctrl-C and SIGTERM both stop the loop (also when the shell started us with SIGINT ignored, as for `cmd &`).
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with LocalRuntime(time_scale=args.time_scale, progress=printer, emulator_options={"seed": SEED}) as rt:
            seeded: dict[str, str] = {}
            if args.seed:
                seeded = seed_data(rt, series=args.seed_series, instances=args.seed_instances, frames=args.seed_frames)
            server = LocalServer(rt, port=args.port)
            try:
                server.start()
            except OSError as exc:
                raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from exc
            try:
                info = server.endpoints(seeded)
                if out.as_json:
                    out.json(info.as_json())
                else:
                    out.line(describe(info))
                with contextlib.suppress(KeyboardInterrupt):
                    server.serve(stop)
                out.note("hicopy local: stopping")
            finally:
                server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.note("hicopy local: stopped")
    return 0
