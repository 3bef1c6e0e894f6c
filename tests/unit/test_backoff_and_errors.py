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


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("ThrottlingException", 429, errors.ServiceThrottled),
        ("InternalServerException", 500, errors.ServiceInternalError),
        ("ServiceQuotaExceededException", 402, errors.ServiceQuotaExceeded),
        ("ConflictException", 409, errors.ImageSetConflict),
        ("ValidationException", 400, errors.InvalidRequest),
        ("ResourceNotFoundException", 404, errors.ImageSetNotFound),
        ("AccessDeniedException", 403, errors.AccessDenied),
        ("SomethingNew", 503, errors.ServiceInternalError),
        ("SomethingNew", 400, errors.InvalidRequest),
    ],
)
def test_service_errors_map_to_one_taxonomy(code, status, cls):
    err = errors.from_service_error(code, "msg", http_status=status)
    assert type(err) is cls and err.message == f"{code}: msg"


def test_every_error_is_in_exactly_one_handling_group():
    groups = [
        errors.TRANSIENT_ERRORS,
        errors.STATE_ERRORS,
        errors.STILL_COPYING_ERRORS,
        errors.REPACE_ERRORS,
        errors.TERMINAL_ERRORS,
    ]
    names = [n for g in groups for n in g]
    assert sorted(names) == sorted(errors.ALL_ERROR_CLASSES) and len(names) == len(set(names))
    for name in errors.TERMINAL_ERRORS:
        assert not errors.ALL_ERROR_CLASSES[name].retryable
    retryable = errors.TRANSIENT_ERRORS + errors.STATE_ERRORS + errors.STILL_COPYING_ERRORS + errors.REPACE_ERRORS
    for name in retryable:
        assert errors.ALL_ERROR_CLASSES[name].retryable


def test_reason_codes():
    assert errors.reason_code_for("CopyFailed") == "CopyFailed"
    assert errors.reason_code_for("CopyStillInProgress") == "CopyWaitBudgetExhausted"
    assert errors.reason_code_for("States.Timeout") == "Timeout"
    assert errors.reason_code_for("Sandbox.Timedout") == "Timeout"
    assert errors.reason_code_for("Lambda.Unknown") == "LambdaError"
    assert errors.reason_code_for("Weird") == "InternalError"
