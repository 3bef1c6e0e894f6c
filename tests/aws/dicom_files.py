"""Small, valid DICOM CT files generated with pydicom (imported lazily: the suite is skipped without it)."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field

ROOT = "1.2.826.0.1.3680043.10.1474"  # a UID root for test data; every UID below is generated under it


@dataclass
class Series:
    uid: str
    number: int
    sop_uids: list[str] = field(default_factory=list)


@dataclass
class Study:
    patient_id: str
    patient_name: str
    study_uid: str
    series: list[Series] = field(default_factory=list)


def uid(rng: random.Random) -> str:
    return f"{ROOT}.{rng.randrange(10**9, 10**10)}.{rng.randrange(10**9, 10**10)}"


def new_study(rng: random.Random, *, patient_id: str, patient_name: str = "PROBE^PATIENT") -> Study:
    return Study(patient_id=patient_id, patient_name=patient_name, study_uid=uid(rng))


def add_series(rng: random.Random, study: Study, *, instances: int, series_uid: str | None = None) -> Series:
    series = Series(uid=series_uid or uid(rng), number=len(study.series) + 1)
    series.sop_uids = [uid(rng) for _ in range(instances)]
    study.series.append(series)
    return series


def files(study: Study, series: Series, *, patient_name: str | None = None) -> dict[str, bytes]:
    """One 8x8 CT image per SOP Instance UID of ``series``: file name -> DICOM Part 10 bytes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    out: dict[str, bytes] = {}
    for n, sop_uid in enumerate(series.sop_uids, 1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        ds.PatientID, ds.PatientName = study.patient_id, patient_name or study.patient_name
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study.study_uid, series.uid
        ds.StudyID, ds.AccessionNumber, ds.StudyDate = "1", "ACC1", "20250101"
        ds.SeriesNumber, ds.InstanceNumber, ds.Modality = series.number, n, "CT"
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = bytes(8 * 8 * 2)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out[f"{series.uid}-{n}.dcm"] = buffer.getvalue()
    return out
