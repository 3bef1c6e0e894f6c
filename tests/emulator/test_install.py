"""Installing the hook: unmodified clients, inside and outside moto's mock_aws, threads."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from offline.clock import ManualClock
from offline.healthimaging import HealthImagingEmulator, install
from tests.emulator.helpers import copy_request


def test_unmodified_client_inside_mock_aws_reaches_the_emulator(clock) -> None:
    emu = HealthImagingEmulator(clock=clock, throttling=False, background=False)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="still-moto")["QueueUrl"]
        with install(emu):
            mi = boto3.client("medical-imaging")  # region from the environment, default config
            ds = emu.create_datastore()
            source = emu.seed_image_set(ds)
            response = copy_request(mi, source)
            assert response["destinationImageSetProperties"]["imageSetWorkflowStatus"] == "COPYING"
            assert [d["datastoreId"] for d in mi.list_datastores()["datastoreSummaries"]] == [ds]
            sqs.send_message(QueueUrl=queue, MessageBody="moto keeps working")
        assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "moto keeps working"
        # Uninstalled: moto answers medical-imaging itself (it has no backend), nothing goes to the network.
        mi = boto3.client("medical-imaging")
        with pytest.raises(ClientError):
            mi.get_datastore(datastoreId=ds)
    assert [c.operation for c in emu.calls] == ["CopyImageSet", "ListDatastores"]


def test_installed_before_mock_aws_starts(clock) -> None:
    emu = HealthImagingEmulator(clock=clock, throttling=False, background=False)
    with install(emu), mock_aws():
        ds = emu.create_datastore()
        assert boto3.client("medical-imaging").get_datastore(datastoreId=ds)["datastoreProperties"]["datastoreId"] == ds


def test_outside_mock_aws_and_with_a_session(clock) -> None:
    emu = HealthImagingEmulator(clock=clock, throttling=False, background=False)
    with install(emu):
        ds = emu.create_datastore()
        session_client = boto3.session.Session(region_name="eu-west-1").client("medical-imaging")
        assert session_client.get_datastore(datastoreId=ds)["datastoreProperties"]["datastoreStatus"] == "ACTIVE"
        default_client = boto3.client("medical-imaging", region_name="us-east-1")
        assert default_client.list_datastores()["datastoreSummaries"][0]["datastoreId"] == ds


def test_only_one_emulator_at_a_time(clock) -> None:
    first = HealthImagingEmulator(clock=clock, background=False)
    second = HealthImagingEmulator(clock=clock, background=False)
    with install(first), pytest.raises(RuntimeError, match="another HealthImagingEmulator"):
        second.install()
    with install(second):
        pass


def test_unsupported_operation_is_a_service_error(emu, mi, ds) -> None:
    source = emu.seed_image_set(ds)
    with pytest.raises(ClientError) as caught:
        mi.get_image_frame(
            datastoreId=ds, imageSetId=source.image_set_id, imageFrameInformation={"imageFrameId": "0" * 32}
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "not supported" in caught.value.response["Error"]["Message"]


def test_server_side_validation_of_patterns(emu, mi, ds) -> None:
    """botocore does not check patterns client-side; the emulator does, like the service."""
    for bad in ("not-an-id", "A" * 32, "0" * 33):
        with pytest.raises(ClientError) as caught:
            mi.get_image_set(datastoreId=ds, imageSetId=bad)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert "pattern" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        mi.copy_image_set(
            datastoreId=ds,
            sourceImageSetId="0" * 32,
            copyImageSetInformation={"sourceImageSet": {"latestVersionId": "latest"}},
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_concurrent_clients_on_threads() -> None:
    clock = ManualClock()
    emu = HealthImagingEmulator(clock=clock, throttling=False, background=False)
    failures: list[BaseException] = []
    with install(emu):
        ds = emu.create_datastore()
        sources = [emu.seed_image_set(ds) for _ in range(16)]
        destinations: list[str] = []
        lock = threading.Lock()

        mi = boto3.client("medical-imaging", region_name="us-east-1")  # clients are thread-safe, sessions are not

        def work(source: Any) -> None:
            try:
                dst = copy_request(mi, source)["destinationImageSetProperties"]["imageSetId"]
                for _ in range(5):
                    mi.get_image_set(datastoreId=ds, imageSetId=dst)
                with lock:
                    destinations.append(dst)
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in sources]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        clock.advance(2)
        emu.tick()
        assert not failures
        assert len(set(destinations)) == 16
        assert all(emu.image_set(ds, d)["imageSetWorkflowStatus"] == "COPIED" for d in destinations)
    assert len(emu.calls) == 16 * 6
