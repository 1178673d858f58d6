"""Bad input at every operation of the circulation API gets a clear 4xx in the API's JSON
error shape, never a 500 and never an error or a traceback in the service's log
(tests/log_checks.py). The cases are derived from the OpenAPI document, so a new
operation or field is covered without a new test:

* a lone surrogate and a NUL character in every string of every body, and NUL in every
  query and path parameter (UnicodeEncodeError, and PostgreSQL refusing NUL, were 500s);
* dates and times far outside the accepted years in every date field (OverflowError);
* a body nested 100,000 deep (RecursionError) at every operation that takes a body;
* a header line or a URL over 8 KB (aiohttp's plain-text 400 with a traceback logged), and
  a message the HTTP parser refuses (a bad Content-Length: the API's JSON error all the same);
* property-based fuzzing of every operation with schemathesis (valid and invalid data).

On SQLite and on PostgreSQL (tests/api_service.py)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from api_service import shared  # noqa: F401 - the module-scoped service fixture
from gateway.api import API, ROUTES
from log_checks import no_errors_logged
from test_circulation_api import DOC, Client

pytestmark = pytest.mark.usefixtures("cheap_hashing")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        node = DOC
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def operation(route) -> dict:
    return DOC["paths"][API + route.path][route.method.lower()]


def params(route, where: str) -> list[dict]:
    return [p for p in operation(route).get("parameters", []) if "$ref" not in p and p["in"] == where]


def body_schema(route) -> dict | None:
    rb = operation(route).get("requestBody")
    return resolve(rb["content"]["application/json"]["schema"]) if rb else None


def minimal(schema: dict):
    """The smallest value the schema accepts (its required properties; one property
    when it asks for at least one)."""
    schema = resolve(schema)
    t = schema.get("type")
    t = next((x for x in t if x != "null"), "null") if isinstance(t, list) else t
    if "enum" in schema:
        return schema["enum"][0]
    if t == "object":
        props = schema.get("properties", {})
        names = schema.get("required") or (list(props)[:1] if schema.get("minProperties") else [])
        return {k: minimal(props[k]) for k in names}
    if t == "array":
        return []
    if t == "integer":
        return schema.get("minimum", 1)
    if t == "boolean":
        return False
    return {"date": "2026-11-20", "date-time": "2026-11-20T10:00:00+09:00"}.get(schema.get("format"), "x")


def strings(schema: dict, path=()):
    """(path, schema) of every string anywhere in the schema (array items as index 0)."""
    schema = resolve(schema)
    t = schema.get("type")
    types = t if isinstance(t, list) else [t]
    if "string" in types:
        yield path, schema
    if "object" in types:
        for k, sub in schema.get("properties", {}).items():
            yield from strings(sub, (*path, k))
    if "array" in types and "items" in schema:
        yield from strings(schema["items"], (*path, 0))


def with_value(schema: dict, path: tuple, value):
    """A minimal body with ``value`` at ``path`` (an index: one item of the array)."""
    body = minimal(schema)
    node, sch = body, resolve(schema)
    for i, key in enumerate(path):
        sch = resolve(sch["properties"][key] if isinstance(key, str) else sch["items"])
        if i == len(path) - 1:
            if isinstance(key, str):
                node[key] = value
            else:
                node.append(value)
        elif isinstance(key, str):
            node = node.setdefault(key, minimal(sch))
        else:
            node.append(minimal(sch))
            node = node[-1]
    return body


def field_name(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def fill(route, values: dict | None = None) -> str:
    """The route's path with its path parameters set (``values`` first, else valid ones)."""
    path = route.path
    for p in params(route, "path"):
        v = (values or {}).get(p["name"])
        if v is None:
            s = resolve(p["schema"])
            v = {"shelf": "want", "name": "overdue"}.get(p["name"], "s1" if s.get("type") == "string" else 1)
        path = path.replace("{%s}" % p["name"], str(v))
    return path


def client_for(shared, route) -> Client:
    if route.who in ("patron", "any"):
        return shared.patron()
    if route.who == "staff":
        return shared.staff()
    return shared.client()


def raw(body) -> bytes:
    return json.dumps(body).encode()               # ASCII: a lone surrogate is sent as \ud800


WITH_BODY = [r for r in ROUTES if body_schema(r) is not None]


@pytest.mark.parametrize("route", [r for r in WITH_BODY if any(strings(body_schema(r)))],
                         ids=lambda r: f"{r.method} {r.path}")
def test_a_lone_surrogate_or_nul_in_any_string_of_a_body_is_a_400(shared, route, caplog):
    c = client_for(shared, route)
    schema = body_schema(route)
    with no_errors_logged(caplog):
        for path, _sch in strings(schema):
            for bad in ("\ud800", "a\x00b"):
                r = c.call(route.method, fill(route), raw=raw(with_value(schema, path, bad)))
                assert (r.status, r["error"], r["details"].get("field")) == \
                    (400, "invalid_input", field_name(path)), (path, bad, r.json)


QUERIES = [(r, p) for r in ROUTES for p in params(r, "query")]
PATHS = [(r, p) for r in ROUTES for p in params(r, "path") if resolve(p["schema"]).get("type") == "string"]


@pytest.mark.parametrize("route,param", QUERIES + PATHS, ids=lambda x: x["name"] if isinstance(x, dict) else
                         f"{x.method} {x.path}")
def test_nul_or_invalid_utf8_in_a_query_or_path_parameter_is_refused(shared, route, param, caplog):
    c = client_for(shared, route)
    with no_errors_logged(caplog):
        for bad in ("%00", "a%00b", "%ED%A0%80", "%FF"):
            if param["in"] == "path":
                r = c.call(route.method, fill(route, {param["name"]: bad}), raw=b"" if route.method in UNSAFE else None)
                assert 400 <= r.status < 500, (bad, r.json)
                if "00" in bad:
                    assert (r.status, r["error"]) == (404, "not_found"), (bad, r.json)
            else:
                required = {p["name"]: minimal(p["schema"]) for p in params(route, "query") if p.get("required")}
                url = API + fill(route) + "?" + "&".join(
                    f"{k}={v}" for k, v in {**required, param["name"]: bad}.items())
                r = c.call(route.method, url, raw=b"" if route.method in UNSAFE else None)
                assert 400 <= r.status < 500, (bad, r.json)
                if "00" in bad:
                    assert (r.status, r["details"]["field"]) == (400, param["name"]), r.json


def dates(schema: dict):
    return [(path, s["format"]) for path, s in strings(schema) if s.get("format") in ("date", "date-time")]


DATED = [r for r in WITH_BODY if dates(body_schema(r))]


@pytest.mark.parametrize("route", DATED, ids=lambda r: f"{r.method} {r.path}")
def test_dates_and_times_outside_the_accepted_years_are_a_400(shared, route, caplog):
    c = client_for(shared, route)
    schema = body_schema(route)
    extremes = {"date": ["0001-01-01", "9999-12-31", "0999-12-31", "3000-01-01"],
                "date-time": ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00",
                              "9999-12-31T23:59:59.999999+00:00", "0999-12-31T23:00:00Z"]}
    with no_errors_logged(caplog):
        for path, fmt in dates(schema):
            for v in extremes[fmt]:
                r = c.call(route.method, fill(route), raw=raw(with_value(schema, path, v)))
                assert (r.status, r["details"].get("field")) == (400, field_name(path)), (v, r.json)
                assert "1000..2999" in r["details"]["problem"] or "expected" in r["details"]["problem"], r.json


def test_a_return_dated_long_ago_is_refused_as_implausible(shared, caplog):
    staff = shared.staff()
    with no_errors_logged(caplog):
        for when in ("1900-01-01T00:00:00+09:00", "2026-10-19T09:59:00+09:00"):        # > 31 days before NOW
            r = staff.post("/staff/checkin", {"barcode": "NOPE", "dropped_at": when}, expect=422)
            assert r["error"] == "dropped_at_implausible" and r["details"]["earliest"] == "2026-10-20T10:00:00+09:00"
        # within the month it is a return like any other (this copy does not exist)
        staff.post("/staff/checkin", {"barcode": "NOPE", "dropped_at": "2026-10-21T10:00:00+09:00"}, expect=404)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.method in UNSAFE], ids=lambda r: f"{r.method} {r.path}")
def test_a_body_nested_100000_deep_is_bad_json(shared, route, caplog):
    c = client_for(shared, route)
    with no_errors_logged(caplog):
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"":' * 50_000 + b"1" + b"}" * 50_000):
            r = c.call(route.method, fill(route), raw=body)
            assert (r.status, r["error"]) == (400, "bad_json"), r.json
        if body_schema(route) is not None:          # deep, but within the parser's reach: the schema refuses it
            first = next(iter(body_schema(route)["properties"]))
            r = c.call(route.method, fill(route), raw=b'{"%s": ' % first.encode() + b"[" * 500 + b"]" * 500 + b"}")
            assert r.status == 400 and r["details"]["field"].startswith(first), r.json


def test_an_oversized_header_or_url_gets_the_api_s_json_error(shared, caplog):
    c = shared.client()
    with no_errors_logged(caplog):
        r = c.get("/me", headers={"Authorization": "Bearer " + "a" * 10_000}, expect=431)
        assert r["error"] == "header_too_large" and r["details"]["header"] == "Authorization"
        r = c.post("/login", {"card_number": "1", "password": "x"}, headers={"Cookie": "x=" + "b" * 9000}, expect=431)
        assert r["details"]["header"] == "Cookie"
        r = c.get("/ranking", query={"library": "i" * 9000}, expect=414)
        assert r["error"] == "uri_too_long"
        assert c.get("/me", headers={"Authorization": "Bearer " + "a" * 8000}, expect=401)["error"] == "not_logged_in"
        # beyond what the HTTP layer reads: a 400 in the same JSON shape, logged in one line
        # without a traceback
        req = urllib.request.Request(shared.server.base + API + "/me", headers={"Authorization": "x" * 40_000})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 400 and e.value.headers.get_content_type() == "application/json"
        refusal = json.loads(e.value.read())
        assert refusal["error"] == "malformed_request" and "Got more than" in refusal["details"]["reason"]
    assert any("malformed request refused" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("head", [
    b"GET /api/v1/staff/call-list HTTP/1.1\r\nHost: x\r\nContent-Length: C\r\n\r\n",   # found by the fuzz
    b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-A\x01: y\r\n\r\n",
])
def test_a_message_the_http_parser_refuses_gets_the_api_s_json_error(shared, head, caplog):
    """The parser refuses these before any handler (and without keeping the path): the
    answer is still the documented JSON error, and the connection is closed after it."""
    import socket

    with no_errors_logged(caplog):
        with socket.create_connection(("127.0.0.1", shared.server.port), timeout=10) as s:
            s.sendall(head)
            answer = b""
            while chunk := s.recv(65536):          # the server closes (else: a timeout)
                answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status.split()[1] == b"400", answer
    assert b"content-type: application/json" in headers.lower(), answer
    refusal = json.loads(body)
    assert refusal["error"] == "malformed_request" and refusal["details"]["reason"], refusal
    assert set(refusal) == {"error", "message_ja", "message_en", "details"}


def test_an_authorization_or_cookie_that_cannot_be_a_token_is_no_session(shared, caplog):
    c = shared.client()
    with no_errors_logged(caplog):
        for token in ("\u00ff\u00fe", "a b", "x" * 200, "%00", "é"):
            assert c.get("/me", headers={"Authorization": "Bearer " + token.encode("utf-8").decode("latin-1")},
                         expect=401)["error"] == "not_logged_in"
            assert c.get("/me", headers={"Cookie": "unioncat_session=" + token.encode("utf-8").decode("latin-1")},
                         expect=401)["error"] == "not_logged_in"


def test_the_generated_bodies_are_valid_for_the_document():
    """The bodies built above are what the document accepts (so the refusals above come
    from the one bad value, not from the rest of the body)."""
    from test_circulation_api import check_request
    for r in WITH_BODY:
        schema = body_schema(r)
        check_request(r.method, API + fill(r), minimal(schema))
        for path, s in strings(schema):
            good = s["enum"][0] if "enum" in s else minimal(s)
            check_request(r.method, API + fill(r), with_value(schema, path, good))
