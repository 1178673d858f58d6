"""Input checked against the OpenAPI document itself (``gateway/openapi/circulation.json``):
each operation's path and query parameters and its JSON body are validated with the
document's own JSON Schemas (draft 2020-12, through ``jsonschema``), so the rules of
the input are written once, in the document that clients read.

What the schemas cannot say, and the API adds to every operation alike:

* text is Unicode without NUL: a string with U+0000 (PostgreSQL cannot store it) or a
  lone surrogate (not encodable, e.g. ``"\\ud800"``) is refused, wherever it is;
* dates and times (``format: date`` / ``date-time``) lie in the years
  :data:`YEAR_MIN`..:data:`YEAR_MAX`; a time keeps its offset here (the endpoint hands
  it to the service as the service zone's local time, ``encoding.local_times``; one
  without an offset is local time already);
* an ``integer`` is a JSON integer (never ``1.0`` or ``true``);
* a query parameter appears at most once, and only documented ones are accepted;
* a body nested deeper than the JSON parser goes is ``bad_json``, like any unreadable one.

Refusals: 400 ``invalid_input`` with ``details.field`` (``titles[0].isbn``, ``body``
for the body as a whole) and ``details.problem``; a path parameter that cannot name
anything (``/me/bookshelf/read-later``) is 404 ``not_found``, like a path that does
not exist.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from config import locate

from .errors import ApiError, invalid

OPENAPI_FILE = locate("gateway/openapi/circulation.json")
DOC_URI = "urn:unioncat:circulation-openapi"
MAX_BODY = 256 * 1024
YEAR_MIN, YEAR_MAX = 1000, 2999           # dates and times accepted anywhere in the input

_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool))
Validator = validators.extend(Draft202012Validator, type_checker=_TYPES)
FORMATS = FormatChecker(formats=())


def parse_date(v: str) -> date:
    return date.fromisoformat(v)


def parse_datetime(v: str) -> datetime:
    return datetime.fromisoformat(v)


@FORMATS.checks("date", raises=ValueError)
def _is_date(v) -> bool:
    return not isinstance(v, str) or bool(parse_date(v))


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(v) -> bool:
    return not isinstance(v, str) or bool(parse_datetime(v))


_WORDS = {"string": "a string", "integer": "an integer", "boolean": "true or false", "array": "an array",
          "object": "a JSON object", "number": "a number", "null": "null"}
_FORMAT_WORDS = {"date": "an ISO 8601 date", "date-time": "an ISO 8601 datetime"}


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _field(path: list, extra: str | None = None) -> str:
    out = ""
    for p in [*path, *([extra] if extra is not None else [])]:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _problem(e: ValidationError, name: str | None = None) -> ApiError:
    """The 400 answer for one schema violation (``name``: the parameter's name)."""
    path = [name] if name is not None else []
    path += list(e.absolute_path)
    v, value, schema = e.validator, e.validator_value, e.schema
    if v == "type":
        expected = [t for t in ([value] if isinstance(value, str) else value) if t != "null"] or ["null"]
        return invalid(_field(path), f"expected {_WORDS.get(expected[0], expected[0])}")
    if v == "required":
        missing = [p for p in value if isinstance(e.instance, dict) and p not in e.instance]
        return invalid(_field(path, missing[0] if missing else None), "required")
    if v == "additionalProperties":
        unknown = sorted(k for k in e.instance if k not in schema.get("properties", {}))
        return invalid(_field(path, unknown[0]), "unknown field", unknown=unknown)
    if v == "maxLength":
        return invalid(_field(path), f"longer than {value} characters")
    if v == "minLength":
        return invalid(_field(path), f"shorter than {value} characters")
    if v == "enum":
        return invalid(_field(path), "not one of the allowed values", allowed=list(value))
    if v in ("minimum", "maximum"):
        return invalid(_field(path), f"out of range ({schema.get('minimum')}..{schema.get('maximum')})")
    if v == "maxItems":
        return invalid(_field(path), f"more than {value} items")
    if v == "minItems":
        return invalid(_field(path), f"fewer than {value} items")
    if v == "minProperties":
        return invalid(_field(path), f"give at least one of: {', '.join(schema.get('properties', {}))}")
    if v == "format":
        return invalid(_field(path), f"expected {_FORMAT_WORDS.get(value, value)}")
    if v == "pattern":
        return invalid(_field(path), f"does not match the pattern {value}")
    return invalid(_field(path), e.message[:200])


def _first(errors: Iterator[ValidationError], order: list[str]) -> ValidationError | None:
    """The error to report: an unknown field first, then in the order of the schema's
    properties (a missing required field at its place), the outermost first."""
    def key(e: ValidationError):
        path = list(e.absolute_path)
        if e.validator == "required" and isinstance(e.instance, dict) and not path:
            path = [next((p for p in e.validator_value if p not in e.instance), "")]
        top = path[0] if path else None
        return (e.validator != "additionalProperties", order.index(top) if top in order else len(order),
                len(path))
    return min(errors, key=key, default=None)


def _bad_text(v: str) -> str | None:
    if "\x00" in v:
        return "contains the NUL character (U+0000)"
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def _check_text(value: Any, path: list) -> None:
    """Refuse NUL and lone surrogates in every string of an already validated value
    (its depth is bounded by the schema)."""
    if isinstance(value, str):
        problem = _bad_text(value)
        if problem:
            raise invalid(_field(path), problem)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(v, [*path, k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, [*path, i])


class Document:
    """The OpenAPI document, its schemas registered for ``$ref`` resolution."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self.doc = json.loads(raw)
        self.registry = Registry().with_resource(DOC_URI, Resource(contents=self.doc, specification=DRAFT202012))

    @classmethod
    def load(cls, path: Path = OPENAPI_FILE) -> "Document":
        return cls(path.read_bytes())

    def resolve(self, node: dict) -> dict:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def validator(self, pointer: str) -> Draft202012Validator:
        return Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=self.registry, format_checker=FORMATS)

    def operation(self, method: str, path: str) -> "Operation":
        """The operation documented for ``method`` ``path`` (the document's own path,
        e.g. ``/api/v1/me/loans/{loan_id}/renew``); KeyError if there is none."""
        return Operation(self, method.lower(), path)


@dataclass
class Param:
    name: str
    where: str                     # path | query
    required: bool
    schema: dict
    validator: Draft202012Validator


class Operation:
    def __init__(self, doc: Document, method: str, path: str):
        self.doc, self.method, self.path = doc, method, path
        item = doc.doc["paths"][path]
        op = item[method]
        self.params: dict[str, Param] = {}
        located = [(("paths", path, "parameters", str(i)), raw)
                   for i, raw in enumerate(item.get("parameters", []))]
        located += [(("paths", path, method, "parameters", str(i)), raw)
                    for i, raw in enumerate(op.get("parameters", []))]
        for where, raw in located:
            p = doc.resolve(raw)
            if p["in"] not in ("path", "query"):
                continue                       # headers: the session checks read them
            pointer = (raw["$ref"].lstrip("#") if "$ref" in raw else _pointer(*where)) + "/schema"
            self.params[p["name"]] = Param(p["name"], p["in"], bool(p.get("required")), doc.resolve(p["schema"]),
                                           doc.validator(pointer))
        body = op.get("requestBody")
        if body is not None:
            pointer = _pointer("paths", path, method, "requestBody", "content", "application/json", "schema")
            self.body_schema = doc.resolve(body["content"]["application/json"]["schema"])
            self.body_validator = doc.validator(pointer)
        else:                                  # no body: nothing but an empty object
            self.body_schema = {"type": "object", "properties": {}, "additionalProperties": False}
            self.body_validator = Validator(self.body_schema)

    # ------------------------------------------------------------------ aiohttp

    def router_path(self, prefix: str) -> str:
        """The aiohttp route for the document's path: integer path parameters only match
        digits (as many as their maximum has), so another value is a 404."""
        def sub(m: re.Match) -> str:
            p = self.params.get(m.group(1))
            if p is not None and p.schema.get("type") == "integer":
                return "{%s:\\d{1,%d}}" % (p.name, len(str(p.schema.get("maximum", 10 ** 17))))
            return m.group(0)
        return re.sub(r"\{([^}]+)\}", sub, self.path[len(prefix):])

    # ------------------------------------------------------------------ values

    def _value(self, p: Param, raw: str) -> Any:
        t = p.schema.get("type")
        if t == "integer" and re.fullmatch(r"-?[0-9]{1,30}", raw):
            return int(raw)
        if t == "boolean" and raw in ("true", "false"):
            return raw == "true"
        return raw

    def _check_param(self, p: Param, value: Any) -> Any:
        if isinstance(value, str):
            problem = _bad_text(value)
            if problem:
                raise invalid(p.name, problem)
        err = _first(p.validator.iter_errors(value), [])
        if err is not None:
            raise _problem(err, p.name)
        return self._convert(p.schema, value, [p.name])

    def path_values(self, request: web.Request) -> dict:
        out = {}
        for p in self.params.values():
            if p.where != "path":
                continue
            try:
                out[p.name] = self._check_param(p, self._value(p, request.match_info[p.name]))
            except ApiError:
                raise ApiError(404, "not_found", details={"parameter": p.name}) from None
        return out

    def query_values(self, request: web.Request) -> dict:
        raw: dict[str, str] = {}
        for k, v in request.query.items():
            if k in raw:
                raise invalid(k, "given more than once")
            raw[k] = v
        known = {n for n, p in self.params.items() if p.where == "query"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise invalid(unknown[0], "unknown query parameter", unknown=unknown)
        out = {}
        for name in sorted(known, key=list(self.params).index):
            p = self.params[name]
            if name not in raw:
                if p.required:
                    raise invalid(name, "required")
                continue
            out[name] = self._check_param(p, self._value(p, raw[name]))
        return out

    async def body_values(self, request: web.Request) -> dict:
        """The JSON object body, checked against the document. An empty body counts as
        ``{}`` (then only a body without required fields passes)."""
        if (request.content_length or 0) > MAX_BODY:
            raise ApiError(413, "body_too_large", details={"max_bytes": MAX_BODY})
        raw = await request.read()
        if len(raw) > MAX_BODY:
            raise ApiError(413, "body_too_large", details={"max_bytes": MAX_BODY})
        if not raw.strip():
            data: Any = {}
        else:
            if request.content_type != "application/json":
                raise ApiError(415, "unsupported_media_type", details={"content_type": request.content_type})
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise ApiError(400, "bad_json", details={"problem": str(e)[:200]}) from None
            except RecursionError:
                raise ApiError(400, "bad_json", details={"problem": "nested too deeply"}) from None
        order = list(self.body_schema.get("properties", {}))
        err = _first(self.body_validator.iter_errors(data), order)
        if err is not None:
            raise _problem(err)
        _check_text(data, [])
        return self._convert(self.body_schema, data, [])

    def _convert(self, schema: dict, value: Any, path: list) -> Any:
        """Dates and times as Python values (inside the accepted years), recursively."""
        schema = self.doc.resolve(schema)
        fmt = schema.get("format")
        if isinstance(value, str) and fmt in ("date", "date-time"):
            parsed = parse_date(value) if fmt == "date" else parse_datetime(value)
            if not YEAR_MIN <= parsed.year <= YEAR_MAX:
                raise invalid(_field(path), f"outside the accepted years {YEAR_MIN}..{YEAR_MAX}")
            return parsed             # a time keeps its offset: encoding.local_times
        if isinstance(value, dict):
            props = schema.get("properties", {})
            return {k: self._convert(props[k], v, [*path, k]) if k in props else v for k, v in value.items()}
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            return [self._convert(schema["items"], v, [*path, i]) for i, v in enumerate(value)]
        return value
