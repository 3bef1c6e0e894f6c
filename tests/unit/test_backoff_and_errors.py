import pytest

from hicopy import errors
from hicopy.domain.backoff import expected_status_checks, max_attempts_for, nominal_delay


def test_nominal_delay_is_capped():
    assert [nominal_delay(k, 5, 2, 60) for k in range(6)] == [5, 10, 20, 40, 60, 60]


def test_max_attempts_covers_the_expected_wait():
    n = max_attempts_for(3600, 5, 2, 120)
    expected = sum(nominal_delay(k, 5, 2, 120) / 2 for k in range(n))
    assert expected >= 3600 > expected - nominal_delay(n - 1, 5, 2, 120) / 2


@pytest.mark.parametrize("bad", [(0, 5, 2, 60), (60, 0, 2, 60), (60, 5, 0.5, 60), (60, 5, 2, 0)])
def test_max_attempts_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        max_attempts_for(*bad)


def test_expected_checks_grow_slowly_with_copy_time():
    short, medium, long = (expected_status_checks(s, 5, 2, 120) for s in (10, 120, 1800))
    assert short < medium < long <= 40


def test_every_error_is_in_exactly_one_handling_group():
    groups = {
        errors.Handling.TRANSIENT: errors.TRANSIENT_ERRORS,
        errors.Handling.STATE: errors.STATE_ERRORS,
        errors.Handling.REPACE: errors.REPACE_ERRORS,
        errors.Handling.TERMINAL: errors.TERMINAL_ERRORS,
    }
    names = [n for g in groups.values() for n in g]
    assert sorted(names) == sorted(errors.ALL_ERROR_CLASSES) and len(names) == len(set(names))
    for handling, group in groups.items():
        assert group == [n for n, cls in errors.ALL_ERROR_CLASSES.items() if cls.handling is handling]


def test_the_table_holds_every_error_class_defined_in_the_module():
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, errors.OrchestratorError)
        and value is not errors.OrchestratorError
    }
    assert defined == set(errors.ALL_ERROR_CLASSES)


def test_a_reason_code_is_the_class_name_except_for_the_exhausted_wait():
    for name, cls in errors.ALL_ERROR_CLASSES.items():
        assert cls.code == (name if cls is not errors.CopyStillInProgress else "CopyWaitBudgetExhausted")
        assert errors.reason_code_for(name) == cls.code


def test_an_error_class_must_declare_its_handling():
    with pytest.raises(TypeError, match="must declare its handling"):
        type("Undeclared", (errors.OrchestratorError,), {})


def test_reason_codes():
    assert errors.reason_code_for("CopyFailed") == "CopyFailed"
    assert errors.reason_code_for("CopyStillInProgress") == "CopyWaitBudgetExhausted"
    assert errors.reason_code_for("States.Timeout") == "Timeout"
    assert errors.reason_code_for("Sandbox.Timedout") == "Timeout"
    assert errors.reason_code_for("Lambda.Unknown") == "LambdaError"
    assert errors.reason_code_for("Weird") == "InternalError"
