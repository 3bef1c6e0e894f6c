"""Everything that comes from botocore's ``medical-imaging`` service model: routes, wire (de)serialization, validation.

The model is the contract: no field name, route, status code or pattern is written by hand here.

- ``service_model()``: the botocore model, loaded once on first use (no work at import time).
- ``route(method, url)``: which operation an HTTP request is, built from each operation's ``requestUri``.
- ``parse_request(operation, method, url, body)``: rest-json request -> parameter dict (member names, Python types).
- ``serialize_response(operation, output)``: output dict -> (status, headers, body) as rest-json.
- ``error_status(code)``: HTTP status of a modelled error shape.
- ``shape_errors(shape, value)`` / ``validate_request`` / ``validate_response``: required members, types, enums,
  patterns and lengths, on raw values (epoch floats, bytes) and on botocore-parsed ones (datetime, StreamingBody).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

SERVICE_NAME = "medical-imaging"


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


def operation_model(operation: str) -> OperationModel:
    return service_model().operation_model(operation)


def operation_names() -> list[str]:
    return list(service_model().operation_names)


def error_codes(operation: str) -> list[str]:
    return [shape.name for shape in operation_model(operation).error_shapes]


@cache
def error_status(code: str) -> int:
    """HTTP status code of an error shape of the model (400 for codes the model does not know)."""
    try:
        shape = service_model().shape_for(code)
    except Exception:
        return 400
    error = shape.metadata.get("error") or {}
    return int(error.get("httpStatusCode", 400))


# ---------------------------------------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Route:
    operation: str
    method: str
    path_regex: re.Pattern[str]
    static_query: tuple[tuple[str, str], ...]


def _compile_request_uri(request_uri: str) -> tuple[re.Pattern[str], tuple[tuple[str, str], ...]]:
    path, _, query = request_uri.partition("?")
    pattern = ""
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{") and piece.endswith("}"):
            label = piece[1:-1]
            if label.endswith("+"):
                pattern += f"(?P<{label[:-1]}>.+)"
            else:
                pattern += f"(?P<{label}>[^/]+)"
        else:
            pattern += re.escape(piece)
    static = tuple((k, v[0] if v else "") for k, v in parse_qs(query, keep_blank_values=True).items())
    return re.compile(f"^{pattern}$"), static


@cache
def routes() -> tuple[Route, ...]:
    found = []
    for name in operation_names():
        http = operation_model(name).http
        regex, static = _compile_request_uri(http["requestUri"])
        found.append(Route(name, http["method"].upper(), regex, static))
    # Literal segments beat labels: try the routes with the longest literal text first.
    found.sort(key=lambda r: -len(re.sub(r"\(\?P<[^>]+>[^)]+\)", "", r.path_regex.pattern)))
    return tuple(found)


def route(method: str, url: str) -> str | None:
    """The operation a request addresses, or None."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    for candidate in routes():
        if candidate.method != method.upper() or not candidate.path_regex.match(parts.path):
            continue
        if all(k in query for k, _ in candidate.static_query):
            return candidate.operation
    return None


# ------------------------------------------------------------------------------------------------ wire: requests


def _from_query(shape: Shape, values: list[str]) -> Any:
    if shape.type_name == "list":
        return [_from_query(shape.member, [v]) for v in values]
    raw = values[-1]
    if shape.type_name == "boolean":
        if raw.lower() not in ("true", "false"):
            raise ValueError(f"not a boolean: {raw!r}")
        return raw.lower() == "true"
    if shape.type_name in ("integer", "long"):
        return int(raw)
    if shape.type_name in ("float", "double"):
        return float(raw)
    return raw


def _from_json(shape: Shape, value: Any) -> Any:
    """JSON body value -> Python value for the shape (blobs base64-decoded, timestamps as epoch floats)."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        out: dict[str, Any] = {}
        wire_to_member = {m.serialization.get("name", name): name for name, m in shape.members.items()}
        for wire_name, item in value.items():
            member = wire_to_member.get(wire_name)
            if member is None:
                out[wire_name] = item  # unknown member: kept so that validation reports it
            else:
                out[member] = _from_json(shape.members[member], item)
        return out
    if kind == "list" and isinstance(value, list):
        return [_from_json(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    if kind == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    if kind == "timestamp":
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return value


def parse_request(operation: str, method: str, url: str, body: bytes | str | None) -> dict[str, Any]:
    """Decode a rest-json request into the operation's input members. Raises ValueError when it cannot."""
    op = operation_model(operation)
    shape = op.input_shape
    params: dict[str, Any] = {}
    if shape is None:
        return params
    parts = urlsplit(url)
    regex, _ = _compile_request_uri(op.http["requestUri"])
    match = regex.match(parts.path)
    if match is None:
        raise ValueError(f"path {parts.path!r} does not match {op.http['requestUri']!r}")
    uri_values = {k: unquote(v) for k, v in match.groupdict().items()}
    query = parse_qs(parts.query, keep_blank_values=True)
    body_members: dict[str, Shape] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if wire in uri_values:
                params[name] = uri_values[wire]
        elif location == "querystring":
            if wire in query:
                params[name] = _from_query(member, query[wire])
        elif location in ("header", "headers"):
            continue  # this service has no input headers
        else:
            body_members[name] = member
    raw = body.encode() if isinstance(body, str) else (body or b"")
    payload = shape.serialization.get("payload")
    if payload:
        member = shape.members[payload]
        if member.type_name == "blob":
            params[payload] = raw
        elif raw.strip():
            params[payload] = _from_json(member, json.loads(raw))
    elif raw.strip():
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise ValueError("request body is not a JSON object")
        wire_to_member: dict[str, str] = {m.serialization.get("name", n): n for n, m in body_members.items()}
        for wire_name, value in document.items():
            member_name = str(wire_to_member.get(str(wire_name)) or wire_name)
            known = body_members.get(member_name)
            params[member_name] = _from_json(known, value) if known is not None else value
    return params


# ----------------------------------------------------------------------------------------------- wire: responses


def _to_json(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return {
            shape.members[name].serialization.get("name", name): _to_json(shape.members[name], item)
            for name, item in value.items()
            if item is not None
        }
    if kind == "list":
        return [_to_json(shape.member, v) for v in value]
    if kind == "map":
        return {k: _to_json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return value.timestamp() if isinstance(value, datetime) else float(value)
    if kind == "blob":
        return base64.b64encode(value).decode()
    return value


def serialize_response(operation: str, output: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
    op = operation_model(operation)
    status = int(op.http.get("responseCode", 200))
    headers: dict[str, str] = {}
    shape = op.output_shape
    if shape is None:
        return status, {"Content-Type": "application/json"}, b"{}"
    payload = shape.serialization.get("payload")
    document: dict[str, Any] = {}
    body: bytes | None = None
    for name, value in output.items():
        if value is None:
            continue
        member = shape.members[name]
        location = member.serialization.get("location")
        if location == "header":
            headers[member.serialization.get("name", name)] = str(value)
        elif name == payload:
            body = bytes(value) if member.type_name == "blob" else json.dumps(_to_json(member, value)).encode()
        else:
            document[member.serialization.get("name", name)] = _to_json(member, value)
    if body is None:
        body = json.dumps(document).encode()
        headers.setdefault("Content-Type", "application/json")
    return status, headers, body


def error_response(code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
    return error_status(code), headers, json.dumps({"message": message}).encode()


# --------------------------------------------------------------------------------------------------- validation

_ASCII_CLASS = re.compile(r"\\p\{ASCII\}")


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(_ASCII_CLASS.sub(r"[\\x00-\\x7F]", text), re.DOTALL)


def _readable(value: Any) -> bool:
    return callable(getattr(value, "read", None))


def shape_errors(shape: Shape, value: Any, path: str = "", *, allow_extra: tuple[str, ...] = ()) -> list[str]:
    """Everything wrong with ``value`` for ``shape`` (empty list = valid).

    Checks required members, unknown members, unions (exactly one member), types, enums, string patterns
    (whole-string match), string/list/map lengths and integer ranges.
    """
    errors: list[str] = []
    _check(shape, value, path or shape.name, errors, allow_extra)
    return errors


def _check(shape: Shape, value: Any, path: str, errors: list[str], allow_extra: tuple[str, ...] = ()) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append(f"{path}.{name}: required member missing")
        set_members = [k for k, v in value.items() if v is not None and k not in allow_extra]
        for name in set_members:
            if name not in shape.members:
                errors.append(f"{path}.{name}: unknown member")
            else:
                _check(shape.members[name], value[name], f"{path}.{name}", errors)
        if meta.get("union") and len(set_members) != 1:
            errors.append(f"{path}: a union needs exactly one member, got {sorted(set_members)}")
        return
    if kind == "list":
        if not isinstance(value, list | tuple):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        _check_length(meta, len(value), path, errors)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", errors)
        return
    if kind == "map":
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        _check_length(meta, len(value), path, errors)
        for key, item in value.items():
            _check(shape.key, key, f"{path}<key {key!r}>", errors)
            _check(shape.value, item, f"{path}[{key!r}]", errors)
        return
    if kind == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {type(value).__name__}")
            return
        _check_length(meta, len(value), path, errors)
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            errors.append(f"{path}: {value!r} is not one of {list(enum)}")
        pattern = meta.get("pattern")
        if pattern and value and not _pattern(pattern).fullmatch(value):
            errors.append(f"{path}: {value!r} does not match pattern {pattern!r}")
        return
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {type(value).__name__}")
            return
        if "min" in meta and value < meta["min"]:
            errors.append(f"{path}: {value} < min {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} > max {meta['max']}")
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {type(value).__name__}")
        return
    if kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            errors.append(f"{path}: expected a number, got {type(value).__name__}")
        return
    if kind == "timestamp":
        if not isinstance(value, datetime | int | float) or isinstance(value, bool):
            errors.append(f"{path}: expected a timestamp, got {type(value).__name__}")
        return
    if kind == "blob":
        if isinstance(value, bytes | bytearray):
            _check_length(meta, len(value), path, errors)
        elif not _readable(value):
            errors.append(f"{path}: expected bytes or a stream, got {type(value).__name__}")
        return


def _check_length(meta: Mapping[str, Any], length: int, path: str, errors: list[str]) -> None:
    if "min" in meta and length < meta["min"]:
        errors.append(f"{path}: length {length} < min {meta['min']}")
    if "max" in meta and length > meta["max"]:
        errors.append(f"{path}: length {length} > max {meta['max']}")


def validate_request(operation: str, params: Mapping[str, Any]) -> list[str]:
    shape = operation_model(operation).input_shape
    return [] if shape is None else shape_errors(shape, params)


def validate_output(operation: str, output: Mapping[str, Any]) -> list[str]:
    """Errors in an output dict as the emulator builds it (epoch floats, bytes)."""
    shape = operation_model(operation).output_shape
    return [] if shape is None else shape_errors(shape, output)


def validate_response(operation: str, parsed: Mapping[str, Any]) -> list[str]:
    """Errors in a response as botocore parsed it (``ResponseMetadata`` ignored). Empty list = valid."""
    shape = operation_model(operation).output_shape
    if shape is None:
        extra = [k for k in parsed if k != "ResponseMetadata"]
        return [f"{operation}: unexpected members {extra}"] if extra else []
    return shape_errors(shape, parsed, allow_extra=("ResponseMetadata",))
