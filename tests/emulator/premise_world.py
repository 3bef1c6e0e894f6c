"""The emulator as a ``tests.support.premises.World``: the probes run on it as they run on AWS."""

from __future__ import annotations

from typing import Any

import boto3

from offline.clock import ManualClock
from offline.healthimaging import HealthImagingEmulator, SeededImageSet
from tests.emulator.conftest import NO_RETRIES, REGION
from tests.support.premises import Made


def _made(seeded: SeededImageSet) -> Made:
    return Made(seeded.image_set_id, seeded.version_id, seeded.study_uid, seeded.series_uids, seeded.instances)


class EmulatorWorld:
    def __init__(self, emu: HealthImagingEmulator, clock: ManualClock) -> None:
        self.emu, self.clock = emu, clock
        self.mi: Any = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        self.datastore_id = emu.create_datastore()
        self._patients = 0

    def make(self, *, series: int = 1, instances: int = 2, study_of: Made | None = None) -> Made:
        self._patients += 1
        seeded = self.emu.seed_image_set(
            self.datastore_id,
            series=series,
            instances_per_series=instances,
            patient_id=f"PROBE-{self._patients}" if study_of is None else self._patient_of(study_of),
            study_uid=study_of.study_uid if study_of else None,
        )
        return _made(seeded)

    def _patient_of(self, made: Made) -> str:
        return str(self.emu.metadata(self.datastore_id, made.image_set_id)["Patient"]["DICOM"]["PatientID"])

    def make_non_primary(self, like: Made) -> Made:
        seeded = self.emu.seed_image_set(
            self.datastore_id,
            patient_id=self._patient_of(like),
            study_uid=like.study_uid,
            series_uids=like.series_uids,
            is_primary=False,
            patient_name="CONFLICTING^NAME",
        )
        return _made(seeded)

    def settle(self, image_set_id: str, version_id: str | None = None) -> dict[str, Any]:
        version = {"versionId": version_id} if version_id else {}
        for _ in range(1000):
            got: dict[str, Any] = self.mi.get_image_set(
                datastoreId=self.datastore_id, imageSetId=image_set_id, **version
            )
            if got["imageSetState"] != "LOCKED":
                return got
            self.clock.advance(1)
            self.emu.tick()
        raise AssertionError(f"{image_set_id} stayed LOCKED")

    def image_set_event_details(self) -> list[dict[str, Any]]:
        return [e.detail for e in self.emu.events if e.detail_type.startswith("Image Set")]
