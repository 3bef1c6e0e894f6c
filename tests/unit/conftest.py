import pytest

from hicopy.domain.pacing import InMemoryPaceStore, Pacer
from tests.support.fakes import FakeImaging, metadata
from tests.unit.workflow_support import DST, S1, SRC


@pytest.fixture
def pacer():
    return Pacer(InMemoryPaceStore(), rate=0.25)


@pytest.fixture
def imaging():
    fake = FakeImaging()
    fake.add(SRC, version=2, meta=metadata({S1: {f"{S1}.{n}": 1 for n in range(1, 6)}}))
    fake.add(DST, version=7)
    return fake
