import json

from hicopy.schemas import all_schemas, render
from tests.support.contracts import SCHEMAS, assert_valid_job


def test_committed_schemas_match_the_models():
    for name, schema in all_schemas().items():
        assert (SCHEMAS / name).read_text() == render(schema), f"schemas/{name} is stale: run `make schemas`"


def test_readme_job_example_is_valid():
    assert_valid_job(json.loads((SCHEMAS.parent / "examples" / "job.json").read_text()))
