"""The model-driven parts: routes, seeded UIDs, the response validator, the clock."""

from __future__ import annotations

import random
import re
import time

import pytest

from hicopy.clock import Clock, set_clock
from offline.clock import ManualClock, ScaledClock
from offline.healthimaging import HealthImagingEmulator, model, valid_uid
from offline.healthimaging.dicom import build_metadata, new_uid

UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def test_every_operation_of_the_model_has_a_route() -> None:
    names = model.operation_names()
    assert {"CopyImageSet", "GetImageSet", "SearchImageSets", "StartDICOMImportJob"} <= set(names)
    for name in names:
        op = model.operation_model(name)
        path = re.sub(r"\{[^}]+\}", "x" * 32, op.http["requestUri"].split("?")[0])
        assert model.route(op.http["method"], f"https://runtime-medical-imaging.us-east-1.amazonaws.com{path}") == name


def test_error_statuses_come_from_the_model() -> None:
    assert model.error_status("ThrottlingException") == 429
    assert model.error_status("ConflictException") == 409
    assert model.error_status("ServiceQuotaExceededException") == 402
    assert model.error_status("AccessDeniedException") == 403
    assert model.error_status("ResourceNotFoundException") == 404
    assert model.error_status("InternalServerException") == 500


def test_seeded_uids_are_valid_dicom_uids(emu, ds) -> None:
    seeded = emu.seed_image_set(ds, series=3, instances_per_series=4)
    uids = [seeded.study_uid, *seeded.series_uids, *(s for sops in seeded.instances.values() for s in sops)]
    assert len(set(uids)) == len(uids) == 1 + 3 + 12
    for uid in uids:
        assert UID.match(uid) and len(uid) <= 64 and valid_uid(uid)
        assert all(part == "0" or not part.startswith("0") for part in uid.split("."))
    rng = random.Random(0)
    assert all(valid_uid(new_uid(rng)) for _ in range(1000))
    assert not valid_uid("1.02.3") and not valid_uid("1..2") and not valid_uid("1." + "1" * 64)
    with pytest.raises(ValueError, match="not a valid DICOM UID"):
        build_metadata(rng, study_uid="1.02")


def test_validator_catches_responses_that_do_not_fit(responses) -> None:
    good = {"imageSetPropertiesList": [{"imageSetId": "a" * 32, "versionId": "1", "imageSetState": "ACTIVE"}]}
    assert model.validate_response("ListImageSetVersions", {**good, "ResponseMetadata": {}}) == []
    bad = {
        "imageSetPropertiesList": [
            {"imageSetId": "A" * 32, "versionId": "one", "imageSetState": "OPEN", "message": "{not allowed}"}
        ]
    }
    problems = model.validate_response("ListImageSetVersions", bad)
    assert len(problems) == 4, problems
    assert model.validate_response("GetImageSet", {"datastoreId": "a" * 32}) != []  # required members missing


def test_the_suite_validates_every_response(emu, mi, ds, responses) -> None:
    """The autouse ``responses`` fixture sees (and checks) every medical-imaging response of a test."""
    source = emu.seed_image_set(ds)
    mi.get_image_set(datastoreId=ds, imageSetId=source.image_set_id)
    mi.get_image_set_metadata(datastoreId=ds, imageSetId=source.image_set_id)
    assert responses.checked == ["GetImageSet", "GetImageSetMetadata"]
    assert responses.problems == []


def test_scaled_clock() -> None:
    clock = ScaledClock(0.01)
    start = clock.now()
    assert abs(start - time.time()) < 1
    clock.sleep(5)  # 50 ms real
    assert 4.5 <= clock.now() - start < 30
    clock.advance(100)
    assert clock.now() - start >= 104.5
    real = ScaledClock(1.0)
    assert abs(real.now() - time.time()) < 0.5
    with pytest.raises(ValueError):
        ScaledClock(0)


def test_clocks_implement_the_hicopy_protocol_and_are_the_default() -> None:
    clocks: list[Clock] = [ScaledClock(1.0), ManualClock()]
    assert all(isinstance(c.now(), float) for c in clocks)
    manual = ManualClock(5.0)
    previous = set_clock(manual)
    try:
        assert HealthImagingEmulator(background=False).clock is manual
    finally:
        set_clock(previous)


def test_manual_clock() -> None:
    clock = ManualClock(100.0)
    clock.sleep(5)
    clock.advance(1)
    assert clock.now() == 106.0
