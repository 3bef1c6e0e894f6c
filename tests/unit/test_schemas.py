import json

from hicopy.schemas import all_schemas, render
from tests.support.contracts import SCHEMAS, assert_valid_job


def test_committed_schemas_match_the_models():
    for name, schema in all_schemas().items():
        assert (SCHEMAS / name).read_text() == render(schema), f"schemas/{name} is stale: run `make schemas`"


def test_readme_job_example_is_valid():
    assert_valid_job(json.loads((SCHEMAS.parent / "examples" / "job.json").read_text()))


def test_schemas_directory_holds_only_generated_files():
    """A renamed event leaves no stale schema behind (schemaVersion 2.0 renamed the terminal events)."""
    assert {p.name for p in SCHEMAS.glob("*.json")} == set(all_schemas())


def test_no_detail_type_of_ours_is_one_of_healthimagings():
    """A rule or a log search on detail-type alone must never mix our events with the service's."""
    from hicopy import contract
    from offline.healthimaging.events import SERVICE_IMAGE_SET_EVENTS, SERVICE_IMPORT_JOB_EVENTS

    ours = {*contract.TERMINAL_DETAIL_TYPES, *contract.IMPORT_DETAIL_TYPES, contract.COPY_REQUESTED}
    service = {*SERVICE_IMAGE_SET_EVENTS.values(), *SERVICE_IMPORT_JOB_EVENTS.values()}
    captured = {
        json.loads(p.read_text())["detail-type"]
        for p in (SCHEMAS.parent / "tests/data/healthimaging/events").glob("*.json")
    }
    assert captured <= service, captured - service
    assert not ours & service, ours & service
    assert (contract.SUCCEEDED, contract.FAILED) == ("Copy Job Succeeded", "Copy Job Failed")
