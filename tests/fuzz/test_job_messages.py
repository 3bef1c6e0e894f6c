"""Fuzzing the job intake: the real consumer handler against moto, the pure job contract, and the import-output
reader. Seeded and bounded (``derandomize=True``). Every Hypothesis test is marked ``slow``: ``make soak``
(``HICOPY_SOAK=1 pytest -m slow``) runs them soak-sized, the default run runs them small.

Invariants of every SQS batch given to ``hicopy.handlers.consumer.handler``:
- the handler returns, and ``batchItemFailures`` is empty: rejections are settled, never retried;
- every invalid message: exactly one ``Copy Job Rejected`` event (valid against its JSON Schema) whose reason names
  the offending field or problem, and the original body in the dead-letter queue;
- every valid message: an execution named by its job ID, with that job as input; one per job ID (duplicates too);
- no call would break an AWS limit that moto does not enforce (SQS characters, PutEvents entry size, execution
  input size).
Bugs these suites found are regression tests with their minimal examples below (an open one would be a strict
xfail, and its input kept out of the generated batches).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from hicopy.adapters.aws import BODY_ENCODING_ATTRIBUTE
from hicopy.contract import REJECTED
from hicopy.domain.events import ORIGINAL_BODY_LIMIT
from hicopy.domain.import_output import MANIFEST, ImportResult, read_import_result
from hicopy.domain.intake import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    TRIGGER_ATTRIBUTE,
    accept,
    json_depth,
    rejected_event,
    trigger_type_of,
)
from hicopy.domain.job import parse_job
from hicopy.errors import ImportOutputInvalid, JobRejected, OrchestratorError
from hicopy.handlers import consumer
from tests.fuzz.strategies import (
    DEEP_HINT,
    Message,
    batches,
    binary_attribute,
    deep_bodies,
    deliverable,
    dumps,
    examples,
    invalid_jobs,
    job_mutations,
    messages,
    nest,
    string_attribute,
    too_deep,
    valid_jobs,
)
from tests.support.aws import TABLE
from tests.support.contracts import assert_valid_event, assert_valid_job
from tests.support.environment import DATASTORE_ID, AwsEnv, aws_environment, invoke
from tests.support.fakes import FakeClock
from tests.support.handlers import sqs_record

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def sized(default: int, soak: int, *, shrink: bool = True) -> settings:
    """The suite's settings with ``default`` examples, ``soak`` under HICOPY_SOAK=1. Tests that run the handler
    against moto do not shrink (minutes per failure); their minimal examples are written out as known-bug tests."""
    phases = tuple(Phase) if shrink else (Phase.explicit, Phase.reuse, Phase.generate)
    return settings(FUZZ, max_examples=examples(default, soak), phases=phases)


DS = DATASTORE_ID  # the environment's data store


# --- the consumer, end to end against moto ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def consumer_env() -> Iterator[AwsEnv]:
    with aws_environment() as env:
        yield env


_message_ids = count(1)


def strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    return value


def _free_schedule(env: AwsEnv) -> None:
    """An idle account for every batch: admission (issue #13) starts every valid job of a batch (SQS batches hold
    at most 10, within the 60 s admission window); deferral is tested in tests/functional/test_admission_handler."""
    for pk in ("pace#CopyImageSet", "pace#Admission", "pace#StartExecution#call"):
        env.client("dynamodb").delete_item(TableName=TABLE, Key={"pk": {"S": pk}})


def run_batch(env: AwsEnv, batch: list[Message]) -> None:
    """Give ``batch`` to the consumer as one SQS event and check every invariant."""
    env.fresh_state_machine()
    _free_schedule(env)
    env.recorder.clear()
    ids = [f"00000000-0000-4000-8000-{next(_message_ids):012d}" for _ in batch]
    event = {"Records": [sqs_record(m.body, mid, m.attributes) for m, mid in zip(batch, ids, strict=True)]}

    result = invoke(env, consumer, event)

    assert result == {"batchItemFailures": []}, "a message was left for a retry"
    assert env.recorder.problems == [], "a call the real service would refuse"
    by_id = dict(zip(ids, batch, strict=True))
    # Valid jobs: the first message with a job ID starts it; the same job again is a silent duplicate; another job
    # under that ID is rejected (JobIdReused).
    expected: dict[str, tuple[Message, str]] = {}
    codes = {mid: "JobRejected" for mid, m in by_id.items() if not m.valid}
    for mid, m in by_id.items():
        if m.valid:
            first = expected.setdefault(m.expected_job_id(mid), (m, mid))
            if canonical_job(first[0].job) != canonical_job(m.job):
                codes[mid] = "JobIdReused"
    invalid = list(codes)

    # Rejections: one event per invalid message, with a reason that names the problem.
    published = env.events()
    assert {e["detail-type"] for e in published} <= {REJECTED}
    assert Counter(e["detail"]["trigger"]["messageId"] for e in published) == Counter(invalid)
    for e in published:
        detail = e["detail"]
        assert_valid_event(REJECTED, detail, e["source"])
        mid = detail["trigger"]["messageId"]
        message = by_id[mid]
        hint = REUSED_HINT if codes[mid] == "JobIdReused" else message.hint
        assert hint in detail["reason"]["message"], (hint, detail["reason"], message.body[:500])
        assert detail["reason"]["code"] == codes[mid] and detail["trigger"]["type"] == message.trigger
        if codes[mid] == "JobIdReused":
            arn = detail["existingExecutionArn"]
            assert arn.endswith(f":{message.expected_job_id(mid)}") and arn in detail["reason"]["message"]
        body_bytes = message.body.encode("utf-8")
        assert detail["originalBodyBytes"] == len(body_bytes)
        assert (
            detail["originalBodyEncoding"] == "utf-8" and detail["originalBody"] == message.body[:ORIGINAL_BODY_LIMIT]
        )
        assert detail["originalBodyTruncated"] is (len(message.body) > ORIGINAL_BODY_LIMIT)

    # The dead-letter queue keeps every rejected message as it was received.
    dead = env.dlq()
    assert Counter(d["MessageAttributes"]["originalMessageId"]["StringValue"] for d in dead) == Counter(invalid)
    reasons = {e["detail"]["trigger"]["messageId"]: e["detail"]["reason"]["message"] for e in published}
    for d in dead:
        mid = d["MessageAttributes"]["originalMessageId"]["StringValue"]
        assert d["Body"] == by_id[mid].body and BODY_ENCODING_ATTRIBUTE not in d["MessageAttributes"]
        assert d["MessageAttributes"]["rejectionCode"]["StringValue"] == codes[mid]
        assert d["MessageAttributes"]["rejectionReason"]["StringValue"] == reasons[mid][:256]

    started = env.executions()
    assert sorted(e["name"] for e in started) == sorted(expected)
    for execution in started:
        m, mid = expected[execution["name"]]
        state = json.loads(execution["input"])
        assert state["job"]["jobId"] == execution["name"]
        assert state["job"].items() >= strip_none(m.job).items(), (state["job"], m.job)
        assert state["trigger"] == m.expected_trigger(mid)


REUSED_HINT = "is already used by execution"


def canonical_job(job: dict[str, Any] | None) -> str:
    """What makes two valid jobs the same copy (the test's own statement of it): defaults filled in, no empty
    destination, selections as sets."""
    data = strip_none(dict(job or {}))
    data.setdefault("force", False)
    data.setdefault("promoteToPrimary", False)
    if not data.get("destination"):
        data.pop("destination", None)
    for name in ("instances", "series"):
        if name in data:
            data[name] = sorted(data[name])
    return json.dumps(data, sort_keys=True)


def _batch(*items: Message) -> list[Message]:
    return list(items)


VALID = {"datastoreId": DS, "source": {"imageSetId": "b" * 32}}


@pytest.mark.slow
@sized(40, 2_000, shrink=False)
@given(batch=batches())
@example(  # one of each extreme, deterministic
    batch=_batch(
        Message(dumps({**VALID, "jobId": "dup"}), valid=True, job={**VALID, "jobId": "dup"}),
        Message(dumps({**VALID, "jobId": "dup", "force": False}), valid=True, job={**VALID, "jobId": "dup"}),
        Message(
            dumps({**VALID, "jobId": "dup", "force": True}), valid=True, job={**VALID, "jobId": "dup", "force": True}
        ),
        Message(json.dumps(VALID) + " " * (MAX_BODY_BYTES - len(json.dumps(VALID))), valid=True, job=VALID),
        Message(json.dumps(VALID) + " " * (MAX_BODY_BYTES + 1 - len(json.dumps(VALID))), hint="bytes"),
        Message('{"datastoreId": "' + DS + '", "source": {"imageSetId": ', hint="not valid JSON"),
        Message(dumps({**VALID, "instances": ["1.2", "1.2"]}), hint="instances contains duplicate UIDs"),
        Message(dumps({"detail-type": "Copy Requested", "detail": [VALID]}), hint="JSON object", trigger="event"),
        Message(dumps({**VALID, "detail-type": "Copy Requested"}), hint="detail-type: unknown field"),
        Message('{"datastoreId": NaN}', hint="not valid JSON: NaN is not a JSON value"),
        Message(
            dumps(VALID),
            {TRIGGER_ATTRIBUTE: string_attribute('{"type":"import","note":-Infinity}')},
            hint=f"{TRIGGER_ATTRIBUTE} is not valid JSON: -Infinity is not a JSON value",
            trigger="import",
        ),
        Message(
            dumps(VALID),
            {TRIGGER_ATTRIBUTE: string_attribute('{"type":"sqs"}')},
            hint=TRIGGER_ATTRIBUTE,
            trigger="import",
        ),
    )
)
def test_consumer_settles_every_batch(consumer_env: AwsEnv, batch: list[Message]) -> None:
    run_batch(consumer_env, batch)


# --- bugs these suites found, now regression tests (minimal examples through the real handler) -----------------
def _one(env: AwsEnv, body: str, attributes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    env.fresh_state_machine()
    _free_schedule(env)
    env.recorder.clear()
    mid = f"00000000-0000-4000-8000-{next(_message_ids):012d}"
    try:
        result: dict[str, Any] = invoke(env, consumer, {"Records": [sqs_record(body, mid, attributes)]})
    except Exception as exc:  # the handler raising is itself a failure of the invariant
        pytest.fail(f"the consumer raised {type(exc).__name__}: {exc}")
    return result


def _rejected_once(env: AwsEnv, result: dict[str, Any]) -> dict[str, Any]:
    """The message was settled as a rejection: one event, one DLQ copy, nothing the real services would refuse."""
    assert result == {"batchItemFailures": []}
    assert env.recorder.problems == []
    (event,) = env.events()
    assert len(env.dlq()) == 1 and event["detail-type"] == REJECTED
    assert_valid_event(REJECTED, event["detail"], event["source"])
    detail: dict[str, Any] = event["detail"]
    return detail


def test_control_characters_in_a_field_name_are_escaped_in_the_reason(consumer_env: AwsEnv) -> None:
    """Was: the name went raw into the DLQ attribute rejectionReason, which SQS refuses (then 5 retries and the
    redrive DLQ, no rejection event)."""
    for body in ('{"a\\u0001b":1}', '{"\\uffff":1}'):
        detail = _rejected_once(consumer_env, _one(consumer_env, body))
        assert "unknown field" in detail["reason"]["message"]


def test_a_huge_field_name_is_truncated_in_the_reason(consumer_env: AwsEnv) -> None:
    """Was: the whole name in the reason; with the 8 KiB originalBody the event exceeded PutEvents' 256 KiB."""
    detail = _rejected_once(consumer_env, _one(consumer_env, dumps({"k" * (MAX_BODY_BYTES - 20): 1})))
    assert len(detail["reason"]["message"]) < 1024
    detail = _rejected_once(consumer_env, _one(consumer_env, dumps({"detail-type": "x" * 150_000, "detail": {}})))
    assert "detail-type" in detail["reason"]["message"] and len(detail["reason"]["message"]) < 1024


def test_a_job_at_the_size_limit_fits_the_execution_input(consumer_env: AwsEnv) -> None:
    """Was: a valid job at the body limit became a StartExecution input above 256 KiB (refused by the service,
    retried as transient, then dead-lettered without any event)."""
    uids = [f"1.2.840.10008.{100_000 + n}" for n in range(MAX_BODY_BYTES // 23)]  # 23 bytes each with "",
    job: dict[str, Any] = {**VALID, "instances": uids}
    del uids[len(uids) - ((len(dumps(job)) - MAX_BODY_BYTES) // 23 + 1) :]
    body = dumps(job)
    body += " " * (MAX_BODY_BYTES - len(body))  # exactly at the limit: accepted
    assert _one(consumer_env, body) == {"batchItemFailures": []}
    assert len(consumer_env.executions()) == 1 and consumer_env.recorder.problems == []


def test_a_job_whose_execution_input_would_be_too_large_is_rejected(consumer_env: AwsEnv) -> None:
    """Under the body limit, but a big hicopyTrigger attribute makes the execution input too large."""
    uids = [f"1.2.840.10008.{100_000 + n}" for n in range((MAX_BODY_BYTES - 1000) // 23)]
    trigger = {"type": "import", "note": "x" * (70 * 1024)}
    result = _one(
        consumer_env, dumps({**VALID, "instances": uids}), {TRIGGER_ATTRIBUTE: string_attribute(dumps(trigger))}
    )
    detail = _rejected_once(consumer_env, result)
    assert "too large" in detail["reason"]["message"] and consumer_env.executions() == []


def test_a_binary_message_attribute_does_not_break_the_message(consumer_env: AwsEnv) -> None:
    """Was: Powertools' string_value raised KeyError for a Binary attribute (no stringValue key): the message,
    even a valid job, failed and was retried to the redrive DLQ."""
    result = _one(consumer_env, dumps({**VALID, "jobId": "bin"}), {"checksum": binary_attribute("AAEC")})
    assert result == {"batchItemFailures": []}
    assert [e["name"] for e in consumer_env.executions()] == ["bin"]
    assert consumer_env.recorder.problems == []


def test_a_lone_surrogate_in_the_body_is_settled(consumer_env: AwsEnv) -> None:
    """Was (defence in depth; SQS cannot deliver such a body): the job was rejected, but QueueSender.send could not
    encode the body for the DLQ (UnicodeEncodeError in botocore, not a ClientError), so the whole batch raised
    BatchProcessingError instead of settling. Now the DLQ keeps the body base64-encoded, flagged by an attribute."""
    body = '{"x":"\ud800"}'
    assert _one(consumer_env, body) == {"batchItemFailures": []}
    assert consumer_env.recorder.problems == []
    (event,) = consumer_env.events()
    assert event["detail-type"] == REJECTED
    assert_valid_event(REJECTED, event["detail"], event["source"])
    detail = event["detail"]
    (dead,) = consumer_env.dlq()
    raw = body.encode("utf-8", "surrogatepass")
    assert dead["Body"] == base64.b64encode(raw).decode("ascii")
    assert dead["MessageAttributes"][BODY_ENCODING_ATTRIBUTE]["StringValue"] == "base64"
    assert base64.b64decode(dead["Body"]).decode("utf-8", "surrogatepass") == body  # nothing lost
    assert dead["MessageAttributes"]["rejectionCode"]["StringValue"] == "JobRejected"
    assert detail["originalBodyEncoding"] == "base64" and detail["originalBody"] == dead["Body"]


def test_a_body_nested_1500_levels_deep_is_rejected_once(consumer_env: AwsEnv) -> None:
    """Was: a 3 KB body nested 1,500 levels deep raised RecursionError in json.loads, which escaped validation: five
    receives, then the redrive DLQ with no rejectionCode and no ``Copy Job Rejected``."""
    job = dumps({**VALID, "jobId": "deep-1"})
    event = dumps({"detail-type": "Copy Requested", "source": "my.pacs", "id": "e-1", "detail": {}})
    for body, trigger in (
        (nest(1500, "["), "sqs"),
        (nest(1500, "{"), "sqs"),
        (job[:-1] + ',"note":' + nest(1500, "mixed") + "}", "sqs"),
        (event.replace('"detail":{}', '"detail":' + nest(1500, "[", job)), "sqs"),  # unreadable: an SQS message
        (nest(100_000, "open"), "sqs"),
    ):
        detail = _rejected_once(consumer_env, _one(consumer_env, body))
        assert DEEP_HINT in detail["reason"]["message"] and detail["reason"]["code"] == "JobRejected"
        assert detail["trigger"]["type"] == trigger and consumer_env.executions() == []
    deep_trigger = '{"type":"import","note":' + nest(1500, "[") + "}"
    result = _one(consumer_env, job, {TRIGGER_ATTRIBUTE: string_attribute(deep_trigger)})
    detail = _rejected_once(consumer_env, result)
    assert TRIGGER_ATTRIBUTE in detail["reason"]["message"] and DEEP_HINT in detail["reason"]["message"]


def test_a_lone_surrogate_escaped_in_the_trigger_is_rejected(consumer_env: AwsEnv) -> None:
    """Was: an event's ``source`` or a ``hicopyTrigger`` value spelled ``"\\ud800"`` went into the execution input
    and the job's events as text no UTF-8 encoder takes. (The job's own fields are refused by their patterns.)"""
    job = dumps({**VALID, "jobId": "surrogate-1"})
    event = '{"detail-type":"Copy Requested","source":"pacs\\ud800","id":"e-2","detail":' + job + "}"
    detail = _rejected_once(consumer_env, _one(consumer_env, event))
    assert "not valid Unicode" in detail["reason"]["message"] and detail["trigger"]["type"] == "event"
    trigger = string_attribute('{"type":"import","note":"\\udc00"}')
    detail = _rejected_once(consumer_env, _one(consumer_env, job, {TRIGGER_ATTRIBUTE: trigger}))
    assert "not valid Unicode" in detail["reason"]["message"] and consumer_env.executions() == []


def test_brackets_inside_strings_are_no_nesting(consumer_env: AwsEnv) -> None:
    job = {**VALID, "jobId": "brackets", "correlationId": "[{" * 60}
    assert _one(consumer_env, dumps(job)) == {"batchItemFailures": []}
    assert [e["name"] for e in consumer_env.executions()] == ["brackets"]


# --- the job contract, pure (no AWS) ------------------------------------------------------------------------------
def _accept(body: str, attributes: dict[str, str] | None = None) -> Any:
    return accept(
        body, message_id="0f8fad5b-d9cb-469f-a165-70867728950e", attributes=attributes or {}, clock=FakeClock()
    )


def check_valid_job(job: dict[str, Any]) -> None:
    parsed = parse_job(job)
    dumped = parsed.model_dump(mode="json", exclude_none=True)
    assert dumped.items() >= strip_none(job).items()
    assert parse_job(dumped) == parsed  # round trip
    assert_valid_job(job)  # the published JSON Schema agrees
    accepted = _accept(dumps(job))
    assert accepted.job.jobId == (job.get("jobId") or "0f8fad5b-d9cb-469f-a165-70867728950e")
    assert accepted.job.model_copy(update={"jobId": job.get("jobId")}) == parsed
    assert accepted.state.dump()["job"] == {**dumped, "jobId": accepted.job.jobId}


def check_invalid_job(case: tuple[dict[str, Any], str]) -> None:
    job, hint = case
    with pytest.raises(JobRejected) as parsed:
        parse_job(job)
    assert hint in parsed.value.message
    with pytest.raises(JobRejected) as accepted:
        _accept(deliverable(job, False))
    assert hint in accepted.value.message


@pytest.mark.slow
@sized(150, 20_000)
@given(job=valid_jobs())
def test_valid_jobs_round_trip(job: dict[str, Any]) -> None:
    check_valid_job(job)


@pytest.mark.slow
@sized(200, 20_000)
@given(case=invalid_jobs)
def test_every_mutation_is_rejected_with_its_reason(case: tuple[dict[str, Any], str]) -> None:
    check_invalid_job(case)


@pytest.mark.slow
@sized(100, 10_000)
@given(job=valid_jobs(), data=st.data())
def test_mutations_compose(job: dict[str, Any], data: st.DataObject) -> None:
    """Two mutations in a row are still rejected, with a JobRejected (never another exception)."""
    first, _ = data.draw(job_mutations(job))
    if isinstance(first.get("source"), dict) and isinstance(first["source"].get("imageSetId"), str):
        second, _ = data.draw(job_mutations(first))
    else:
        second = first
    with pytest.raises(JobRejected):
        parse_job(second)


@pytest.mark.slow
@sized(200, 20_000)
@given(
    body=st.one_of(
        st.text(alphabet=st.characters(exclude_categories=()), max_size=300),
        st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
        deep_bodies().map(lambda m: m.body),
        st.tuples(too_deep, st.sampled_from(["[", "{", "mixed", "open"])).map(lambda t: nest(*t)),
    ),
    trigger=st.one_of(
        st.none(),
        st.text(alphabet=st.characters(exclude_categories=()), max_size=50),
        too_deep.map(lambda depth: nest(depth, "[")),
    ),
)
def test_accept_never_raises_anything_but_job_rejected(body: str, trigger: str | None) -> None:
    """Arbitrary text (lone surrogates included), bodies nested far too deep, and an arbitrary trigger attribute:
    either a job whose execution input is valid, or ``JobRejected`` with a reason from which the whole rejection (its
    trigger type, its hints, its event) is built; never any other exception (e.g. RecursionError)."""
    attributes = {} if trigger is None else {TRIGGER_ATTRIBUTE: trigger}
    try:
        accepted = _accept(body, attributes)
    except JobRejected as exc:
        assert type(exc) is JobRejected and exc.message
        if json_depth(body) > MAX_JSON_DEPTH:  # refused before anything else is read
            assert DEEP_HINT in exc.message
        trigger_type = trigger_type_of(body, attributes)
        detail = rejected_event(body, exc, message_id="m-1", trigger_type=trigger_type, clock=FakeClock())
        assert_valid_event(REJECTED, detail, "hicopy.orchestrator")
        assert detail["reason"] == {"code": "JobRejected", "message": exc.message[:1024]}
    else:
        assert json_depth(body) <= MAX_JSON_DEPTH
        assert_valid_job(accepted.state.dump()["job"])


@pytest.mark.slow
@sized(100, 20_000)
@given(message=messages)
def test_every_generated_message_is_classified(message: Message) -> None:
    attributes = {k: v.get("stringValue") or "" for k, v in message.attributes.items()}
    try:
        _accept(message.body, attributes)
    except JobRejected as exc:
        assert not message.valid and message.hint in exc.message
    else:
        assert message.valid


# --- the import output reader -------------------------------------------------------------------------------------
OUT = "s3://imports/out/c0ffee00c0ffee00c0ffee00c0ffee00-DicomImport-0123456789abcdef0123456789abcdef/"
IMPORT_JOB = {"jobId": "0123456789abcdef0123456789abcdef", "datastoreId": DS, "outputS3Uri": OUT}
SUCCESS, WARNING, FAILURE = (
    OUT + p for p in ("SUCCESS/success.ndjson", "WARNING/warning.ndjson", "FAILURE/failure.ndjson")
)


class Output:
    """``ImportOutputPort`` over a dict of objects."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def read(self, uri: str) -> bytes | None:
        return self.objects.get(uri)


def read(status: str, objects: dict[str, bytes]) -> ImportResult | OrchestratorError:
    """``read_import_result``'s result, or the taxonomy error it raised; anything else propagates."""
    try:
        return read_import_result({**IMPORT_JOB, "jobStatus": status}, Output(objects))
    except OrchestratorError as exc:
        return exc


id32 = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
loose = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10), id32),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)),
    max_leaves=8,
)
image_set_entries = st.fixed_dictionaries(
    {"imageSetId": id32},
    optional={
        "isPrimary": st.one_of(st.booleans(), st.sampled_from(["true", "False", "TRUE"]), loose),
        "imageSetVersion": st.one_of(st.integers(1, 9), st.text(max_size=3), loose),
        "numberOfMatchedSOPInstances": st.one_of(st.integers(0, 99), loose),
        "extra": loose,
    },
)
manifests = st.fixed_dictionaries(
    {},
    optional={
        "jobSummary": st.one_of(
            loose,
            st.fixed_dictionaries(
                {},
                optional={
                    "imageSetsSummary": st.one_of(st.lists(st.one_of(image_set_entries, loose), max_size=4), loose),
                    "numberOfScannedFiles": st.one_of(st.integers(0, 9), loose),
                    "successOutputS3Uri": st.one_of(st.just(OUT + "SUCCESS/"), loose),
                    "failureOutputS3Uri": st.one_of(st.just(OUT + "FAILURE/"), loose),
                    "other": loose,
                },
            ),
        ),
        "other": loose,
    },
)
ndjson_records = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "importResponse": st.one_of(image_set_entries, loose),
            "exception": st.one_of(st.fixed_dictionaries({"exceptionType": loose, "message": loose}), loose),
            "inputFile": loose,
        },
    ),
    loose,
)


def ndjson(lines: list[Any], python_literals: bool) -> bytes:
    text = "\n".join(json.dumps(line) for line in lines)
    if python_literals:  # the documentation's examples spell them like Python
        text = text.replace("true", "True").replace("false", "False").replace("null", "None")
    return text.encode()


garbage = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.just(b"\xff\xfe{"),
)
objects = st.fixed_dictionaries(
    {},
    optional={
        OUT + MANIFEST: st.one_of(
            manifests.map(lambda m: json.dumps(m).encode()), loose.map(lambda v: json.dumps(v).encode()), garbage
        ),
        SUCCESS: st.one_of(st.builds(ndjson, st.lists(ndjson_records, max_size=4), st.booleans()), garbage),
        WARNING: st.one_of(st.builds(ndjson, st.lists(ndjson_records, max_size=4), st.booleans()), garbage),
        FAILURE: st.one_of(st.builds(ndjson, st.lists(ndjson_records, max_size=4), st.booleans()), garbage),
    },
)
statuses = st.sampled_from(["COMPLETED", "FAILED", "IN_PROGRESS", ""])


@pytest.mark.slow
@sized(300, 20_000, shrink=False)
@given(status=statuses, objects=objects)
def test_import_output_reader_raises_only_named_errors(status: str, objects: dict[str, bytes]) -> None:
    result = read(status, objects)
    assert isinstance(result, ImportResult | OrchestratorError)


@pytest.mark.slow
@sized(150, 10_000)
@given(
    status=st.sampled_from(["COMPLETED", "FAILED"]),
    entries=st.lists(
        st.fixed_dictionaries(
            {"imageSetId": id32, "isPrimary": st.booleans()},
            optional={
                "imageSetVersion": st.integers(1, 9),
                "numberOfMatchedSOPInstances": st.integers(0, 99),
                "x": loose,
            },
        ),
        max_size=4,
    ),
    failures=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=20), st.text(max_size=40)), max_size=3),
    python_literals=st.booleans(),
    extra=st.dictionaries(st.text(max_size=8).filter(lambda k: not k.startswith("numberOf")), loose, max_size=2),
)
def test_well_formed_output_with_noise_is_read(
    status: str,
    entries: list[dict[str, Any]],
    failures: list[tuple[str, str, str]],
    python_literals: bool,
    extra: dict[str, Any],
) -> None:
    """Documented shapes, unknown fields anywhere, optional files missing, Python spellings of literals: read."""
    manifest = {"jobSummary": {"imageSetsSummary": entries, "numberOfScannedFiles": 3, **extra}, **extra}
    fail_lines = [{"inputFile": f, "exception": {"exceptionType": t, "message": m}} for f, t, m in failures]
    found = read(
        status,
        {
            OUT + MANIFEST: json.dumps(manifest).encode(),
            SUCCESS: ndjson([{"importResponse": e} for e in entries], python_literals),
            FAILURE: ndjson(fail_lines, python_literals),
        },
    )
    assert isinstance(found, ImportResult)
    assert {s.image_set_id for s in found.image_sets} == {e["imageSetId"] for e in entries}
    assert len(found.failures) == len(failures)
    assert found.summary == {"numberOfScannedFiles": 3}


# Minimal examples the property above found (each raised a non-taxonomy exception before ImportOutputInvalid).
MALFORMED_OUTPUT: dict[str, dict[str, bytes]] = {
    "manifest-not-utf8": {OUT + MANIFEST: b"\xff"},  # UnicodeDecodeError
    "manifest-empty": {OUT + MANIFEST: b""},  # JSONDecodeError
    "manifest-not-json": {OUT + MANIFEST: b"{"},  # JSONDecodeError
    "manifest-is-a-number": {OUT + MANIFEST: b"1"},  # AttributeError
    "manifest-is-a-list": {OUT + MANIFEST: b"[0]"},  # AttributeError
    "jobSummary-is-a-list": {OUT + MANIFEST: b'{"jobSummary": [0]}'},  # AttributeError
    "imageSetsSummary-is-a-number": {OUT + MANIFEST: b'{"jobSummary": {"imageSetsSummary": 1}}'},  # TypeError
    "matched-instances-not-a-number": {  # ValueError
        OUT
        + MANIFEST: b'{"jobSummary": {"imageSetsSummary": [{"imageSetId": "a", "numberOfMatchedSOPInstances": ""}]}}'
    },
    "output-uri-not-a-string": {OUT + MANIFEST: b'{"jobSummary": {"successOutputS3Uri": 1}}'},  # AttributeError
    "importResponse-not-an-object": {OUT + MANIFEST: b"{}", SUCCESS: b'{"importResponse": 1}'},  # AttributeError
    "exception-not-an-object": {OUT + MANIFEST: b"{}", FAILURE: b'{"exception": "x"}'},  # AttributeError
    "ndjson-line-not-json": {OUT + MANIFEST: b"{}", SUCCESS: b"{"},  # JSONDecodeError
}


@pytest.mark.parametrize("objects", list(MALFORMED_OUTPUT.values()), ids=list(MALFORMED_OUTPUT))
def test_malformed_import_output_raises_import_output_invalid(objects: dict[str, bytes]) -> None:
    """Was: KeyError/TypeError/AttributeError/ValueError/UnicodeDecodeError (not a hicopy.errors exception)."""
    with pytest.raises(ImportOutputInvalid, match="not in the documented shape"):
        read_import_result({**IMPORT_JOB, "jobStatus": "COMPLETED"}, Output(objects))
