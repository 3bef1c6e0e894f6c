"""Throttling (token buckets on the emulator's clock) and injected faults."""

from __future__ import annotations

import boto3
import botocore.retries.standard
import pytest

from offline.clock import ScaledClock
from offline.healthimaging import DEFAULT_THROTTLES, HealthImagingEmulator, install
from tests.emulator.conftest import NO_RETRIES, REGION
from tests.emulator.helpers import client_error, copy_request


def test_copy_image_set_is_throttled_at_the_published_rate() -> None:
    clock = ScaledClock(0.05)  # virtual time runs 20x: 4 virtual seconds = 0.2 s
    emu = HealthImagingEmulator(clock=clock, copy_duration=0.5, background=False)
    assert emu.throttling
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        ds = emu.create_datastore()
        first, second = emu.seed_image_set(ds), emu.seed_image_set(ds)
        copy_request(mi, first)
        error = client_error(copy_request, mi, second)
        assert (error["Code"], error["HTTPStatusCode"]) == ("ThrottlingException", 429)
        clock.sleep(4)
        copy_request(mi, second)
    assert [c.error_code for c in emu.calls_to("CopyImageSet")] == [None, "ThrottlingException", None]
    assert emu.calls[1].status_code == 429


def test_read_operations_have_their_own_buckets(clock) -> None:
    emu = HealthImagingEmulator(clock=clock, background=False, throttle_rates={"GetImageSet": (1, 3)})
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        ds = emu.create_datastore()
        source = emu.seed_image_set(ds)
        for _ in range(3):
            mi.get_image_set(datastoreId=ds, imageSetId=source.image_set_id)
        error = client_error(mi.get_image_set, datastoreId=ds, imageSetId=source.image_set_id)
        assert error["Code"] == "ThrottlingException"
        mi.search_image_sets(datastoreId=ds)  # another action, another bucket
        clock.advance(1)
        mi.get_image_set(datastoreId=ds, imageSetId=source.image_set_id)
        emu.set_throttling(False)
        for _ in range(10):
            mi.get_image_set(datastoreId=ds, imageSetId=source.image_set_id)


def test_published_rates() -> None:
    assert DEFAULT_THROTTLES["CopyImageSet"] == (0.25, 1)
    assert DEFAULT_THROTTLES["DeleteImageSet"] == DEFAULT_THROTTLES["UpdateImageSetMetadata"] == (0.25, 1)
    assert DEFAULT_THROTTLES["GetImageSet"] == DEFAULT_THROTTLES["SearchImageSets"] == (25, 50)
    assert DEFAULT_THROTTLES["ListImageSetVersions"] == DEFAULT_THROTTLES["GetDICOMImportJob"] == (25, 50)
    assert DEFAULT_THROTTLES["GetImageSetMetadata"] == (50, 100)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 429),
        ("ConflictException", 409),
        ("InternalServerException", 500),
        ("ServiceQuotaExceededException", 402),
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
        ("ValidationException", 400),
    ],
)
def test_injected_faults(emu, mi, ds, clock, code, status) -> None:
    source = emu.seed_image_set(ds)
    emu.inject_fault("CopyImageSet", code, times=2)
    for _ in range(2):
        error = client_error(copy_request, mi, source)
        assert (error["Code"], error["HTTPStatusCode"]) == (code, status)
    copy_request(mi, source)
    assert [c.error_code for c in emu.calls_to("CopyImageSet")] == [code, code, None]


def test_injected_fault_message_and_unknown_codes(emu, mi, ds) -> None:
    emu.inject_fault("GetImageSet", "InternalServerException", message="boom")
    error = client_error(mi.get_image_set, datastoreId=ds, imageSetId="0" * 32)
    assert error["Message"] == "boom"
    with pytest.raises(ValueError, match="does not model"):
        emu.inject_fault("GetDatastore", "ConflictException")


def test_default_client_retries_injected_throttles(emu, ds, monkeypatch) -> None:
    """An unmodified client retries a ThrottlingException by itself (botocore's retry handler)."""
    # No real back-off sleep (standard retry mode, botocore's default).
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    source = emu.seed_image_set(ds)
    emu.inject_fault("GetImageSet", "ThrottlingException", times=1)
    mi = boto3.client("medical-imaging", region_name=REGION)
    answer = mi.get_image_set(datastoreId=ds, imageSetId=source.image_set_id)
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert [c.error_code for c in emu.calls_to("GetImageSet")] == ["ThrottlingException", None]
