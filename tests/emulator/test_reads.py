"""Reads, search, versions, delete, update and data stores."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.emulator.helpers import assert_stale, client_error, copy_request


def test_get_image_set_metadata_is_gzip_json(emu, mi, ds) -> None:
    source = emu.seed_image_set(ds, series=2, instances_per_series=2, frames_per_instance=3)
    answer = mi.get_image_set_metadata(datastoreId=ds, imageSetId=source.image_set_id)
    assert (answer["contentType"], answer["contentEncoding"]) == ("application/json", "gzip")
    metadata = json.loads(gzip.decompress(answer["imageSetMetadataBlob"].read()))
    assert metadata["SchemaVersion"] == "1.1"
    assert (metadata["DatastoreID"], metadata["ImageSetID"]) == (ds, source.image_set_id)
    series = metadata["Study"]["Series"]
    assert list(series) == source.series_uids
    instance = series[source.series_uids[0]]["Instances"][source.instances[source.series_uids[0]][0]]
    assert len(instance["ImageFrames"]) == 3
    assert len(instance["ImageFrames"][0]["ID"]) == 32
    versioned = mi.get_image_set_metadata(datastoreId=ds, imageSetId=source.image_set_id, versionId="1")
    assert json.loads(gzip.decompress(versioned["imageSetMetadataBlob"].read())) == metadata
    error = client_error(mi.get_image_set_metadata, datastoreId=ds, imageSetId=source.image_set_id, versionId="9")
    assert (error["Code"], error["HTTPStatusCode"]) == ("ResourceNotFoundException", 404)


def _ids(page: dict[str, Any]) -> list[str]:
    return [s["imageSetId"] for s in page["imageSetsMetadataSummaries"]]


def _equal(name: str, value: object) -> dict[str, Any]:
    return {"values": [{name: value}], "operator": "EQUAL"}


def test_search_filters(emu, mi, ds, clock) -> None:
    first = emu.seed_image_set(ds, patient_id="PAT-A", study_uid="1.2.840.1")
    clock.advance(10)
    second = emu.seed_image_set(ds, patient_id="PAT-A", study_uid="1.2.840.1", is_primary=False)
    clock.advance(10)
    third = emu.seed_image_set(ds, patient_id="PAT-B")

    def search(*filters: dict[str, Any]) -> list[str]:
        return _ids(mi.search_image_sets(datastoreId=ds, searchCriteria={"filters": list(filters)}))

    assert set(search(_equal("DICOMPatientId", "PAT-A"))) == {first.image_set_id, second.image_set_id}
    assert search(_equal("DICOMPatientId", "PAT-A"), _equal("isPrimary", True)) == [first.image_set_id]
    assert search(_equal("isPrimary", False)) == [second.image_set_id]
    assert set(search(_equal("DICOMStudyInstanceUID", "1.2.840.1"))) == {first.image_set_id, second.image_set_id}
    assert search(_equal("DICOMSeriesInstanceUID", third.series_uids[0])) == [third.image_set_id]
    window = {
        "values": [
            {"createdAt": datetime.fromtimestamp(clock.now() - 15, UTC)},
            {"createdAt": datetime.fromtimestamp(clock.now() - 5, UTC)},
        ],
        "operator": "BETWEEN",
    }
    assert search(window) == [second.image_set_id]
    updated = {
        "values": [{"updatedAt": datetime(2000, 1, 1, tzinfo=UTC)}, {"updatedAt": datetime.now(UTC)}],
        "operator": "BETWEEN",
    }
    assert len(search(updated)) == 3
    summary = mi.search_image_sets(datastoreId=ds, searchCriteria={"filters": [_equal("DICOMPatientId", "PAT-B")]})
    only = summary["imageSetsMetadataSummaries"][0]
    assert only["version"] == 1 and only["isPrimary"] is True
    assert only["DICOMTags"]["DICOMPatientId"] == "PAT-B"
    assert only["DICOMTags"]["DICOMSeriesInstanceUID"] == third.series_uids[0]
    assert only["DICOMTags"]["DICOMNumberOfStudyRelatedInstances"] == 1
    bad = client_error(
        mi.search_image_sets,
        datastoreId=ds,
        searchCriteria={"filters": [{"values": [{"DICOMPatientId": "x"}], "operator": "BETWEEN"}]},
    )
    assert bad["Code"] == "ValidationException"


def test_search_sort_and_pagination(emu, mi, ds, clock) -> None:
    created = []
    for _ in range(5):
        created.append(emu.seed_image_set(ds).image_set_id)
        clock.advance(1)
    criteria = {"sort": {"sortField": "createdAt", "sortOrder": "ASC"}}
    page = mi.search_image_sets(datastoreId=ds, searchCriteria=criteria, maxResults=2)
    seen = _ids(page)
    assert page["sort"] == criteria["sort"]
    while "nextToken" in page:
        page = mi.search_image_sets(datastoreId=ds, searchCriteria=criteria, maxResults=2, nextToken=page["nextToken"])
        seen += _ids(page)
    assert seen == created
    descending = mi.search_image_sets(
        datastoreId=ds, searchCriteria={"sort": {"sortField": "createdAt", "sortOrder": "DESC"}}
    )
    assert _ids(descending) == created[::-1]
    paginator = mi.get_paginator("search_image_sets")
    assert (
        sum(
            len(p["imageSetsMetadataSummaries"])
            for p in paginator.paginate(datastoreId=ds, PaginationConfig={"PageSize": 2})
        )
        == 5
    )
    assert client_error(mi.search_image_sets, datastoreId=ds, nextToken="garbage")["Code"] == "ValidationException"


def test_list_image_set_versions_paginates(emu, mi, ds, clock) -> None:
    primary = emu.seed_image_set(ds, is_primary=False)
    version = "1"
    for _ in range(3):
        other = emu.seed_image_set(ds, is_primary=False)
        version = copy_request(mi, other, destination=primary, destination_version=version, force=True)[
            "destinationImageSetProperties"
        ]["latestVersionId"]
        clock.advance(2)
    first = mi.list_image_set_versions(datastoreId=ds, imageSetId=primary.image_set_id, maxResults=3)
    assert [v["versionId"] for v in first["imageSetPropertiesList"]] == ["4", "3", "2"]
    rest = mi.list_image_set_versions(datastoreId=ds, imageSetId=primary.image_set_id, nextToken=first["nextToken"])
    assert [v["versionId"] for v in rest["imageSetPropertiesList"]] == ["1"]
    newest = first["imageSetPropertiesList"][0]
    assert (newest["ImageSetWorkflowStatus"], newest["overrides"], newest["isPrimary"]) == (
        "COPIED",
        {"forced": True},
        False,
    )
    assert [v["versionId"] for v in emu.versions(ds, primary.image_set_id)] == ["1", "2", "3", "4"]


def test_delete_image_set(emu, mi, ds, clock, events) -> None:
    doomed = emu.seed_image_set(ds)
    answer = mi.delete_image_set(datastoreId=ds, imageSetId=doomed.image_set_id)
    assert (answer["imageSetState"], answer["imageSetWorkflowStatus"]) == ("LOCKED", "DELETING")
    gone = mi.get_image_set(datastoreId=ds, imageSetId=doomed.image_set_id)
    assert (gone["imageSetState"], gone["imageSetWorkflowStatus"]) == ("DELETED", "DELETED")
    assert "deletedAt" in gone
    assert client_error(mi.get_image_set_metadata, datastoreId=ds, imageSetId=doomed.image_set_id)["Code"] == (
        "ResourceNotFoundException"
    )
    assert _ids(mi.search_image_sets(datastoreId=ds)) == []
    assert [t for t, _, _ in events] == ["Image Set Deleting", "Image Set Deleted"]


def test_delete_of_a_locked_image_set_is_a_conflict(emu, mi, ds) -> None:
    source = emu.seed_image_set(ds)
    copy_request(mi, source)
    error = client_error(mi.delete_image_set, datastoreId=ds, imageSetId=source.image_set_id)
    assert error["Code"] == "ConflictException"
    assert client_error(mi.delete_image_set, datastoreId=ds, imageSetId="f" * 32)["Code"] == (
        "ResourceNotFoundException"
    )


def test_update_image_set_metadata(emu, mi, ds, clock, events, stale_answer) -> None:
    non_primary = emu.seed_image_set(ds, is_primary=False, patient_id="WRONG")
    updates = {"SchemaVersion": 1.1, "Patient": {"DICOM": {"PatientID": "RIGHT"}}}
    answer = mi.update_image_set_metadata(
        datastoreId=ds,
        imageSetId=non_primary.image_set_id,
        latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": json.dumps(updates).encode()}},
    )
    assert (answer["latestVersionId"], answer["imageSetState"], answer["imageSetWorkflowStatus"]) == (
        "2",
        "LOCKED",
        "UPDATING",
    )
    assert mi.get_image_set(datastoreId=ds, imageSetId=non_primary.image_set_id)["imageSetWorkflowStatus"] == "UPDATED"
    assert emu.metadata(ds, non_primary.image_set_id)["Patient"]["DICOM"]["PatientID"] == "RIGHT"
    assert [t for t, _, _ in events] == ["Image Set Updating", "Image Set Updated"]
    stale = client_error(
        mi.update_image_set_metadata,
        datastoreId=ds,
        imageSetId=non_primary.image_set_id,
        latestVersionId="1",
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )
    assert_stale(stale, stale_answer)
    mi.update_image_set_metadata(
        datastoreId=ds,
        imageSetId=non_primary.image_set_id,
        latestVersionId="2",
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )
    assert emu.metadata(ds, non_primary.image_set_id)["Patient"]["DICOM"]["PatientID"] == "WRONG"

    primary = emu.seed_image_set(ds)
    refused = client_error(
        mi.update_image_set_metadata,
        datastoreId=ds,
        imageSetId=primary.image_set_id,
        latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": json.dumps(updates).encode()}},
    )
    assert refused["Code"] == "ValidationException"


def test_datastore_with_a_fixed_id(emu, mi) -> None:
    fixed = "0123456789abcdef0123456789abcdef"
    assert emu.create_datastore("fixed", datastore_id=fixed) == fixed
    assert emu.create_datastore("fixed", datastore_id=fixed) == fixed
    assert mi.get_datastore(datastoreId=fixed)["datastoreProperties"]["datastoreName"] == "fixed"
    with pytest.raises(ValueError, match="32 characters"):
        emu.create_datastore(datastore_id="UPPER")


def test_datastores(emu, mi) -> None:
    created = mi.create_datastore(datastoreName="api-store", clientToken="token-1")
    assert created["datastoreStatus"] == "CREATING"
    again = mi.create_datastore(datastoreName="api-store", clientToken="token-1")
    assert again["datastoreId"] == created["datastoreId"]
    properties = mi.get_datastore(datastoreId=created["datastoreId"])["datastoreProperties"]
    assert (properties["datastoreName"], properties["datastoreStatus"]) == ("api-store", "ACTIVE")
    emu.create_datastore("helper-store")
    names = [d["datastoreName"] for d in mi.list_datastores()["datastoreSummaries"]]
    assert names == ["api-store", "helper-store"]
    assert mi.list_datastores(datastoreStatus="DELETED")["datastoreSummaries"] == []
    arn = properties["datastoreArn"]
    mi.tag_resource(resourceArn=arn, tags={"team": "imaging"})
    assert mi.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "imaging"}
    mi.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert mi.list_tags_for_resource(resourceArn=arn)["tags"] == {}
    assert mi.delete_datastore(datastoreId=created["datastoreId"])["datastoreStatus"] == "DELETING"
    assert client_error(mi.get_datastore, datastoreId=created["datastoreId"])["Code"] == "ResourceNotFoundException"
