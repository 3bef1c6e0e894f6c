"""The opt-in real-AWS suite (``make test-aws``): skipped unless ``HICOPY_AWS_TESTS=1`` and AWS credentials are set.

It deploys the stack into the account against a throwaway data store, imports generated DICOM files, runs the
copies and the post-import policy, records the service's answers to ``tests/data/healthimaging/premises.json`` and
removes everything it created (see ``tests/aws/account.py``). ``make test`` collects it and skips it cleanly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

OPT_IN = "HICOPY_AWS_TESTS"


def skip_reason() -> str | None:
    """Why the suite does not run here, or None when it may."""
    if os.environ.get(OPT_IN) != "1":
        return f"real-AWS suite: opt in with {OPT_IN}=1 and AWS credentials (make test-aws; it costs money)"
    import boto3

    if boto3.Session().get_credentials() is None:
        return f"{OPT_IN}=1 but no AWS credentials were found"
    try:
        import pydicom  # noqa: F401  (pinned in requirements.txt; generates the DICOM files the suite imports)
    except ImportError:
        return "pydicom is not installed (requirements.txt pins it: run make venv)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = skip_reason()
    for item in items:
        if "tests/aws/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.aws)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def account() -> Iterator[Any]:
    from tests.aws.account import Account

    with Account.create() as created:
        yield created
