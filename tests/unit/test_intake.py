import json

import pytest

from hicopy.contract import REJECTED
from hicopy.domain.intake import accept, reject, rejected_event, trigger_type_of
from hicopy.errors import JobRejected
from tests.support.contracts import assert_valid_event
from tests.support.fakes import FakeClock, FakePublisher, FakeQueue

DS, SRC = "a" * 32, "b" * 32
JOB = {"datastoreId": DS, "source": {"imageSetId": SRC}}
MID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_raw_job_defaults_its_id_to_the_message_id():
    acc = accept(json.dumps(JOB), message_id=MID, attributes={}, clock=FakeClock())
    assert acc.job.jobId == MID and acc.trigger.type == "sqs" and acc.trigger.model_dump()["messageId"] == MID
    assert acc.state.receivedAt.endswith("Z")


def test_copy_requested_event_uses_the_detail_and_the_event_id():
    event = {"id": "e-1", "detail-type": "Copy Requested", "source": "pacs", "detail": {**JOB, "jobId": "mine"}}
    acc = accept(json.dumps(event), message_id=MID, attributes={}, clock=FakeClock())
    assert acc.job.jobId == "mine" and acc.trigger.type == "event"
    assert (
        accept(json.dumps({**event, "detail": JOB}), message_id=MID, attributes={}, clock=FakeClock()).job.jobId
        == "e-1"
    )


def test_import_trigger_from_message_attribute():
    attrs = {"hicopyTrigger": json.dumps({"type": "import", "importJobId": "j" * 32})}
    acc = accept(json.dumps({**JOB, "jobId": "imp-1"}), message_id=MID, attributes=attrs, clock=FakeClock())
    assert acc.trigger.type == "import" and acc.trigger.model_dump()["importJobId"] == "j" * 32


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"detail-type": "Other", "detail": JOB}), "is not 'Copy Requested'"),
        (json.dumps({**JOB, "extra": 1}), "extra: unknown field"),
        ("x" * (256 * 1024 + 1), "a job is at most"),
    ],
)
def test_bad_messages_are_rejected(body, fragment):
    with pytest.raises(JobRejected) as exc:
        accept(body, message_id=MID, attributes={}, clock=FakeClock())
    assert fragment in exc.value.message


NON_FINITE = "is not a JSON value (JSON numbers are finite: no NaN, Infinity or -Infinity)"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    "template",
    [
        '{"datastoreId": %s, "source": {"imageSetId": "' + SRC + '"}}',  # a job field
        json.dumps({**JOB, "pad": "@"}).replace('"@"', "%s"),  # an unknown field
        json.dumps({"detail-type": "Copy Requested", "detail": JOB, "extra": ["@"]}).replace('"@"', "%s"),  # envelope
        "%s",
    ],
)
def test_non_finite_number_tokens_are_rejected(template, token):
    """Was: Python's json read NaN/Infinity/-Infinity; the reason named whatever field held them, or nothing."""
    with pytest.raises(JobRejected) as exc:
        accept(template % token, message_id=MID, attributes={}, clock=FakeClock())
    assert exc.value.message == f"the message body is not valid JSON: {token} {NON_FINITE}"


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
def test_numbers_beyond_a_float_are_rejected(number):
    with pytest.raises(JobRejected, match=f"not valid JSON: the number {number} is out of range"):
        accept(json.dumps({**JOB, "n": "@"}).replace('"@"', number), message_id=MID, attributes={}, clock=FakeClock())


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_non_finite_numbers_in_the_trigger_attribute_are_rejected(value):
    """Was: accepted, and an infinity in the trigger's extra keys became null in the execution input."""
    attrs = {"hicopyTrigger": '{"type": "import", "note": @}'.replace("@", value)}
    with pytest.raises(
        JobRejected, match=r"^message attribute hicopyTrigger is not valid JSON: .*(finite|out of range)"
    ):
        accept(json.dumps(JOB), message_id=MID, attributes=attrs, clock=FakeClock())


def test_bad_trigger_attribute_is_rejected():
    with pytest.raises(JobRejected, match="must be an object with type 'import'"):
        accept(json.dumps(JOB), message_id=MID, attributes={"hicopyTrigger": '{"type": "sqs"}'}, clock=FakeClock())


@pytest.mark.parametrize(
    ("body", "attributes", "expected"),
    [
        ({"detail-type": "Copy Requested", "detail": JOB}, {}, "event"),
        ({"detail-type": "Other", "detail": 1}, {"hicopyTrigger": "{}"}, "event"),
        ({**JOB, "detail-type": "Copy Requested"}, {}, "sqs"),  # was: event (detail-type alone)
        ({**JOB, "detail-type": "Copy Requested"}, {"hicopyTrigger": '{"type":"import"}'}, "import"),  # was: event
        ({**JOB, "detail": JOB}, {}, "sqs"),
        (JOB, {}, "sqs"),
        (JOB, {"hicopyTrigger": "{"}, "import"),
        (["detail-type", "detail"], {}, "sqs"),
    ],
)
def test_trigger_type_of_needs_both_event_keys(body, attributes, expected):
    assert trigger_type_of(json.dumps(body), attributes) == expected
    assert trigger_type_of("{not json", {}) == "sqs"


def test_a_raw_job_with_a_detail_type_key_is_rejected_as_a_raw_job():
    body = json.dumps({**JOB, "detail-type": "Copy Requested"})
    with pytest.raises(JobRejected, match="detail-type: unknown field"):
        accept(body, message_id=MID, attributes={}, clock=FakeClock())
    assert trigger_type_of(body, {}) == "sqs"


def test_rejection_hints_come_from_the_detail_of_events_only():
    def hints(data):
        with pytest.raises(JobRejected) as exc:
            accept(json.dumps(data), message_id=MID, attributes={}, clock=FakeClock())
        event = rejected_event(json.dumps(data), exc.value, message_id=MID, trigger_type="sqs", clock=FakeClock())
        return event.get("jobId")

    assert hints({"detail-type": "Copy Requested", "detail": {**JOB, "jobId": "inner", "x": 1}}) == "inner"
    assert hints({**JOB, "jobId": "outer", "detail": {"jobId": "inner"}}) == "outer"  # a raw job: was "inner"


def test_reject_keeps_the_message_then_publishes_one_valid_event():
    body = json.dumps({**JOB, "jobId": "j1", "bogus": True})
    dlq, pub = FakeQueue(), FakePublisher()
    with pytest.raises(JobRejected) as exc:
        accept(body, message_id=MID, attributes={}, clock=FakeClock())
    detail = reject(
        body,
        exc.value,
        message_id=MID,
        trigger_type=trigger_type_of(body, {}),
        dead_letters=dlq,
        publisher=pub,
        clock=FakeClock(),
    )
    assert dlq.messages[0][0] == body and dlq.messages[0][1]["rejectionCode"] == "JobRejected"
    assert pub.events == [(REJECTED, detail)]
    assert (
        detail["jobId"] == "j1"
        and detail["datastoreId"] == DS
        and "bogus: unknown field" in detail["reason"]["message"]
    )
    assert_valid_event(REJECTED, detail)


def test_rejected_event_truncates_huge_bodies_and_never_echoes_bad_ids():
    body = json.dumps({**JOB, "jobId": "bad id!", "pad": "x" * 20000})
    with pytest.raises(JobRejected) as exc:
        accept(body, message_id=MID, attributes={}, clock=FakeClock())
    detail = reject(
        body,
        exc.value,
        message_id=MID,
        trigger_type="sqs",
        dead_letters=FakeQueue(),
        publisher=FakePublisher(),
        clock=FakeClock(),
    )
    assert detail["originalBodyTruncated"] and len(detail["originalBody"]) == 8192 and "jobId" not in detail
    assert_valid_event(REJECTED, detail)


def test_a_rejected_copy_requested_event_s_trigger_has_its_event_id_and_source_like_an_accepted_one():
    event = {"id": "5b0a2f76-4d8b-4a59-9d55-2bb0cc6c9e4e", "source": "my.pacs", "detail-type": "Copy Requested"}
    accepted = accept(json.dumps({**event, "detail": JOB}), message_id=MID, attributes={}, clock=FakeClock())
    body = json.dumps({**event, "detail": {**JOB, "colour": "blue"}})
    with pytest.raises(JobRejected) as exc:
        accept(body, message_id=MID, attributes={}, clock=FakeClock())
    detail = rejected_event(body, exc.value, message_id=MID, trigger_type=trigger_type_of(body, {}), clock=FakeClock())
    assert detail["trigger"] == {**accepted.trigger.model_dump(exclude_none=True), "messageId": MID}
    assert detail["trigger"]["eventId"] == event["id"] and detail["trigger"]["source"] == "my.pacs"
    assert_valid_event(REJECTED, detail)
    forged = json.dumps({**event, "id": "not an id\n", "source": "x" * 300, "detail": {}})
    with pytest.raises(JobRejected) as exc:
        accept(forged, message_id=MID, attributes={}, clock=FakeClock())
    trigger = rejected_event(forged, exc.value, message_id=MID, trigger_type="event", clock=FakeClock())["trigger"]
    assert trigger == {"type": "event", "eventId": "", "source": "", "messageId": MID}  # never echoed ill-formed
