"""Hypothesis strategies for job messages: valid jobs, and a catalogue of mutations that are each guaranteed to make
the message invalid, together with what the rejection reason must then mention (``hint``).

A generated ``Message`` knows what the consumer must do with it: start an execution named ``expected_job_id`` with
the job it carries (``valid``), or reject it with a reason containing ``hint``. Inputs that trip a known bug are
not generated here; each of those bugs has a strict-xfail test with its minimal example instead (see
``test_job_messages.py``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from hicopy.domain.intake import MAX_BODY_BYTES, MAX_JSON_DEPTH, TRIGGER_ATTRIBUTE
from tests.support.calls import sqs_text_problem

SOAK = os.environ.get("HICOPY_SOAK") == "1"


def examples(default: int, soak: int) -> int:
    return soak if SOAK else default


LOWER_ALNUM = string.digits + string.ascii_lowercase
JOB_ID_CHARS = string.ascii_letters + string.digits + "_-"
PRINTABLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))

ids32 = st.text(alphabet=LOWER_ALNUM, min_size=32, max_size=32)
job_ids = st.text(alphabet=JOB_ID_CHARS, min_size=1, max_size=80)
versions = st.text(alphabet=string.digits, min_size=1, max_size=20)
correlation_ids = st.text(alphabet=PRINTABLE_ASCII, min_size=1, max_size=128)
uid_components = st.one_of(st.just("0"), st.integers(1, 999_999).map(str))
dicom_uids = st.one_of(
    st.lists(uid_components, min_size=1, max_size=8).map(".".join),
    st.integers(1, 64).map(lambda n: "1" * n),  # up to the 64-character limit
)
uid_lists = st.lists(dicom_uids, min_size=1, max_size=5, unique=True)

# Characters SQS refuses in a body or attribute (control characters other than tab/LF/CR, U+FFFE, U+FFFF). They
# still reach the consumer as JSON escapes (see ``deliverable``); as raw text they cannot arrive at all.
SQS_REFUSED = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r") + "\ufffe\uffff"
safe_text = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters=SQS_REFUSED), max_size=20)
# Field names of any characters and lengths (control characters, U+FFFF, and long ones included).
field_names = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=60, max_size=300),
)
# Keys with a lone surrogate (travelling as a JSON escape): pydantic refuses the key itself, before any field.
surrogate_keys = st.tuples(safe_text, st.characters(categories=["Cs"]), safe_text).map("".join)
SURROGATE_KEY_HINT = "unable to parse raw data as a unicode string"
NAME_LIMIT = 64


def shown_name(name: str) -> str:
    """How a rejection reason shows a field name: printable ASCII, anything else as ``\\uXXXX``, at most 64
    characters (the reason goes to a log line, an SQS attribute and an event)."""
    text = "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in name)
    return text if len(text) <= NAME_LIMIT else text[: NAME_LIMIT - 3] + "..."


# Finite floats: json.dumps writes NaN/inf as the non-standard tokens NaN/Infinity, which the intake refuses as not
# JSON (whatever field holds them); ``corrupt_bodies`` generates those on purpose.
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), finite_floats, safe_text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(safe_text, children, max_size=3)),
    max_leaves=6,
)


@st.composite
def valid_jobs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid copy job (design §3.1), every optional field sometimes present."""
    source_id = draw(ids32)
    job: dict[str, Any] = {"datastoreId": draw(ids32), "source": {"imageSetId": source_id}}
    if draw(st.booleans()):
        job["jobId"] = draw(job_ids)
    if draw(st.booleans()):
        job["source"]["versionId"] = draw(versions)
    promote = False
    if draw(st.booleans()):
        destination: dict[str, Any] = {}
        if draw(st.booleans()):
            destination["imageSetId"] = draw(ids32.filter(lambda i: i != source_id))
            if draw(st.booleans()):
                destination["versionId"] = draw(versions)
        job["destination"] = destination
    else:
        promote = draw(st.booleans())
    if promote:
        job["promoteToPrimary"] = True
    elif draw(st.booleans()):
        job["promoteToPrimary"] = False
    for name in ("instances", "series"):
        if draw(st.integers(0, 3)) == 0:
            job[name] = draw(uid_lists)
    if draw(st.booleans()):
        job["force"] = draw(st.booleans())
    if draw(st.booleans()):
        job["correlationId"] = draw(correlation_ids)
    return job


# --- job mutations: (mutated job, hint) ---------------------------------------------------------------------------
Path = tuple[str | int, ...]
REQUIRED_STR: list[Path] = [("datastoreId",), ("source", "imageSetId")]
OPTIONAL_STR: list[Path] = [
    ("jobId",),
    ("source", "versionId"),
    ("destination", "imageSetId"),
    ("destination", "versionId"),
    ("correlationId",),
]
BOOLS: list[Path] = [("force",), ("promoteToPrimary",)]
LISTS: list[Path] = [("instances",), ("series",)]
KNOWN_FIELDS: dict[str, set[str]] = {
    "": {
        "jobId",
        "datastoreId",
        "source",
        "destination",
        "instances",
        "series",
        "force",
        "promoteToPrimary",
        "correlationId",
    },
    "source": {"imageSetId", "versionId"},
    "destination": {"imageSetId", "versionId"},
}


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def put(job: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(job)
    target: Any = out
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):  # absent, or already mutated into something else
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return out


def drop(job: dict[str, Any], path: Path) -> dict[str, Any]:
    out = copy.deepcopy(job)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    target.pop(path[-1], None)
    return out


small_lists = st.lists(json_scalars, max_size=2)
small_dicts = st.dictionaries(safe_text, json_scalars, max_size=2)
not_strings = st.one_of(st.integers(), finite_floats, st.booleans(), small_lists, small_dicts)
not_bools = st.one_of(st.none(), st.integers(), finite_floats, safe_text, small_lists, small_dicts)
not_objects = st.one_of(st.integers(), finite_floats, st.booleans(), safe_text, small_lists)
not_lists = st.one_of(st.integers(), finite_floats, st.booleans(), safe_text, small_dicts)


def _items(job: dict[str, Any], name: str) -> list[Any]:
    """The job's instances/series as a list (empty if absent or already mutated into something else)."""
    value = job.get(name)
    return list(value) if isinstance(value, list) else []


@st.composite
def wrong_type(draw: st.DrawFn, job: dict[str, Any]) -> tuple[dict[str, Any], str]:
    kind = draw(st.sampled_from(["required_str", "optional_str", "bool", "list", "item", "source", "destination"]))
    value: Any
    if kind == "required_str":
        path = draw(st.sampled_from(REQUIRED_STR))
        value = draw(st.one_of(st.none(), not_strings))
    elif kind == "optional_str":
        path = draw(st.sampled_from(OPTIONAL_STR))
        value = draw(not_strings)
    elif kind == "bool":
        path = draw(st.sampled_from(BOOLS))
        value = draw(not_bools)
    elif kind == "list":
        path = draw(st.sampled_from(LISTS))
        value = draw(not_lists)
    elif kind == "item":
        name = draw(st.sampled_from(["instances", "series"]))
        items = _items(job, name) or ["1.2.3"]
        index = draw(st.integers(0, len(items) - 1))
        items[index] = draw(not_strings)
        return put(job, (name,), items), f"{name}.{index}"
    elif kind == "source":
        path, value = ("source",), draw(st.one_of(st.none(), not_objects))
    else:
        path, value = ("destination",), draw(not_objects)
    return put(job, path, value), dotted(path)


@st.composite
def oversized(draw: st.DrawFn, job: dict[str, Any]) -> tuple[dict[str, Any], str]:
    choices: list[tuple[Path, st.SearchStrategy[Any]]] = [
        (("jobId",), st.text(alphabet=JOB_ID_CHARS, min_size=81, max_size=200)),
        (("correlationId",), st.text(alphabet=PRINTABLE_ASCII, min_size=129, max_size=300)),
        (("datastoreId",), st.text(alphabet=LOWER_ALNUM, min_size=33, max_size=64)),
        (("source", "imageSetId"), st.text(alphabet=LOWER_ALNUM, min_size=33, max_size=64)),
        (("source", "versionId"), st.text(alphabet=string.digits, min_size=21, max_size=40)),
        (("instances", 0), st.integers(65, 200).map(lambda n: "1" * n)),
        (("series", 0), st.integers(1, 20).map(lambda n: "1." * 32 + "1" * n)),
        (("instances",), st.just([])),  # too few, the other end
    ]
    path, values = draw(st.sampled_from(choices))
    value = draw(values)
    if path[-1] == 0:
        return put(job, path[:1], [value]), dotted(path)
    return put(job, path, value), dotted(path)


def _with_bad_char(alphabet: str, bad: str, size: int) -> st.SearchStrategy[str]:
    return st.tuples(
        st.text(alphabet=alphabet, min_size=size, max_size=size), st.sampled_from(list(bad)), st.integers(0, size)
    ).map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :])


# Characters outside each pattern (no control characters or surrogates: known-bug tests cover those).
BAD_ID32_CHARS = "ABCZ-_.: /\u00e9\u0131"
BAD_JOB_ID_CHARS = ".:/ +@#\u00e9\u00df"
BAD_CORRELATION_CHARS = " \u00a0\u00e9\u4e2d"
UNICODE_DIGITS = "\u0661\u0662\u06f3\u0967\uff11\u00b2\U0001d7d9"  # digits of other scripts, fullwidth, superscript
BAD_UIDS = ["1..2", ".1", "1.", "a", "1.2a", "", "-1", "1 .2", "1.2\n", "+1", "1e3", "\uff11"]


# Any character at all, control characters and lone surrogates included: as values of known fields they travel
# as JSON escapes (see ``deliverable``) and must simply be rejected.
any_text = st.text(alphabet=st.characters(exclude_categories=()), min_size=1, max_size=12)


def _not_matching(pattern: str) -> st.SearchStrategy[str]:
    return any_text.filter(lambda t: re.fullmatch(pattern, t) is None)


@st.composite
def bad_pattern(draw: st.DrawFn, job: dict[str, Any]) -> tuple[dict[str, Any], str]:
    choices: list[tuple[Path, st.SearchStrategy[str]]] = [
        (("jobId",), _not_matching(r"[A-Za-z0-9_-]{1,80}")),
        (("correlationId",), _not_matching(r"[\x21-\x7e]{1,128}")),
        (("source", "imageSetId"), _not_matching(r"[0-9a-z]{32}")),
        (("series", 0), _not_matching(r"[0-9]+(\.[0-9]+)*")),
        (("datastoreId",), _with_bad_char(LOWER_ALNUM, BAD_ID32_CHARS, 31)),
        (("datastoreId",), st.text(alphabet=LOWER_ALNUM, max_size=31)),
        (("source", "imageSetId"), _with_bad_char(LOWER_ALNUM, BAD_ID32_CHARS, 31)),
        (("source", "versionId"), st.sampled_from(["", "-1", "1.0", " 1", "1 ", "one", "0x1", "1\n", "\u2167"])),
        (("source", "versionId"), _with_bad_char(string.digits, UNICODE_DIGITS, 5)),
        (("jobId",), _with_bad_char(JOB_ID_CHARS, BAD_JOB_ID_CHARS, 10)),
        (("jobId",), st.just("")),
        (("correlationId",), _with_bad_char(PRINTABLE_ASCII, BAD_CORRELATION_CHARS, 10)),
        (("correlationId",), st.just("")),
        (("instances", 0), st.sampled_from(BAD_UIDS)),
        (("series", 0), st.sampled_from(BAD_UIDS)),
    ]
    path, values = draw(st.sampled_from(choices))
    value = draw(values)
    if path[-1] == 0:
        return put(job, path[:1], [value]), dotted(path)
    return put(job, path, value), dotted(path)


@st.composite
def unknown_field(draw: st.DrawFn, job: dict[str, Any]) -> tuple[dict[str, Any], str]:
    level = draw(st.sampled_from(["", "source", "destination"]))
    odd = draw(st.integers(0, 9)) == 0
    key = draw(surrogate_keys if odd else field_names.filter(lambda k: k not in KNOWN_FIELDS[level]))
    value = draw(json_values)
    if level == "":
        return put(job, (key,), value), SURROGATE_KEY_HINT if odd else f"{shown_name(key)}: unknown field"
    if level == "destination" and isinstance(job.get("destination"), dict):
        job = copy.deepcopy(job)
    elif level == "destination":
        job = put(job, ("destination",), {})
    return put(job, (level, key), value), SURROGATE_KEY_HINT if odd else f"{level}.{shown_name(key)}: unknown field"


@st.composite
def semantic(draw: st.DrawFn, job: dict[str, Any]) -> tuple[dict[str, Any], str]:
    kind = draw(
        st.sampled_from(["duplicates", "same_image_set", "promote_with_destination", "version_alone", "missing"])
    )
    if kind == "duplicates":
        name = draw(st.sampled_from(["instances", "series"]))
        items = _items(job, name) or draw(uid_lists)
        return put(job, (name,), [*items, draw(st.sampled_from(items))]), "duplicate"
    if kind == "same_image_set":
        return put(job, ("destination", "imageSetId"), job["source"]["imageSetId"]), "must differ"
    if kind == "promote_with_destination":
        mutated = put(job, ("promoteToPrimary",), True)
        return put(
            mutated, ("destination", "imageSetId"), draw(ids32.filter(lambda i: i != job["source"]["imageSetId"]))
        ), "promoteToPrimary"
    if kind == "version_alone":
        mutated = put(job, ("destination", "versionId"), draw(versions))
        return drop(mutated, ("destination", "imageSetId")), "destination.versionId needs"
    path = draw(st.sampled_from([("datastoreId",), ("source",), ("source", "imageSetId")]))
    return drop(job, path), f"{dotted(path)}: Field required"


def job_mutations(job: dict[str, Any]) -> st.SearchStrategy[tuple[dict[str, Any], str]]:
    return st.one_of(wrong_type(job), oversized(job), bad_pattern(job), unknown_field(job), semantic(job))


invalid_jobs = valid_jobs().flatmap(job_mutations)


# --- messages -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """One SQS message and what the consumer must do with it."""

    body: str
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # Lambda SQS ``messageAttributes``
    valid: bool = False
    hint: str = ""  # invalid: the rejection reason must contain this
    trigger: str = "sqs"  # the trigger type: of the execution (valid) or of the rejection event (invalid)
    job: dict[str, Any] | None = None  # valid: the job as sent (the ``detail`` of an event)
    event: dict[str, Any] | None = None  # valid events: the envelope
    trigger_extra: dict[str, Any] | None = None  # valid import triggers: the attribute's JSON

    def expected_job_id(self, message_id: str) -> str:
        assert self.job is not None
        if self.job.get("jobId") is not None:
            return str(self.job["jobId"])
        if self.event is not None and self.event.get("id"):
            return str(self.event["id"])
        return message_id

    def expected_trigger(self, message_id: str) -> dict[str, Any]:
        if self.trigger == "event":
            assert self.event is not None
            return {"type": "event", "eventId": str(self.event.get("id", "")), "source": str(self.event["source"])}
        if self.trigger == "import":  # the state is dumped without None values (top-level keys only)
            return {k: v for k, v in (self.trigger_extra or {}).items() if v is not None}
        return {"type": "sqs", "messageId": message_id}


def dumps(value: Any, ascii_only: bool = False) -> str:
    """Compact JSON; ``ascii_only`` escapes every non-ASCII character (how any character can travel through SQS)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)


def deliverable(value: Any, ascii_only: bool) -> str:
    """The body a sender can put on SQS: escaped whenever the raw JSON has characters SQS refuses."""
    text = dumps(value, ascii_only)
    return dumps(value, True) if sqs_text_problem(text) is not None else text


def string_attribute(value: str) -> dict[str, Any]:
    """A String message attribute as Lambda's SQS event shows it."""
    return {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"}


def binary_attribute(base64_value: str) -> dict[str, Any]:
    """A Binary message attribute as Lambda's SQS event shows it (no ``stringValue`` key at all)."""
    return {"binaryValue": base64_value, "stringListValues": [], "binaryListValues": [], "dataType": "Binary"}


# --- deep nesting: json.loads recurses once per level (RecursionError near 1,000 levels, in a 3 KB body) ----------
DEEP_HINT = "levels deep"
too_deep = st.one_of(st.integers(MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH + 3), st.sampled_from([1_000, 1_500, 20_000]))


def nest(depth: int, kind: str, inner: str = "1") -> str:
    """``inner`` inside ``depth`` arrays (``[``), objects (``{``), alternating (``mixed``), or only opened
    (``open``: the body ends there, not even JSON)."""
    if kind == "[":
        return "[" * depth + inner + "]" * depth
    if kind == "{":
        return '{"a":' * depth + inner + "}" * depth
    if kind == "mixed":
        pairs = -(-depth // 2)
        return '[{"k":' * pairs + inner + "}]" * pairs
    return "[" * depth


noise_attributes = st.dictionaries(
    st.sampled_from(["traceparent", "sender", "priority"]),
    st.text(alphabet=PRINTABLE_ASCII, max_size=20).map(string_attribute),
    max_size=2,
)
import_triggers = st.fixed_dictionaries(
    {"type": st.just("import")},
    optional={
        "importJobId": st.text(alphabet=LOWER_ALNUM, min_size=32, max_size=32),
        "policy": st.sampled_from(["consolidate", "promote"]),
        "deleteSourceAfterCopy": st.booleans(),
        "note": json_values,
    },
)
bad_triggers = st.one_of(
    st.tuples(st.sampled_from(["{", "", "type=import", "{'type': 'import'}", "nul\x00"]), st.just("String")),
    st.tuples(
        st.one_of(st.none(), st.integers(), safe_text, st.lists(st.just("import"), max_size=2)).map(dumps),
        st.just("String"),
    ),
    st.tuples(
        st.dictionaries(st.just("type"), st.sampled_from(["sqs", "event", "IMPORT", None, 1])).map(dumps),
        st.just("String"),
    ),
    st.tuples(too_deep.map(lambda depth: '{"type":"import","note":' + nest(depth, "[") + "}"), st.just("String")),
    # Binary attributes trip a known bug (no stringValue key): see test_known_bug_binary_message_attribute.
)


@st.composite
def raw_messages(draw: st.DrawFn, valid: bool) -> Message:
    """A job as the SQS body; sometimes with the planner's ``hicopyTrigger`` attribute."""
    attributes = dict(draw(noise_attributes))
    trigger, extra = "sqs", None
    if draw(st.integers(0, 3)) == 0:
        extra = draw(import_triggers)
        attributes[TRIGGER_ATTRIBUTE] = string_attribute(dumps(extra))
        trigger = "import"
    if valid:
        job = draw(valid_jobs())
        return Message(dumps(job, draw(st.booleans())), attributes, True, trigger=trigger, job=job, trigger_extra=extra)
    job, hint = draw(invalid_jobs)
    return Message(deliverable(job, draw(st.booleans())), attributes, False, hint, trigger)


@st.composite
def bad_trigger_messages(draw: st.DrawFn) -> Message:
    value, _ = draw(bad_triggers)
    attributes = {TRIGGER_ATTRIBUTE: string_attribute(value)}
    return Message(dumps(draw(valid_jobs())), attributes, False, TRIGGER_ATTRIBUTE, "import")


def envelope(draw: st.DrawFn, detail: Any, detail_type: Any = "Copy Requested") -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "0",
        "detail-type": detail_type,
        "source": draw(st.sampled_from(["pacs.router", "custom.app", ""])),
        "account": "123456789012",
        "time": "2026-11-27T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    if draw(st.integers(0, 4)):
        event["id"] = draw(st.one_of(st.uuids().map(str), job_ids))
    if draw(st.integers(0, 3)) == 0:
        event["unknownEnvelopeField"] = draw(json_values)  # the envelope is not ours: extra keys are fine
    return event


@st.composite
def event_messages(draw: st.DrawFn, valid: bool) -> Message:
    """A whole ``Copy Requested`` EventBridge event (what the rule delivers to the queue)."""
    invalid_kinds = ["invalid_detail", "detail_type", "detail_not_object", "bad_id"]
    kind = "valid" if valid else draw(st.sampled_from(invalid_kinds))
    if kind == "valid":
        job = draw(valid_jobs())
        event = envelope(draw, job)
        return Message(dumps(event), valid=True, trigger="event", job=job, event=event)
    if kind == "invalid_detail":
        job, hint = draw(invalid_jobs)
        return Message(deliverable(envelope(draw, job), draw(st.booleans())), hint=hint, trigger="event")
    if kind == "detail_type":
        wrong = draw(st.one_of(safe_text, json_scalars, st.just("copy requested"), st.just("Copy Requested ")))
        if wrong == "Copy Requested":
            wrong = "Copy Requested."
        return Message(dumps(envelope(draw, draw(valid_jobs()), wrong)), hint="detail-type", trigger="event")
    if kind == "detail_not_object":
        detail = draw(st.one_of(st.none(), st.booleans(), st.integers(), safe_text, st.lists(json_scalars, max_size=3)))
        return Message(dumps(envelope(draw, detail)), hint="must be a JSON object", trigger="event")
    job = {k: v for k, v in draw(valid_jobs()).items() if k != "jobId"}
    event = envelope(draw, job)
    event["id"] = draw(_with_bad_char(JOB_ID_CHARS, BAD_JOB_ID_CHARS, 12))
    return Message(dumps(event), hint="jobId", trigger="event")


@st.composite
def corrupt_bodies(draw: st.DrawFn) -> Message:
    """Broken JSON, non-objects, and bodies around the 256 KiB limit."""
    attributes = dict(draw(noise_attributes))
    body = dumps(draw(valid_jobs()))
    kind = draw(
        st.sampled_from(
            ["truncated", "control", "trailing", "not_object", "too_big", "wide_chars", "non_finite", "at_limit"]
        )
    )
    if kind == "truncated":
        return Message(body[: draw(st.integers(0, len(body) - 1))], attributes, hint="not valid JSON")
    if kind == "control":  # the control characters SQS delivers (tab, LF, CR) are invalid inside a JSON string
        at = body.index('"datastoreId":"') + len('"datastoreId":"') + draw(st.integers(0, 32))
        return Message(body[:at] + draw(st.sampled_from("\t\n\r")) + body[at:], attributes, hint="not valid JSON")
    if kind == "trailing":
        return Message(body + draw(st.sampled_from(["x", "}", "{}", ",", "]"])), attributes, hint="not valid JSON")
    if kind == "not_object":
        value = draw(st.one_of(st.none(), st.booleans(), st.integers(), safe_text, st.lists(json_scalars, max_size=3)))
        return Message(dumps(value), attributes, hint="must be a JSON object")
    if kind == "too_big":
        size = MAX_BODY_BYTES + draw(st.integers(1, 4096))
        return Message(body + " " * (size - len(body)), attributes, hint="bytes")
    if kind == "non_finite":  # Python's json extensions (NaN, Infinity, -Infinity; 1e999 overflows to infinity)
        return non_finite_message(draw, body, attributes)
    if kind == "wide_chars":  # fewer than 256 Ki characters, more than 256 KiB of UTF-8
        pad = "\U0001f600" * (MAX_BODY_BYTES // 4)
        return Message(body[:-1] + f',"note":"{pad}"}}', attributes, hint="bytes")
    job = json.loads(body)  # exactly at the limit: still a job
    padded = body + " " * (MAX_BODY_BYTES - len(body.encode("utf-8")))
    return Message(padded, attributes, valid=True, job=job)


@st.composite
def deep_bodies(draw: st.DrawFn) -> Message:
    """A body nested too deep: alone, as the value of a job's field, or as the detail of a ``Copy Requested``
    event. It must be rejected before parsing, with its depth in the reason."""
    depth, kind = draw(too_deep), draw(st.sampled_from(["[", "{", "mixed", "open"]))
    where = draw(st.sampled_from(["whole", "field", "event"]))
    job = dumps(draw(valid_jobs()))
    if where == "whole":
        return Message(nest(depth, kind), hint=DEEP_HINT)
    if where == "field":
        return Message(job[:-1] + ',"note":' + nest(depth - 1, kind) + "}", hint=DEEP_HINT)
    event = dumps(envelope(draw, "\u0000detail"))
    # Too deep to be read at all, an event is reported as what it surely is: an SQS message.
    return Message(event.replace('"\\u0000detail"', nest(depth - 1, kind, job)), hint=DEEP_HINT)


@st.composite
def bracketed_strings(draw: st.DrawFn) -> Message:
    """A valid job whose correlationId is all brackets: brackets inside strings are no nesting."""
    job = draw(valid_jobs())
    job["correlationId"] = draw(st.sampled_from(["[", "{", "[{"])) * draw(st.integers(MAX_JSON_DEPTH + 1, 64))
    return Message(dumps(job), valid=True, job=job)


NON_FINITE_TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "123456789e999"]


def non_finite_message(draw: st.DrawFn, body: str, attributes: dict[str, dict[str, Any]]) -> Message:
    """A non-finite number anywhere a JSON value can stand: a job field, an unknown field, a list item, the whole
    body, or the body of a whole ``Copy Requested`` event."""
    token = draw(st.sampled_from(NON_FINITE_TOKENS))
    hint = token if token in ("NaN", "Infinity", "-Infinity") else f"the number {token} is out of range"
    job = json.loads(body)
    where = draw(st.sampled_from(["field", "unknown", "list", "whole", "event"]))
    placeholder = "\u0000placeholder"  # a string no generated job holds, replaced by the raw token
    if where == "field":
        job = put(job, draw(st.sampled_from(REQUIRED_STR + OPTIONAL_STR + BOOLS + LISTS)), placeholder)
    elif where == "unknown":
        job = put(job, ("nonFinite",), placeholder)
    elif where == "list":
        job = put(job, ("instances",), [*_items(job, "instances"), placeholder])
    trigger = "sqs"
    if where == "event":
        job = envelope(draw, put(job, ("jobId",), placeholder))
        trigger = "event"
    text = token if where == "whole" else dumps(job, True).replace(dumps(placeholder, True), token)
    return Message(text, attributes, hint=f"not valid JSON: {hint}", trigger=trigger)


# Valid messages first and twice: Hypothesis' choices are not uniform, and the valid path (executions, duplicate
# job IDs, first-wins) needs its share.
messages = st.one_of(
    raw_messages(valid=True),
    event_messages(valid=True),
    raw_messages(valid=True),
    raw_messages(valid=False),
    event_messages(valid=False),
    bad_trigger_messages(),
    corrupt_bodies(),
    deep_bodies(),
    bracketed_strings(),
)


@st.composite
def batches(draw: st.DrawFn, max_size: int = 10) -> list[Message]:
    """1 to ``max_size`` messages; some repeated (the same job delivered twice in one batch)."""
    batch = draw(st.lists(messages, min_size=1, max_size=max_size))
    repeats = draw(st.lists(st.integers(0, len(batch) - 1), max_size=min(3, max_size - len(batch))))
    for index in repeats:
        batch.insert(draw(st.integers(0, len(batch))), batch[index])
    return batch
