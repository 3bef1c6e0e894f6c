"""``hicopy local`` as a separate process, driven over HTTP by the real AWS CLI and by ``hicopy``: no mocks between.

The server process runs the whole orchestrator (moto, the emulator, the handlers, the state machine); this test only
starts it, reads what it prints, and talks to it the way an integrator would: ``aws sqs send-message``, ``aws events
put-events``, ``aws medical-imaging get-image-set`` (the pinned ``awscli``, run as ``python -m awscli``) and
``hicopy submit --wait`` / ``watch`` / ``status``, with only the printed client environment and ``--endpoint-url``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # a cold synth of the CDK app; a cached one starts in ~10 s
CALL_TIMEOUT = 60.0

pytestmark = pytest.mark.xdist_group("local-server")


def _env(client_env: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: this checkout's code first, no AWS settings but the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    paths = [str(ROOT / "functions"), str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env.update(client_env or {})
    return env


class Server:
    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any], stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.info = info
        self.url: str = info["endpointUrl"]
        self.env = _env(info["clientEnvironment"])

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False)

    def aws(self, *argv: str) -> Any:
        done = self.run(sys.executable, "-m", "awscli", "--endpoint-url", self.url, "--output", "json", *argv)
        assert done.returncode == 0, f"aws {' '.join(argv)}: {done.returncode}\n{done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else None

    def hicopy(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "hicopy.cli", "--endpoint-url", self.url, *argv)


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"hicopy local printed nothing in {timeout:.0f}s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if importlib.util.find_spec("awscli") is None:
        pytest.fail("awscli is a pinned development dependency (requirements.txt): run `make venv`")
    stderr_path = tmp_path_factory.mktemp("local") / "stderr.txt"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hicopy.cli", "local", "--port", "0", "--seed", "--json"],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            line = _first_line(proc, START_TIMEOUT)
            assert line, f"hicopy local exited ({proc.poll()}):\n{stderr_path.read_text()}"
            yield Server(proc, json.loads(line), stderr_path)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _job(job_id: str, srv: Server, **extra: Any) -> dict[str, Any]:
    seeded = srv.info["seeded"]
    return {
        "jobId": job_id,
        "datastoreId": srv.info["datastoreId"],
        "source": {"imageSetId": seeded["SOURCE_IMAGE_SET_ID"]},
        **extra,
    }


def test_it_binds_only_the_loopback_interface_and_says_what_a_client_needs(server: Server) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert server.info["clientEnvironment"]["AWS_DISABLE_HOST_PREFIX_INJECTION"] == "true"
    for key in ("jobQueueUrl", "deadLetterQueueUrl", "eventBusName", "stateMachineArn", "stackName"):
        assert server.info[key]
    assert set(server.info["seeded"]) >= {"SOURCE_IMAGE_SET_ID", "DESTINATION_IMAGE_SET_ID", "DATASTORE_ID"}


def test_the_aws_cli_and_hicopy_drive_the_server_end_to_end(server: Server) -> None:
    info, seeded = server.info, server.info["seeded"]

    # medical-imaging through the AWS CLI: the emulator answers on the same endpoint.
    source = server.aws(
        "medical-imaging",
        "get-image-set",
        "--datastore-id",
        info["datastoreId"],
        "--image-set-id",
        seeded["SOURCE_IMAGE_SET_ID"],
    )
    assert source["imageSetId"] == seeded["SOURCE_IMAGE_SET_ID"]
    assert source["imageSetState"] == "ACTIVE"

    # A job on the queue and one as a Copy Requested event, both with the AWS CLI.
    sent = server.aws(
        "sqs",
        "send-message",
        "--queue-url",
        info["jobQueueUrl"],
        "--message-body",
        json.dumps(_job("srv-sqs-1", server)),
    )
    assert sent["MessageId"]
    entry = {
        "EventBusName": info["eventBusName"],
        "Source": "my.pacs",
        "DetailType": "Copy Requested",
        "Detail": json.dumps(_job("srv-event-1", server)),
    }
    put = server.aws("events", "put-events", "--entries", json.dumps([entry]))
    assert put["FailedEntryCount"] == 0

    # hicopy submit --wait: checks the job, sends it, follows it to its end over HTTP.
    submitted = server.hicopy("submit", json.dumps(_job("srv-hicopy-1", server)), "--wait", "--timeout", "50")
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.splitlines()[0] == "srv-hicopy-1"
    assert "SUCCEEDED" in submitted.stdout

    # The jobs the AWS CLI sent end too (watch exits 0 only if all succeeded).
    watched = server.hicopy("watch", "srv-sqs-1", "srv-event-1", "--timeout", "50")
    assert watched.returncode == 0, watched.stdout + watched.stderr

    # Every execution succeeded (the AWS CLI reads them), and a copy really exists in the data store.
    listed = server.aws("stepfunctions", "list-executions", "--state-machine-arn", info["stateMachineArn"])
    statuses = {e["name"]: e["status"] for e in listed["executions"]}
    assert {k: statuses.get(k) for k in ("srv-sqs-1", "srv-event-1", "srv-hicopy-1")} == dict.fromkeys(
        ("srv-sqs-1", "srv-event-1", "srv-hicopy-1"), "SUCCEEDED"
    )
    status = server.hicopy("status", "srv-sqs-1", "--json")
    assert status.returncode == 0, status.stderr
    copy_id = json.loads(status.stdout)["destination"]["imageSetId"]
    copied = server.aws(
        "medical-imaging", "get-image-set", "--datastore-id", info["datastoreId"], "--image-set-id", copy_id
    )
    assert copied["imageSetState"] == "ACTIVE"
    assert copied["imageSetId"] != seeded["SOURCE_IMAGE_SET_ID"]


def test_ctrl_c_stops_it_cleanly(server: Server) -> None:
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=30) == 0
    stderr = server.stderr.read_text()
    assert stderr.rstrip().endswith("hicopy local: stopped"), stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-4000:]
