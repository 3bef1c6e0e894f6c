"""Small helpers shared by the emulator tests."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from offline.healthimaging import SeededImageSet
from offline.healthimaging.errors import STALE_VERSION_MESSAGE

#: The two answers to a stale ``latestVersionId`` (``stale_version_error``): code -> HTTP status, message (None: any).
STALE_ANSWERS: dict[str, tuple[int, str | None]] = {
    "ResourceNotFoundException": (404, STALE_VERSION_MESSAGE),
    "ConflictException": (409, None),
}

_UIDS = itertools.count(1)


def copy_request(
    mi: Any,
    source: SeededImageSet,
    *,
    source_version: str | None = None,
    destination: SeededImageSet | None = None,
    destination_version: str | None = None,
    copiable: str | None = None,
    **flags: bool,
) -> dict[str, Any]:
    info: dict[str, Any] = {"sourceImageSet": {"latestVersionId": source_version or source.version_id}}
    if copiable is not None:
        info["sourceImageSet"]["DICOMCopies"] = {"copiableAttributes": copiable}
    if destination is not None:
        info["destinationImageSet"] = {
            "imageSetId": destination.image_set_id,
            "latestVersionId": destination_version or destination.version_id,
        }
    response: dict[str, Any] = mi.copy_image_set(
        datastoreId=source.datastore_id, sourceImageSetId=source.image_set_id, copyImageSetInformation=info, **flags
    )
    return response


def client_error(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a client call that must fail; return ``response["Error"]`` plus the HTTP status."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    error = dict(caught.value.response["Error"])
    error["HTTPStatusCode"] = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return error


def same_series_other_instances(metadata: dict[str, Any], count: int) -> dict[str, Any]:
    """Same Patient/Study/Series elements as ``metadata``, ``count`` new instances per series."""
    clone: dict[str, Any] = json.loads(json.dumps(metadata))
    for index, series in enumerate(clone["Study"]["Series"].values()):
        template = next(iter(series["Instances"].values()))
        series["Instances"] = {}
        for n in range(count):
            uid = f"1.2.826.0.1.3680043.10.{next(_UIDS)}.{index + 1}.{n + 1}"
            instance = json.loads(json.dumps(template))
            instance["DICOM"]["SOPInstanceUID"] = uid
            series["Instances"][uid] = instance
    return clone


def assert_stale(error: dict[str, Any], answer: tuple[str, int, str | None]) -> None:
    """``error`` (from ``client_error``) is the stale-version answer ``answer`` = (code, status, message or None)."""
    code, status, message = answer
    assert (error["Code"], error["HTTPStatusCode"]) == (code, status)
    if message is not None:
        assert error["Message"] == message
