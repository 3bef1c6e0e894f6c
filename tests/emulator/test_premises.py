"""The emulator against the real service's answers (``tests/data/healthimaging/premises.json``, ``make test-aws``).

Every probe of ``tests.support.premises`` runs on the emulator here. For a premise that ``make test-aws`` verified,
the emulator must answer what AWS answered; for one still unverified, the answer must be the one we assumed (the
file's ``assumed``), so that the file says truthfully what the local tests stand on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from offline.clock import ManualClock
from offline.healthimaging import HealthImagingEmulator, install
from tests.emulator.premise_world import EmulatorWorld
from tests.support.premises import BY_ID, PREMISES, UNVERIFIED, load


@pytest.fixture
def world() -> Iterator[EmulatorWorld]:
    clock = ManualClock()
    emu = HealthImagingEmulator(clock=clock, background=False, throttling=False)
    with install(emu):
        yield EmulatorWorld(emu, clock)


def test_the_file_lists_every_premise_once_with_its_status() -> None:
    recorded = load()["premises"]
    assert list(recorded) == [p.id for p in PREMISES]
    for premise_id, entry in recorded.items():
        assert entry["question"] == BY_ID[premise_id].question
        assert entry["status"] in (UNVERIFIED, "verified")
        assert (entry["answer"] is None) == (entry["status"] == UNVERIFIED), premise_id


@pytest.mark.parametrize("premise", PREMISES, ids=lambda p: p.id)
def test_the_emulator_answers_as_aws_did_or_as_we_assumed(world: EmulatorWorld, premise) -> None:
    entry = load()["premises"][premise.id]
    answer = premise.probe(world)
    if entry["status"] == "verified":
        assert answer == entry["answer"], f"{premise.id}: AWS answered {entry['answer']}, the emulator {answer}"
    else:
        assert answer == entry["assumed"], f"{premise.id}: the emulator answers {answer}; update 'assumed'"
