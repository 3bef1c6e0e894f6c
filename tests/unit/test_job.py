import pytest

from hicopy.domain.job import parse_job
from hicopy.errors import JobRejected
from tests.support.contracts import validator

DS = "a" * 32
SRC = "b" * 32
DST = "c" * 32


def job(**kw):
    return {"datastoreId": DS, "source": {"imageSetId": SRC}, **kw}


def test_minimal_job_parses_with_defaults():
    j = parse_job(job())
    assert j.force is False and j.promoteToPrimary is False and j.destination is None and not j.has_selection


def test_full_job_parses():
    j = parse_job(
        job(
            jobId="job-1",
            destination={"imageSetId": DST, "versionId": "3"},
            instances=["1.2.3"],
            series=["1.2"],
            force=True,
            correlationId="abc-123",
        )
    )
    assert j.destination_image_set_id == DST and j.destination_version_id == "3" and j.force


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (job(foo=1), "foo: unknown field"),
        (job(source={"imageSetId": SRC, "version": "1"}), "source.version: unknown field"),
        (job(datastoreId="ABC"), "datastoreId: String should match pattern"),
        ({"source": {"imageSetId": SRC}}, "datastoreId: Field required"),
        (job(source={"imageSetId": SRC, "versionId": 3}), "source.versionId: Input should be a valid string"),
        (job(force="true"), "force: Input should be a valid boolean"),
        (job(jobId="has space"), "jobId: String should match pattern"),
        (job(jobId="x" * 81), "jobId"),
        (job(instances=[]), "instances: List should have at least 1 item"),
        (job(instances=["1..3"]), "instances.0: String should match pattern"),
        (job(instances=["1.2", "1.2"]), "instances contains duplicate UIDs"),
        (job(destination={"imageSetId": SRC}), "destination.imageSetId must differ from source.imageSetId"),
        (job(destination={"versionId": "1"}), "destination.versionId needs destination.imageSetId"),
        (job(promoteToPrimary=True, destination={"imageSetId": DST}), "promoteToPrimary copies into a new primary"),
    ],
)
def test_bad_jobs_are_rejected_with_a_precise_reason(data, fragment):
    with pytest.raises(JobRejected) as exc:
        parse_job(data)
    assert fragment in exc.value.message


# Arabic-Indic twelve, fullwidth one, a mix, superscript two
@pytest.mark.parametrize("version", ["\u0661\u0662", "\uff11", "1\u0662", "\u00b2"])
@pytest.mark.parametrize("field", ["source", "destination"])
def test_version_ids_are_ascii_digits_only(field, version):
    """Was: ``^\\d{1,20}$`` accepted any script's digits ("\u0661\u0662" is 12 in Arabic-Indic digits)."""
    data = job(**{field: {"imageSetId": SRC if field == "source" else DST, "versionId": version}})
    with pytest.raises(JobRejected) as exc:
        parse_job(data)
    assert exc.value.message == f"invalid copy job: {field}.versionId: String should match pattern '^[0-9]{{1,20}}$'"
    assert not validator("copy-job.schema.json").is_valid(data)  # the published JSON Schema refuses it too


def test_non_object_is_rejected():
    with pytest.raises(JobRejected, match="must be a JSON object, got list"):
        parse_job([1, 2])


# --- UIDs: what real archives and HealthImaging accept (issue #14) ------------------------------------------------
def _real_world_uids() -> list[str]:
    """Every Study/Series/SOP Instance UID of the real metadata documents under tests/data (tests/data/README.md)."""
    from tests.emulator.real_data import METADATA_DOCUMENTS, instances, metadata_document

    uids: set[str] = set()
    for name in METADATA_DOCUMENTS:
        document = metadata_document(name)
        uids.add(document["Study"]["DICOM"]["StudyInstanceUID"])
        for series_uid, sop_uid, _ in instances(document):
            uids |= {series_uid, sop_uid}
    return sorted(uids)


LEADING_ZERO_UIDS = [
    "1.2.840.113619.2.320.01",  # a component with a leading zero, as real archives hold them (issue #14)
    "1.2.840.113619.2.55.3.604688119.969.1268071029.320.0001",
    "0.00.1",
]


@pytest.mark.parametrize("uid", [*_real_world_uids(), *LEADING_ZERO_UIDS, "1" * 64, "1." * 31 + "12"])
def test_uids_that_real_archives_and_healthimaging_hold_are_accepted(uid):
    j = parse_job(job(instances=[uid], series=[uid]))
    assert list(j.instances or []) == [uid]
    validator("copy-job.schema.json").validate(job(instances=[uid], series=[uid]))  # the published schema agrees


@pytest.mark.parametrize(
    "uid", ["", ".", "1.", ".1", "1..2", "1.2a", "1 .2", "1,2", "-1", "+1", "1e3", "\uff11.2", "\u0661.2", "1" * 65]
)
def test_what_cannot_be_a_uid_is_rejected(uid):
    with pytest.raises(JobRejected) as exc:
        parse_job(job(instances=[uid]))
    assert "instances.0" in exc.value.message
