"""``QueueSender``: bodies go to SQS unchanged, except text UTF-8 cannot encode (kept whole, base64-encoded)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from hicopy.adapters.aws import BODY_ENCODING_ATTRIBUTE, QueueSender


class StubSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **params: Any) -> dict[str, Any]:
        params["MessageBody"].encode("utf-8")  # botocore's strict encoding: raises on a lone surrogate
        self.sent.append(params)
        return {"MessageId": f"m-{len(self.sent)}"}


@pytest.mark.parametrize("body", ['{"a":1}', "", "not json", '{"name":"Zo\u00eb \u4e2d \U0001f600"}', "\ufffd"])
def test_valid_text_is_sent_unchanged(body: str) -> None:
    sqs = StubSqs()
    assert QueueSender("url", client=sqs).send(body, {"rejectionCode": "JobRejected"}) == "m-1"
    (params,) = sqs.sent
    assert params["MessageBody"] == body
    assert params["MessageAttributes"] == {"rejectionCode": {"DataType": "String", "StringValue": "JobRejected"}}


@pytest.mark.parametrize("attributes", [None, {"rejectionCode": "JobRejected"}])
def test_a_lone_surrogate_is_sent_base64_encoded_and_flagged(attributes: dict[str, str] | None) -> None:
    sqs, body = StubSqs(), '{"x":"\ud800 \u00e9"}'
    QueueSender("url", client=sqs).send(body, attributes)
    (params,) = sqs.sent
    assert base64.b64decode(params["MessageBody"], validate=True).decode("utf-8", "surrogatepass") == body
    assert params["MessageAttributes"] == {
        **{k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()},
        BODY_ENCODING_ATTRIBUTE: {"DataType": "String", "StringValue": "base64"},
    }
    assert attributes is None or BODY_ENCODING_ATTRIBUTE not in attributes  # the caller's dict is not modified
