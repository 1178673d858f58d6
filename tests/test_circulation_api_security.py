"""What a black-box run of the circulation API with security probes found (issue 15), each
as the test that would have caught it, derived from the route table and the OpenAPI
document so that a new route or field is covered without writing a new test:

* staff of one library system acting on another's copies, patrons, requests, branches
  (one case per staff route and per input naming something of a library) and jobs;
* card numbers told apart by /password-registration (its answer and its work);

The service is the real aiohttp application on loopback (tests/live_server.py) on
SQLite and PostgreSQL, as in test_circulation_api.py, whose client, seed data and
OpenAPI checks these tests share."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from api_service import Shared, shared  # noqa: F401 - the module-scoped service fixture
from circulation import auth
from circulation import schema as s
from circulation.service import Circulation
from gateway.api import API, ROUTES
from test_circulation_api import DOC, EMILY, HANAKO, HANAKO_PHONE, SAKURA, STAFF_PW, T6

pytestmark = pytest.mark.usefixtures("cheap_hashing")


async def snapshot(circ: Circulation) -> dict:
    """What a staff action could change: copies, loans, requests, the audit trail, notices."""
    async with circ.db.read() as conn:
        return {
            "items": (await conn.execute(select(s.items.c.id, s.items.c.status, s.items.c.current_branch)
                                         .order_by(s.items.c.id))).all(),
            "loans": (await conn.execute(select(s.loans.c.id, s.loans.c.state, s.loans.c.returned_at)
                                         .order_by(s.loans.c.id))).all(),
            "requests": (await conn.execute(select(s.requests.c.id, s.requests.c.state)
                                            .order_by(s.requests.c.id))).all(),
            "events": (await conn.execute(select(func.count()).select_from(s.events))).scalar_one(),
            "notices": (await conn.execute(select(func.count()).select_from(s.notices))).scalar_one(),
        }


# --------------------------------------------------------------------------- staff keep to their library

STAFF_ROUTES = [r for r in ROUTES if r.who == "staff"]
# input name -> what it names; every staff input with such a name must be scoped
RESOURCE_INPUTS = {"barcode": "item", "card_number": "patron", "request_id": "request", "branch": "branch",
                   "library": "library"}
# inputs whose name looks like one, and why they are not scoped
NOT_SCOPED = {"pickup_branch": "a choice checked by the placing rules against the patron's own system (422)"}
LOOKS_OWNED = re.compile(r"branch|barcode|card|library|request_id|patron|item")


def _inputs(route) -> dict[str, str]:
    """The route's inputs as the document gives them: name -> path | query | body."""
    op = DOC["paths"][API + route.path][route.method.lower()]
    out = {}
    for p in op.get("parameters", []):
        if "$ref" not in p and p["in"] in ("path", "query"):
            out[p["name"]] = p["in"]
    body = op.get("requestBody")
    if body is not None:
        schema = body["content"]["application/json"]["schema"]
        while "$ref" in schema:
            schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        out.update(dict.fromkeys(schema.get("properties", {}), "body"))
    return out


def test_every_staff_input_that_names_something_of_a_library_is_scoped():
    for route in STAFF_ROUTES:
        inputs = _inputs(route)
        named = {n: RESOURCE_INPUTS[n] for n in inputs if n in RESOURCE_INPUTS}
        assert {(o.name, o.kind) for o in route.owns} == set(named.items()), (route.method, route.path)
        stray = [n for n in inputs if LOOKS_OWNED.search(n) and n not in RESOURCE_INPUTS and n not in NOT_SCOPED]
        assert not stray, f"{route.method} {route.path}: {stray} name something; scope them or say why not"


# What each library's staff may name, and another's: (value of each kind).
def _values(sh: Shared, library: str) -> dict:
    return {"iizuka": {"item": "I-T6", "patron": EMILY, "branch": "iizuka", "library": "iizuka"},
            "komae": {"item": "K-1", "patron": SAKURA, "branch": "komae-central", "library": "komae"}}[library] | {
        "request": sh.requests[library]}


STAFF = {"iizuka.admin": ("iizuka", {"circulation", "admin", "network"}),
         "komae.requests": ("komae", {"circulation", "requests"})}
# the other required fields of a route's body, besides what it names
REQUIRED = {"/staff/requests": {"title_id": T6}, "/staff/review/{request_id}": {"decision": "refuse"},
            "/staff/ill/requests": {"title_id": T6},
            # Hiroshima's services (gateway/api/hiroshima.py)
            "/staff/delivery/revocation": {"reason": "patron_request"}, "/staff/delivery/requests": {"title_id": T6},
            "/staff/proxy-consents": {"proxy_name": "山田 一郎"},
            "/staff/proxy-consents/revoke": {"proxy_name": "山田 一郎"},
            "/staff/group-cards": {"category": "group", "name": "読書会", "home_municipality": "飯塚市"},
            "/staff/reading-sets/checkout": {"set_code": "RS-1"},
            "/staff/mobile/visits": {"stop": "公民館", "days": []},
            "/staff/mobile/checkout": {"stop": "公民館"}}
# values of path parameters that name nothing a scope check looks at (the check comes first)
PATH_VALUES = {"supply_id": 1, "leg_id": 1, "message_id": 1}
# how another system's thing is refused: personal data as if it did not exist
REFUSED = {"item": (403, "item_not_yours"), "patron": (404, "not_found"), "request": (404, "not_found"),
           "branch": (403, "branch_not_yours"), "library": (403, "library_not_yours")}
OTHER = {"iizuka": "komae", "komae": "iizuka"}


@pytest.mark.parametrize("route", [r for r in STAFF_ROUTES if r.owns], ids=lambda r: f"{r.method} {r.path}")
def test_staff_cannot_act_on_another_library_systems_things(shared, route):
    username = next(u for u, (_lib, roles) in STAFF.items() if set(route.roles) <= roles)
    library = STAFF[username][0]
    mine, theirs = _values(shared, library), _values(shared, OTHER[library])
    staff = shared.client()
    staff.staff_login(username)
    inputs = _inputs(route)
    before = shared.run(snapshot)
    for target in route.owns:
        values = {o.name: (theirs if o is target else mine)[o.kind] for o in route.owns}
        path = route.path
        query, body = {}, dict(REQUIRED.get(route.path, {}))
        for name, value in values.items():
            where = inputs[name]
            if where == "path":
                path = path.replace("{%s}" % name, str(value))
            else:
                (query if where == "query" else body)[name] = value
        for name, value in PATH_VALUES.items():
            path = path.replace("{%s}" % name, str(value))
        r = staff.call(route.method, path, *((body,) if route.method != "GET" else ()), query=query or None)
        assert (r.status, r["error"]) == REFUSED[target.kind], (route.path, target, r.json)
    assert shared.run(snapshot) == before                      # nothing of anybody's changed


def test_jobs_act_on_every_system_so_only_network_wide_staff_run_them(shared):
    d = shared.run(auth.create_staff, username="komae.admin", password=STAFF_PW, library="komae",
                   branch="komae-central", roles="circulation admin")
    assert d.allowed, d
    komae = shared.client()
    komae.staff_login("komae.admin")
    before = shared.run(snapshot)
    for job in ("overdue", "shelf_expiry", "purge_cancelled"):
        r = komae.post(f"/staff/jobs/{job}", expect=403)
        assert r["error"] == "role_required" and r["details"]["role"] == "network", r.json
    assert shared.run(snapshot) == before
    network = shared.client()
    network.staff_login("iizuka.admin")                     # admin + network
    assert network.post("/staff/jobs/overdue", expect=200)["job"] == "overdue"


# --------------------------------------------------------------------------- card enumeration

class CountingHasher:
    """argon2's PasswordHasher, counting what it is asked to do (the work a request costs)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def hash(self, password):
        self.calls.append("hash")
        return self.inner.hash(password)

    def verify(self, stored, password):
        self.calls.append("verify")
        return self.inner.verify(stored, password)

    def check_needs_rehash(self, stored):
        return self.inner.check_needs_rehash(stored)


def test_password_registration_does_not_tell_whether_a_card_exists(shared, monkeypatch):
    counting = CountingHasher(auth._hasher)
    monkeypatch.setattr(auth, "_hasher", counting)
    c = shared.client()

    def register(card, phone, password):
        counting.calls.clear()
        r = c.post("/password-registration", {"card_number": card, "phone": phone, "new_password": password})
        return r.status, r.json, list(counting.calls)

    unknown = "2199999999"
    for password in ("a", "toolongpassword-1234", "ok2026"):           # too short, too long, acceptable
        known = register(HANAKO, "0948-00-0000", password)                # a card that exists, wrong phone
        nobody = register(unknown, "0948-00-0000", password)             # a card that does not
        assert known == nobody, (password, known, nobody)
        assert known[0] == 403 and known[1]["error"] == "registration_failed" and known[2] == ["hash"]
    # whoever proves the card (its phone number) is told the rule
    r = c.post("/password-registration", {"card_number": HANAKO, "phone": HANAKO_PHONE, "new_password": "a"},
               expect=422)
    assert r["error"] == "password_length"


# --------------------------------------------------------------------------- sessions

def test_expired_sessions_are_purged_by_a_scheduled_job(shared):
    from datetime import timedelta

    from gateway.api import job_intervals

    assert "purge_sessions" in job_intervals(None, None)            # scheduled by `unioncat serve`
    old = shared.patron()                                           # a session of now
    start = shared.clock.fixed
    try:
        shared.clock.fixed = start + auth.PATRON_MAX + timedelta(minutes=1)    # it has expired
        network = shared.staff()                                    # a session of then
        count = shared.run(_sessions)
        assert network.post("/staff/jobs/purge_sessions", expect=200)["changed"] >= 1
        assert shared.run(_sessions) < count
        assert network.get("/staff/me", expect=200)["staff"]["username"] == "iizuka.all"   # the live one stays
        assert old.get("/me", expect=401)["error"] == "not_logged_in"
        assert network.post("/staff/jobs/purge_sessions", expect=200)["changed"] == 0
    finally:
        shared.clock.fixed = start


async def _sessions(circ) -> int:
    async with circ.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(s.sessions))).scalar_one()
