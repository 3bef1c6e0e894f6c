"""HealthImaging (``medical-imaging``) behind the ``ImagingPort`` interface. The only module that calls it."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.config import Config

from hicopy.adapters.edge import AwsAdapter
from hicopy.domain.ports import CopyRequest, CopyStarted, ImageSetInfo, ImageSetSummary


def metadata_outline(blob: bytes, *, gzipped: bool = False, whole: bool = False) -> dict[str, Any]:
    """GetImageSetMetadata's document, parsed into its outline: ``Study.Series.<SeriesInstanceUID>.Instances.
    <SOPInstanceUID>.ImageFrames`` (one ``None`` per frame), every ``DICOM`` attribute object dropped while parsing.

    All the workflow reads of the metadata is UIDs and frame counts. Parsed whole, the document takes about 9 times
    its JSON size in memory (27 MB of JSON for 5,000 instances: about 250 MB); pruned object by object as the parser
    builds it, only the outline stays (``tests/functional/test_memory.py`` measures it). It also keeps the
    patient's attributes out of the function's memory.
    """
    if gzipped or blob[:2] == b"\x1f\x8b":
        blob = gzip.GzipFile(fileobj=io.BytesIO(blob)).read()
    document: dict[str, Any] = json.loads(blob) if whole else json.loads(blob, object_hook=_outline)
    return document


def _outline(obj: dict[str, Any]) -> dict[str, Any]:
    """``json.loads``' object hook, called innermost object first: an instance keeps its frame count, a study or
    series object loses its attributes (``DICOM``)."""
    frames = obj.get("ImageFrames")
    if isinstance(frames, list):
        return {"ImageFrames": [None] * len(frames)}
    obj.pop("DICOM", None)
    obj.pop("DICOMVRs", None)
    return obj


class HealthImaging(AwsAdapter):
    SERVICE = "medical-imaging"
    # Retries are the state machine's job (backoff with jitter, bounded, visible in the execution history);
    # botocore's own retries would hide throttling and multiply CopyImageSet calls.
    CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        with self.calling(operation):
            response: dict[str, Any] = getattr(self.client, operation)(**params)
        return response

    def get_image_set(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> ImageSetInfo:
        params: dict[str, Any] = {"datastoreId": datastore_id, "imageSetId": image_set_id}
        if version_id is not None:
            params["versionId"] = version_id
        r = self._call("get_image_set", **params)
        return ImageSetInfo(
            datastore_id=r["datastoreId"],
            image_set_id=r["imageSetId"],
            version_id=r["versionId"],
            state=r["imageSetState"],
            workflow_status=r.get("imageSetWorkflowStatus", ""),
            message=r.get("message"),
            is_primary=r.get("isPrimary"),
            storage_tier=r.get("storageTier"),
        )

    def get_metadata(
        self, datastore_id: str, image_set_id: str, version_id: str | None = None, *, whole: bool = False
    ) -> dict[str, Any]:
        """The metadata's outline (``metadata_outline``: all the workflow reads); ``whole``: the whole document."""
        params: dict[str, Any] = {"datastoreId": datastore_id, "imageSetId": image_set_id}
        if version_id is not None:
            params["versionId"] = version_id
        with self.calling("get_image_set_metadata"):  # the blob streams in: reading it can time out too
            r = self.client.get_image_set_metadata(**params)
            blob = r["imageSetMetadataBlob"].read()
        return metadata_outline(blob, gzipped=r.get("contentEncoding") == "gzip", whole=whole)

    def copy_image_set(self, request: CopyRequest) -> CopyStarted:
        source: dict[str, Any] = {"latestVersionId": request.source_version_id}
        if request.copiable_attributes is not None:
            source["DICOMCopies"] = {"copiableAttributes": request.copiable_attributes}
        info: dict[str, Any] = {"sourceImageSet": source}
        if request.destination_image_set_id is not None:
            info["destinationImageSet"] = {
                "imageSetId": request.destination_image_set_id,
                "latestVersionId": request.destination_version_id,
            }
        params: dict[str, Any] = {
            "datastoreId": request.datastore_id,
            "sourceImageSetId": request.source_image_set_id,
            "copyImageSetInformation": info,
        }
        if request.force:
            params["force"] = True
        if request.promote_to_primary:
            params["promoteToPrimary"] = True
        r = self._call("copy_image_set", **params)
        dest, src = r["destinationImageSetProperties"], r["sourceImageSetProperties"]
        return CopyStarted(
            destination_image_set_id=dest["imageSetId"],
            destination_version_id=dest["latestVersionId"],
            source_version_id=src["latestVersionId"],
        )

    def copies_created_since(self, datastore_id: str, source_image_set_id: str, since: float) -> list[ImageSetInfo]:
        """Image sets created in ``[since, since + 15 min]`` (other than the source) whose latest version is a copy.

        A copy's metadata is empty until it completes, so candidates are found by creation time, not by Series.
        """
        window = [{"createdAt": datetime.fromtimestamp(t, UTC)} for t in (since, since + 900)]
        found = []
        for item in self.search_image_sets(datastore_id, [{"values": window, "operator": "BETWEEN"}], limit=200):
            if item.image_set_id == source_image_set_id or (item.created_at is not None and item.created_at < since):
                continue
            info = self.get_image_set(datastore_id, item.image_set_id)
            if info.workflow_status in ("COPYING", "COPIED", "COPY_FAILED"):
                found.append(info)
        return found

    def delete_image_set(self, datastore_id: str, image_set_id: str) -> str:
        r = self._call("delete_image_set", datastoreId=datastore_id, imageSetId=image_set_id)
        return str(r.get("imageSetWorkflowStatus", ""))

    def search_image_sets(
        self, datastore_id: str, filters: list[dict[str, Any]], *, limit: int = 500
    ) -> Iterator[ImageSetSummary]:
        """Yield image sets matching all ``filters`` (SearchImageSets' ``searchCriteria.filters``)."""
        token: str | None = None
        seen = 0
        while True:
            params: dict[str, Any] = {
                "datastoreId": datastore_id,
                "searchCriteria": {"filters": filters},
                "maxResults": 50,
            }
            if token:
                params["nextToken"] = token
            r = self._call("search_image_sets", **params)
            for item in r.get("imageSetsMetadataSummaries", []):
                yield ImageSetSummary(
                    image_set_id=item["imageSetId"],
                    version=str(item.get("version", "")),
                    is_primary=item.get("isPrimary"),
                    created_at=_ts(item.get("createdAt")),
                    updated_at=_ts(item.get("updatedAt")),
                    extra={"DICOMTags": item.get("DICOMTags", {})},
                )
                seen += 1
                if seen >= limit:
                    return
            token = r.get("nextToken")
            if not token:
                return

    def get_import_job(self, datastore_id: str, job_id: str) -> dict[str, Any]:
        r = self._call("get_dicom_import_job", datastoreId=datastore_id, jobId=job_id)
        props: dict[str, Any] = r["jobProperties"]
        return props


def _ts(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


class PlannerImaging:
    """``PlannerImagingPort`` on top of ``HealthImaging``."""

    def __init__(self, imaging: HealthImaging) -> None:
        self.imaging = imaging

    def is_primary(self, datastore_id: str, image_set_id: str) -> bool | None:
        return self.imaging.get_image_set(datastore_id, image_set_id).is_primary

    def version_of(self, datastore_id: str, image_set_id: str) -> str:
        return self.imaging.get_image_set(datastore_id, image_set_id).version_id

    def series_of(self, datastore_id: str, image_set_id: str) -> list[str]:
        document = self.imaging.get_metadata(datastore_id, image_set_id)
        return list(((document.get("Study") or {}).get("Series") or {}).keys())

    def metadata_of(self, datastore_id: str, image_set_id: str) -> dict[str, Any]:
        return self.imaging.get_metadata(datastore_id, image_set_id)

    def primary_for_series(self, datastore_id: str, series_uid: str, exclude: str) -> str | None:
        filters = [
            {"values": [{"DICOMSeriesInstanceUID": series_uid}], "operator": "EQUAL"},
            {"values": [{"isPrimary": True}], "operator": "EQUAL"},
        ]
        for found in self.imaging.search_image_sets(datastore_id, filters, limit=50):
            if found.image_set_id != exclude and found.is_primary is not False:
                return found.image_set_id
        return None
