"""The patron and staff JSON API (gateway/api/) through real HTTP: the real
aiohttp application on a loopback port (tests/live_server.py) with the circulation
service on SQLite and on PostgreSQL (``db_url``), notices delivered to a real SMTP
server on loopback (aiosmtpd), and every request and response checked against the
OpenAPI document (gateway/openapi/circulation.json).

Seeds: 000 Iizuka (the patron guide, end to end), 001 Komae (リクエスト only at the
counter, the phone call list)."""
from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import insert, update

from circ_helpers import NOW, loopback_mailer, smtp_server
from circulation import auth, holds, lists, loans
from circulation import schema as s
from circulation.service import Circulation
from circulation.store import Clock, Database, install_network
from gateway.api import API, ROUTES, STATE
from gateway.app import make_app
from lifecycle.profiles import load_all
from live_server import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
DOC_FILE = ROOT / "gateway" / "openapi" / "circulation.json"
DOC = json.loads(DOC_FILE.read_text(encoding="utf-8"))
pytestmark = pytest.mark.usefixtures("cheap_hashing")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

# Iizuka (seed 000)
HANAKO, HANAKO_PHONE = "2100000001", "0948-22-0001"
EMILY, TARO = "2100000003", "2100000002"
T1, T2, T3, T4, T6 = ("isbn:9784004310013", "isbn:9784003101018", "isbn:9784101010014",
                      "isbn:9784480020017", "isbn:9784062880015")
TITLES = {T1: "図書館の歴史", T2: "吾輩は猫である", T3: "こころ", T4: "本を読む本", T6: "坊っちゃん"}
# Komae (seed 001)
SAKURA, MAKOTO = "3200000001", "3200000002"
K1 = "isbn:9784101010099"
UNOWNED = "isbn:9784000000007"
PW = {EMILY: "emily123", TARO: "taro1234", SAKURA: "sakura77", MAKOTO: "makoto77"}
STAFF_PW = "counter-pass-1"


# --------------------------------------------------------------------------- OpenAPI checks

DOC_URI = "urn:unioncat:circulation-openapi"
REGISTRY = Registry().with_resource(DOC_URI, Resource(contents=DOC, specification=DRAFT202012))
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date", raises=ValueError)
def _is_date(v) -> bool:
    return not isinstance(v, str) or (len(v) == 10 and bool(date.fromisoformat(v)))


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(v) -> bool:
    return not isinstance(v, str) or datetime.fromisoformat(v).tzinfo is not None


def _deref(obj: dict) -> dict:
    while "$ref" in obj:
        node = DOC
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


def _check_schema(schema: dict, instance, what: str) -> None:
    if "$ref" in schema and schema["$ref"].startswith("#"):
        schema = {"$ref": DOC_URI + schema["$ref"]}
    validator = jsonschema.Draft202012Validator(schema, registry=REGISTRY, format_checker=FORMATS)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:5])


def _template_regex(path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")


PATH_PATTERNS = [(p, _template_regex(p)) for p in DOC["paths"]]


def operation_for(method: str, path: str) -> tuple[str, dict] | None:
    """The documented operation a concrete path and method answer to (literal paths
    win over templated ones)."""
    found = [(p.count("{"), p) for p, rx in PATH_PATTERNS
             if rx.match(path) and method.lower() in DOC["paths"][p]]
    if not found:
        return None
    p = min(found)[1]
    return p, DOC["paths"][p][method.lower()]


def check_request(method: str, path: str, body) -> None:
    found = operation_for(method, path)
    assert found is not None, f"{method} {path} is not documented"
    p, op = found
    rb = op.get("requestBody")
    assert rb is not None, f"{method} {p} documents no request body"
    _check_schema(rb["content"]["application/json"]["schema"], body, f"request {method} {p}")


def check_response(method: str, path: str, status: int, payload) -> None:
    found = operation_for(method, path)
    if found is None:                       # no such route: still a JSON error
        assert status >= 400, (method, path, status)
        _check_schema({"$ref": "#/components/schemas/Error"}, payload, f"{method} {path} {status}")
        return
    p, op = found
    documented = op["responses"]
    assert str(status) in documented, f"{method} {p}: status {status} is not documented ({payload})"
    resp = _deref(documented[str(status)])
    schema = resp["content"]["application/json"]["schema"]
    _check_schema(schema, payload, f"response {method} {p} {status}")


# --------------------------------------------------------------------------- HTTP client

@dataclass
class Resp:
    status: int
    json: object
    headers: object

    def __getitem__(self, k):
        return self.json[k]


_NOBODY = object()


class Client:
    """A browser-like (cookie) or app-like (bearer) client of the API. Sends
    X-Requested-With on changes unless ``csrf=False``; checks every request body and
    response against the OpenAPI document."""

    def __init__(self, base: str, *, csrf: bool = True):
        self.base = base
        self.csrf = csrf
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []
        self.token: str | None = None

    def call(self, method: str, path: str, body=_NOBODY, *, query: dict | None = None,
             headers: dict | None = None, raw: bytes | None = None, content_type: str = "application/json",
             expect: int | None = None, validate: bool = True) -> Resp:
        full = API + path if not path.startswith("/api/") else path
        url = self.base + full + ("?" + urllib.parse.urlencode(query) if query else "")
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method in UNSAFE and self.csrf and not self.token:
            h["X-Requested-With"] = "XMLHttpRequest"
        data = None
        if raw is not None:
            data = raw
            h["Content-Type"] = content_type
        elif body is not _NOBODY:
            if validate:
                check_request(method, full, body)
            data = json.dumps(body, ensure_ascii=False).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw_body, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw_body, hdrs = e.code, e.read(), e.headers
        for sc in hdrs.get_all("Set-Cookie") or []:
            self.set_cookie_headers.append(sc)
            name, _, rest = sc.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in sc.lower() or not value or value == '""':
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        ctype = hdrs.get("Content-Type", "")
        assert ctype.startswith("application/json"), (status, ctype, raw_body[:200])
        payload = json.loads(raw_body.decode("utf-8"))
        if status >= 400:
            assert set(payload) == {"error", "message_ja", "message_en", "details"}, payload
            assert "Traceback" not in raw_body.decode("utf-8")
        if validate:
            check_response(method, full, status, payload)
        if expect is not None:
            assert status == expect, f"{method} {full}: {status} {payload}"
        return Resp(status, payload, hdrs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=_NOBODY, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=_NOBODY, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path, body=_NOBODY, **kw):
        return self.call("PATCH", path, body, **kw)

    def delete(self, path, body=_NOBODY, **kw):
        return self.call("DELETE", path, body, **kw)

    def login(self, card: str, password: str, *, bearer: bool = False) -> Resp:
        r = self.post("/login", {"card_number": card, "password": password}, expect=200)
        if bearer:
            self.token = r["token"]
            self.cookies.clear()
        return r

    def staff_login(self, username: str, password: str = STAFF_PW, *, bearer: bool = True) -> Resp:
        r = self.post("/staff/login", {"username": username, "password": password}, expect=200)
        if bearer:
            self.token = r["token"]
            self.cookies.clear()
        return r


# --------------------------------------------------------------------------- SMTP server

class Inbox:
    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()
        self.port = 0

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 2.0.0 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self.lock:
            return [m for rcpt, m in self.messages if address in rcpt]

    def subjects(self, address: str) -> list[str]:
        return [str(m["Subject"]) for m in self.to(address)]

    def wait_for(self, address: str, fragment: str, count: int = 1, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while True:
            got = [m for m in self.to(address) if fragment in str(m["Subject"])]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} mail(s) '{fragment}' to {address}; got {self.subjects(address)}")
            time.sleep(0.05)


@pytest.fixture
def smtp():
    inbox = Inbox()
    with smtp_server(inbox) as inbox.port:
        yield inbox


# --------------------------------------------------------------------------- the service

async def _prepare(url: str) -> None:
    """Tables, the network and the people and copies every test starts from. Loans
    and the first hold are made by the service itself, days before NOW."""
    clock = Clock(NOW - timedelta(days=10))
    circ = Circulation(Database(url), load_all(), clock)
    try:
        await circ.db.create_all()
        async with circ.db.transaction() as conn:
            await install_network(conn, circ.profiles, partners={"hiroshima-u": "広島大学図書館"})
            hashes = {card: await auth.hash_password(pw) for card, pw in PW.items()}

            def patron(card, library, name, home, email_, phone, pickup, contact, work=None):
                return dict(card_number=card, library=library, name=name, home_municipality=home,
                            work_or_school_municipality=work, email=email_, phone=phone,
                            default_pickup_branch=pickup, default_contact_method=contact,
                            password_hash=hashes.get(card), created_at=clock.now())

            await conn.execute(insert(s.patrons), [
                patron(HANAKO, "iizuka", "山田 花子", "飯塚市", "hanako@example.jp", HANAKO_PHONE, "iizuka", "email"),
                patron(TARO, "iizuka", "田中 一郎", "嘉麻市", None, "0948-22-0002", "honami", "none", work="飯塚市"),
                patron(EMILY, "iizuka", "Emily Clark", "飯塚市", "emily@example.com", "0948-72-0003", "chikuho",
                       "email"),
                patron(SAKURA, "komae", "鈴木 さくら", "狛江市", "sakura@example.jp", "03-3480-0001",
                       "komae-central", "email"),
                patron(MAKOTO, "komae", "高橋 誠", "世田谷区", None, "03-3480-0002", "komae-central", "phone"),
            ])

            def item(barcode, title_id, library, branch, **kw):
                return dict(barcode=barcode, title_id=title_id, library=library, owning_branch=branch,
                            current_branch=branch, updated_at=clock.now(), location="一般書架",
                            call_number="913.6", material_type="book", circulating=True,
                            newest_issue=False, **kw)

            await conn.execute(insert(s.items), [
                item("I-T1", T1, "iizuka", "iizuka"), item("I-T2", T2, "iizuka", "iizuka"),
                item("I-T3", T3, "iizuka", "iizuka"), item("I-T4", T4, "iizuka", "chikuho"),
                item("I-T6", T6, "iizuka", "iizuka"), item("K-1", K1, "komae", "komae-central"),
            ])
            await conn.execute(insert(s.title_queues), [{"title_id": t, "title": n} for t, n in TITLES.items()]
                               + [{"title_id": K1, "title": "多摩川の本"}])
            await conn.execute(insert(s.calendar_entries), [
                dict(branch="iizuka", day=date(2026, 11, 30), kind="closed", title="月末整理日"),
                dict(branch="iizuka", day=date(2026, 12, 19), kind="event", title="おはなし会"),
                *[dict(branch="iizuka", day=date(2026, 12, d), kind="closed", title="年末年始休館")
                  for d in (29, 30, 31)],
            ])
        for username, library, branch, roles in (
                ("iizuka.counter", "iizuka", "iizuka", "circulation"),
                ("iizuka.admin", "iizuka", "iizuka", "circulation admin network"),
                ("komae.requests", "komae", "komae-central", "circulation requests"),
                ("komae.nishi", "komae", "nishikawara", "circulation")):
            d = await auth.create_staff(circ, username=username, password=STAFF_PW, library=library,
                                        branch=branch, roles=roles)
            assert d.allowed, d
        # Taro borrows the only copy of T2, Emily those of T1 and T3 (ten days ago) ...
        for barcode, card in (("I-T2", TARO), ("I-T1", EMILY), ("I-T3", EMILY)):
            r = await loans.check_out(circ, barcode=barcode, card=card, branch="iizuka", role="staff",
                                      actor="iizuka.counter")
            assert r.decision.allowed, r.decision
        # ... and Emily put a hold on T1 yesterday.
        clock.fixed = NOW - timedelta(days=1)
        r = await holds.place(circ, card=EMILY, title_id=T1, pickup_branch="chikuho", channel="web",
                              role="patron", actor=EMILY, title=TITLES[T1])
        assert r.request_id is not None, r.decision
        async with circ.db.transaction() as conn:         # their mails went out long ago
            await conn.execute(update(s.notices).values(status="sent"))
    finally:
        await circ.db.dispose()


@dataclass
class Service:
    server: Server
    clock: Clock
    inbox: Inbox

    @property
    def circ(self) -> Circulation:
        return self.server.circulation

    def client(self, **kw) -> Client:
        return Client(self.server.base, **kw)

    def run(self, fn, *args, **kw):
        return self.server.run(fn(self.circ, *args, **kw))

    def at(self, when: datetime) -> None:
        self.clock.fixed = when


@pytest.fixture
def service(db_url, tmp_path, smtp):
    asyncio.run(_prepare(db_url))
    clock = Clock(NOW)
    circ = Circulation(Database(db_url), load_all(), clock)
    mailer = loopback_mailer(smtp.port, message_id_domain="api.unioncat.test")
    (tmp_path / "data").mkdir()
    srv = Server(tmp_path / "data", circulation=circ, mailer=mailer, circulation_jobs={"notices": 3600})
    try:
        yield Service(srv, clock, smtp)
    finally:
        srv.stop()


def by_title(requests: list, title_id: str) -> dict:
    found = [r for r in requests if r["title_id"] == title_id]
    assert len(found) == 1, (title_id, requests)
    return found[0]


# --------------------------------------------------------------------------- the acceptance scenario

def test_iizuka_patron_does_everything_in_the_guide_through_the_api(service):
    svc, inbox = service, service.inbox
    web = svc.client()                                       # a browser: the session cookie
    HANA_MAIL = "hanako@example.jp"

    # 新規パスワード登録: card + the registered phone number, no login
    web.post("/password-registration", {"card_number": HANAKO, "phone": "0948-22-9999",
                                        "new_password": "hana2026"}, expect=403)
    r = web.post("/password-registration", {"card_number": HANAKO, "phone": HANAKO_PHONE,
                                            "new_password": "hana2026"}, expect=200)
    assert r["code"] == "password_registered"
    inbox.wait_for(HANA_MAIL, "新規パスワード登録通知")

    # 利用照会 (ログイン): the cookie is HttpOnly, SameSite=Strict, not Secure on loopback http
    r = web.login(HANAKO, "hana2026")
    assert r["card_number"] == HANAKO and r["name"] == "山田 花子" and r["token"]
    cookie = web.set_cookie_headers[-1]
    assert cookie.startswith("unioncat_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/api/v1" in cookie and "Secure" not in cookie
    assert web.get("/me", expect=200)["settings"]["default_pickup_branch"] == "iizuka"

    # 予約カートに入れる × 2, then 予約する with pickup branch and contact method
    assert web.post("/me/cart", {"title_id": T1, "title": TITLES[T1]}, expect=201)["added"] is True
    web.post("/me/cart", {"title_id": T2, "title": TITLES[T2]}, expect=201)
    again = web.post("/me/cart", {"title_id": T2, "title": TITLES[T2]}, expect=200)
    assert again["added"] is False and again["cart"]["count"] == 2
    cart_now = web.get("/me/cart", expect=200)
    assert [i["title_id"] for i in cart_now["items"]] == [T1, T2]
    done = web.post("/me/cart/checkout", {"pickup_branch": "iizuka", "contact_method": "email"}, expect=200)
    assert done["refused"] == [] and [p["title_id"] for p in done["placed"]] == [T1, T2]
    assert done["cart"]["count"] == 0
    inbox.wait_for(HANA_MAIL, "予約受付通知", count=2)

    # 予約一覧: status, queue position (Emily waits for T1 since yesterday), pickup, contact
    reqs = web.get("/me/requests", expect=200)["requests"]
    h1, h2 = by_title(reqs, T1), by_title(reqs, T2)
    assert (h1["position"], h2["position"]) == (2, 1)
    assert h1["status_ja"] == h2["status_ja"] == "予約中"
    assert h2["pickup_name"] == "飯塚図書館" and h2["contact_ja"] == "E-Mail" and h2["shelf_deadline"] is None

    # 予約取消 on the web, before the copy is secured → 取消済予約一覧 with time, reason, channel
    c = web.post(f"/me/requests/{h1['request_id']}/cancel", expect=200)
    assert c["state"] == "CANCELLED"
    cancelled = web.get("/me/requests/cancelled", expect=200)["requests"]
    assert len(cancelled) == 1
    assert cancelled[0]["request_id"] == h1["request_id"]
    assert cancelled[0]["reason"] == "WEBキャンセル" and cancelled[0]["channel"] == "web"
    assert cancelled[0]["channel_ja"] == "Web" and cancelled[0]["cancelled_at"] == "2026-11-20T10:00:00+09:00"
    inbox.wait_for(HANA_MAIL, "予約取消通知")

    # 借りた本: start saving the borrowing history before the loan
    web.put("/me/history-opt-in", {"enabled": True}, expect=200)

    # staff check the copy in: it is trapped for her → 貸出準備完了 with the shelf deadline, mail
    staff = svc.client()
    staff.staff_login("iizuka.counter")
    ci = staff.post("/staff/checkin", {"barcode": "I-T2", "branch": "iizuka"}, expect=200)
    assert ci["returned"] is True
    assert ci["routing"] == {"kind": "hold_shelf", "request_id": h2["request_id"], "to_branch": "iizuka"}
    h2 = by_title(web.get("/me/requests", expect=200)["requests"], T2)
    assert h2["status_ja"] == "貸出準備完了" and h2["position"] is None
    deadline = date.fromisoformat(h2["shelf_deadline"])
    assert deadline > NOW.date()
    ready = inbox.wait_for(HANA_MAIL, "予約資料のご用意ができました")[0]
    assert f"{deadline.month}月{deadline.day}日" in ready.get_content()
    shelf = staff.get("/staff/shelf", query={"branch": "iizuka"}, expect=200)["holds"]
    assert [(x["request_id"], x["card"]) for x in shelf] == [(h2["request_id"], HANAKO)]
    # the web cannot cancel a secured hold
    web.post(f"/me/requests/{h2['request_id']}/cancel", expect=409)

    # staff lend it to her
    co = staff.post("/staff/checkout", {"barcode": "I-T2", "card_number": HANAKO}, expect=201)
    assert co["request_id"] == h2["request_id"]
    due = date.fromisoformat(co["due"])
    loans_now = web.get("/me/loans", expect=200)["loans"]
    assert [(x["loan_id"], x["title"], x["due"]) for x in loans_now] == [(co["loan_id"], TITLES[T2], co["due"])]
    assert loans_now[0]["renewable"] is False and loans_now[0]["renewal_code"] == "renewal_too_early"
    early = web.post(f"/me/loans/{co['loan_id']}/renew", expect=409)
    assert early["error"] == "renewal_too_early"
    assert early["details"]["opens"] == (due - timedelta(days=7)).isoformat()

    # three days before the due date: the session has idled out, log in again, renew once
    svc.at(datetime.combine(due - timedelta(days=3), NOW.time()))
    assert web.get("/me", expect=401)["error"] == "not_logged_in"
    web.login(HANAKO, "hana2026")
    assert web.get("/me/loans", expect=200)["loans"][0]["renewable"] is True
    rn = web.post(f"/me/loans/{co['loan_id']}/renew", expect=200)
    new_due = date.fromisoformat(rn["due"])
    assert rn["renewals"] == 1 and new_due == due + timedelta(days=14)
    inbox.wait_for(HANA_MAIL, "貸出延長通知")
    second = web.post(f"/me/loans/{co['loan_id']}/renew", expect=409)
    assert second["error"] == "renewal_limit"
    assert second["message_ja"] == "延長できる回数を超えています。"
    assert web.get("/me/loans", expect=200)["loans"][0]["renewable"] is False

    # My本棚: want to read, finished; the history shows the loan; delete the history
    w = web.post("/me/bookshelf/want", {"title_id": T1, "title": TITLES[T1]}, expect=201)
    assert web.post("/me/bookshelf/want", {"title_id": T1, "title": TITLES[T1]}, expect=200)["added"] is False
    web.post("/me/bookshelf/finished", {"title_id": T2, "title": TITLES[T2], "note": "面白かった"}, expect=201)
    assert [e["title_id"] for e in web.get("/me/bookshelf/want", expect=200)["entries"]] == [T1]
    assert web.get("/me/bookshelf/finished", expect=200)["entries"][0]["note"] == "面白かった"
    web.delete(f"/me/bookshelf/want/{w['entry_id']}", expect=200)
    assert web.get("/me/bookshelf/want", expect=200)["entries"] == []
    history = web.get("/me/bookshelf/history", expect=200)["entries"]
    assert [(e["loan_id"], e["title"]) for e in history] == [(co["loan_id"], TITLES[T2])]
    assert web.delete("/me/history", expect=200)["deleted"] == 1
    assert web.get("/me/bookshelf/history", expect=200)["entries"] == []

    # 読書マラソン
    web.put("/me/reading-goal", {"goal": 24}, expect=200)
    assert web.get("/me/reading-goal", expect=200)["goal"] == 24
    prog = web.get("/me/reading-progress", query={"year": 2026}, expect=200)
    assert prog["done"] == 1 and prog["by_month"][10] == 1 and prog["goal"] == 24 and prog["percent"] == 4

    # カレンダー: closed days, events, my due date
    cal = web.get("/me/calendar", query={"month": f"{new_due:%Y-%m}"}, expect=200)
    assert cal["month"] == f"{new_due:%Y-%m}"
    assert {"2026-12-29", "2026-12-30", "2026-12-31"} <= set(cal["branches"]["iizuka"]["closed_days"])
    assert {"branch": "iizuka", "day": "2026-12-19", "title": "おはなし会"} in cal["events"]
    assert [(d["day"], d["loan_id"]) for d in cal["due_dates"]] == [(new_due.isoformat(), co["loan_id"])]

    # another hold, placed directly; then 利用者情報変更 with 登録済み予約の連絡先も変更する
    p3 = web.post("/me/requests", {"title_id": T3, "title": TITLES[T3]}, expect=201)
    assert p3["position"] == 1 and p3["requests"][0]["contact_method"] == "email"
    inbox.wait_for(HANA_MAIL, "予約受付通知", count=3)
    st = web.patch("/me/settings", {"email": "hanako.new@example.jp", "default_pickup_branch": "honami",
                                    "default_contact_method": "none", "update_existing_requests": True},
                   expect=200)
    assert set(st["changed"]) == {"email", "default_pickup_branch", "default_contact_method"}
    assert st["requests_updated"] == 1 and st["warning"] is None
    assert st["settings"]["default_pickup_name"] == "穂波図書館" and st["settings"]["contact_ja"] == "連絡不要"
    h3 = by_title(web.get("/me/requests", expect=200)["requests"], T3)
    assert h3["contact_method"] == "none" and h3["contact_ja"] == "連絡不要"
    got = web.get("/me/settings", expect=200)
    assert got["settings"]["email"] == "hanako.new@example.jp"
    assert {b["code"] for b in got["choices"]["pickup_branches"]} == {"iizuka", "chikuho", "shonai", "honami", "kaita"}
    assert got["choices"]["contact_methods"] == ["email", "none"]

    # メール送信テスト reaches the new address
    tm = web.post("/me/test-mail", expect=202)
    assert tm["queued"] is True and tm["email"] == "hanako.new@example.jp"
    test = inbox.wait_for("hanako.new@example.jp", "メール送信テスト")[0]
    assert "hanako.new@example.jp" in test.get_content()

    # パスワード変更: this session stays, the old password no longer works
    web.put("/me/password", {"old_password": "hana2026", "new_password": "hana2027"}, expect=200)
    assert web.get("/me", expect=200)["card_number"] == HANAKO
    other = svc.client()
    assert other.post("/login", {"card_number": HANAKO, "password": "hana2026"}, expect=401)["error"] == "login_failed"
    other.login(HANAKO, "hana2027", bearer=True)

    # ログアウト: the cookie is cleared and the token is dead
    token = web.cookies["unioncat_session"]
    assert web.post("/logout", expect=200)["logged_out"] is True
    assert "unioncat_session" not in web.cookies
    assert web.get("/me", expect=401)["error"] == "not_logged_in"
    assert web.get("/me", headers={"Authorization": f"Bearer {token}"}, expect=401)["error"] == "not_logged_in"

    # 5 wrong passwords lock the account for 30 minutes; the right one is refused meanwhile
    for i in range(4):
        assert web.post("/login", {"card_number": HANAKO, "password": f"wrong{i}"},
                        expect=401)["error"] == "login_failed"
    fifth = web.post("/login", {"card_number": HANAKO, "password": "wrong4"}, expect=429)
    until = datetime.combine(due - timedelta(days=3), NOW.time()) + timedelta(minutes=30)
    assert fifth["error"] == "locked_out" and fifth["details"]["until"] == until.isoformat() + "+09:00"
    sixth = web.post("/login", {"card_number": HANAKO, "password": "hana2027"}, expect=429)
    assert sixth["error"] == "locked_out" and sixth["details"]["until"] == until.isoformat() + "+09:00"
    assert f"{until:%H:%M}" in sixth["message_ja"] and sixth.headers["Retry-After"] == "1800"
    svc.at(until + timedelta(minutes=1))
    web.login(HANAKO, "hana2027")

    # the mails she got, in Japanese from the notices' templates
    assert sorted(inbox.subjects(HANA_MAIL)) == sorted([
        "【飯塚市立図書館】新規パスワード登録通知", "【飯塚市立図書館】予約受付通知", "【飯塚市立図書館】予約受付通知",
        "【飯塚市立図書館】予約取消通知", "【飯塚市立図書館】予約資料のご用意ができました",
        "【飯塚市立図書館】貸出延長通知", "【飯塚市立図書館】予約受付通知"])


# --------------------------------------------------------------------------- isolation, roles, CSRF

def test_a_patron_cannot_read_or_change_another_patrons_loans_or_requests(service):
    svc = service
    emily = svc.client()
    emily.login(EMILY, PW[EMILY])
    e_loans = emily.get("/me/loans", expect=200)["loans"]
    assert {x["barcode"] for x in e_loans} == {"I-T1", "I-T3"}
    e_req = emily.get("/me/requests", expect=200)["requests"][0]
    entry = emily.post("/me/bookshelf/want", {"title_id": T4}, expect=201)["entry_id"]
    placed = emily.post("/me/requests", {"titles": [{"title_id": T3}, {"title_id": T6}], "mode": "set"}, expect=201)
    set_id = placed["set_id"]

    hana = svc.client()
    hana.post("/password-registration", {"card_number": HANAKO, "phone": HANAKO_PHONE, "new_password": "hana2026"},
              expect=200)
    hana.login(HANAKO, "hana2026", bearer=True)
    assert hana.get("/me/loans", expect=200)["loans"] == []
    assert hana.get("/me/requests", expect=200)["requests"] == []
    not_found = [
        hana.post(f"/me/loans/{e_loans[0]['loan_id']}/renew"),
        hana.patch(f"/me/requests/{e_req['request_id']}", {"contact_method": "none"}),
        hana.post(f"/me/requests/{e_req['request_id']}/cancel"),
        hana.post(f"/me/requests/{e_req['request_id']}/suspend"),
        hana.post(f"/me/requests/{e_req['request_id']}/resume"),
        hana.put(f"/me/requests/sets/{set_id}/order", {"request_ids": list(reversed(placed["request_ids"]))}),
        hana.delete(f"/me/bookshelf/want/{entry}"),
        hana.post("/me/loans/999999/renew"),                    # and an id nobody has: the same answer
    ]
    for r in not_found:
        assert (r.status, r["error"]) == (404, "not_found"), r
    assert not_found[0].json == not_found[-1].json
    # nothing of Emily's changed
    assert emily.get("/me/requests", expect=200)["requests"][0] == e_req
    assert [e["entry_id"] for e in emily.get("/me/bookshelf/want", expect=200)["entries"]] == [entry]
    assert emily.get("/me/loans", expect=200)["loans"] == e_loans
    # her own set can be reordered, her own holds suspended, resumed, changed; a group placed
    r = emily.put(f"/me/requests/sets/{set_id}/order", {"request_ids": list(reversed(placed["request_ids"]))},
                  expect=200)
    assert [x["request_id"] for x in r["requests"]] == list(reversed(placed["request_ids"]))
    assert [x["set_position"] for x in r["requests"]] == [1, 2]
    rid = e_req["request_id"]
    assert emily.post(f"/me/requests/{rid}/suspend", expect=200)["request"]["status_ja"] == "保留中"
    assert emily.post(f"/me/requests/{rid}/suspend", expect=409)["error"] == "not_suspendable"
    assert emily.post(f"/me/requests/{rid}/resume", expect=200)["request"]["status_ja"] == "予約中"
    ch = emily.patch(f"/me/requests/{rid}", {"contact_method": "none"}, expect=200)
    assert (ch["request"]["pickup_name"], ch["request"]["contact_ja"]) == ("ちくほ図書館", "連絡不要")
    g = emily.post("/me/requests", {"titles": [{"title_id": T2, "title": TITLES[T2]}, {"title_id": T4}],
                                    "mode": "group"}, expect=201)
    assert g["mode"] == "group" and g["group_id"] and g["set_id"] is None and len(g["request_ids"]) == 2
    assert {x["group_id"] for x in g["requests"]} == {g["group_id"]}
    # staff are not patrons; nobody is nobody
    staff = svc.client()
    staff.staff_login("iizuka.counter")
    assert staff.get("/me/loans", expect=403)["error"] == "patron_only"
    assert svc.client().get("/me/loans", expect=401).headers["WWW-Authenticate"].startswith("Bearer")
    assert svc.client().get("/me", headers={"Authorization": "Basic abc"},
                            expect=401)["error"] == "invalid_authorization"


def test_iizuka_reservation_ranking_is_public_and_counts_live_reservations(service):
    # 詳しい検索 > 予約ランキング: no login; counts per title, never who
    svc = service
    anon = svc.client()
    first = anon.get("/ranking", query={"library": "iizuka"}, expect=200)
    assert first.json == {"library": "iizuka", "titles": [
        {"rank": 1, "title_id": T1, "title": TITLES[T1], "reservations": 1}]}     # Emily's hold
    for title in (T1, T3):
        d = svc.run(holds.place, card=TARO, title_id=title, pickup_branch="honami", channel="web",
                    role="patron", actor=TARO, title=TITLES[title])
        assert d.decision.allowed, d.decision
    ranked = anon.get("/ranking", query={"library": "iizuka", "limit": "5"}, expect=200)["titles"]
    assert [(r["rank"], r["title_id"], r["reservations"]) for r in ranked] == [(1, T1, 2), (2, T3, 1)]
    assert TARO not in str(ranked) and EMILY not in str(ranked)
    top = anon.get("/ranking", query={"library": "iizuka", "limit": "1"}, expect=200)["titles"]
    assert [r["title_id"] for r in top] == [T1]
    komae = anon.get("/ranking", query={"library": "komae"}, expect=200)
    assert komae["titles"] == []                        # another system's holds are not mixed in
    assert anon.get("/ranking", query={"library": "nowhere"}, expect=404)["error"] == "not_found"
    assert anon.get("/ranking", expect=400)["error"] == "invalid_input"
    assert anon.get("/ranking", query={"library": "iizuka", "limit": "0"}, expect=400)["error"] == "invalid_input"


def test_staff_endpoints_refuse_patrons_and_staff_without_the_role(service):
    svc = service
    patron = svc.client()
    patron.login(EMILY, PW[EMILY], bearer=True)
    for method, path, body in (("POST", "/staff/checkout", {"barcode": "I-T6", "card_number": EMILY}),
                               ("GET", "/staff/shelf", None), ("GET", "/staff/review", None),
                               ("POST", "/staff/jobs/shelf_expiry", None)):
        r = patron.call(method, path, *(() if body is None else (body,)))
        assert (r.status, r["error"]) == (403, "role_required"), r
    anon = svc.client()
    assert anon.get("/staff/shelf", expect=401)["error"] == "not_logged_in"

    counter = svc.client()
    assert counter.get("/staff/me", expect=401)["error"] == "not_logged_in"
    counter.staff_login("iizuka.counter")
    assert counter.get("/staff/me", expect=200)["staff"]["roles"] == ["circulation"]
    assert counter.get("/staff/review", expect=403)["details"]["role"] == "requests"
    assert counter.post("/staff/jobs/shelf_expiry", expect=403)["details"]["role"] == "admin"
    # another library's branch, request, patron
    assert counter.get("/staff/shelf", query={"branch": "komae-central"}, expect=403)["error"] == "branch_not_yours"
    assert counter.get("/staff/shelf", query={"branch": "nowhere"}, expect=404)["error"] == "not_found"
    komae = svc.client()
    komae.staff_login("komae.requests")
    e_req = svc.run(lists.patron_requests, EMILY)[0]["request_id"]
    assert komae.get(f"/staff/requests/{e_req}/history", expect=404)["error"] == "not_found"
    assert counter.get(f"/staff/requests/{e_req}/history", expect=200)["events"][0]["event"] == "PLACE"
    assert komae.post("/staff/requests", {"card_number": EMILY, "title_id": K1}, expect=404)["error"] == "not_found"
    assert komae.get("/staff/review", query={"library": "iizuka"}, expect=403)["error"] == "library_not_yours"
    admin = svc.client()
    admin.staff_login("iizuka.admin")
    assert admin.post("/staff/jobs/overdue", expect=200).json == {"job": "overdue", "changed": 0}
    assert admin.post("/staff/jobs/no_such_job", expect=404)["error"] == "unknown_job"
    # five wrong staff passwords lock the account (429 with Retry-After), the others still log in
    guesser = svc.client()
    for i in range(4):
        assert guesser.post("/staff/login", {"username": "komae.requests", "password": f"guess-{i}xx"},
                            expect=401)["error"] == "staff_login_failed"
    locked = guesser.post("/staff/login", {"username": "komae.requests", "password": "guess-4xx"}, expect=429)
    assert locked["error"] == "locked_out" and locked.headers["Retry-After"] == "1800"
    assert guesser.post("/staff/login", {"username": "komae.requests", "password": STAFF_PW},
                        expect=429)["error"] == "locked_out"
    svc.client().staff_login("iizuka.counter")


def test_the_csrf_defence_refuses_cookie_requests_without_the_header_or_from_another_origin(service):
    svc = service
    browser = svc.client(csrf=False)
    browser.login(EMILY, PW[EMILY])                       # login needs no session, so no header
    assert browser.get("/me/cart", expect=200)["count"] == 0          # reading is fine
    r = browser.post("/me/cart", {"title_id": T4}, expect=403)
    assert r["error"] == "csrf_check_failed" and r["details"]["missing_header"] == "X-Requested-With"
    for path in ("/logout", "/me/test-mail"):
        assert browser.post(path, expect=403)["error"] == "csrf_check_failed"
    browser.delete("/me/cart", expect=403)
    assert browser.get("/me/cart", expect=200)["count"] == 0
    ok = browser.post("/me/cart", {"title_id": T4}, headers={"X-Requested-With": "XMLHttpRequest"}, expect=201)
    assert ok["cart"]["count"] == 1
    # a page of another site: Origin or Sec-Fetch-Site give it away, even with the header
    evil = {"X-Requested-With": "XMLHttpRequest", "Origin": "https://evil.example"}
    assert browser.post("/me/cart", {"title_id": T6}, headers=evil, expect=403)["error"] == "csrf_check_failed"
    assert browser.post("/me/cart", {"title_id": T6}, headers={"X-Requested-With": "1", "Sec-Fetch-Site": "cross-site"},
                        expect=403)["error"] == "csrf_check_failed"
    same = {"X-Requested-With": "1", "Origin": svc.server.base, "Sec-Fetch-Site": "same-origin"}
    browser.post("/me/cart", {"title_id": T6}, headers=same, expect=201)
    # login CSRF: a foreign Origin cannot log the browser in
    assert svc.client().post("/login", {"card_number": EMILY, "password": PW[EMILY]}, headers={"Origin": "null"},
                             expect=403)["error"] == "csrf_check_failed"
    # an app with the bearer token needs no header (a browser never adds it by itself)
    app = svc.client(csrf=False)
    app.login(EMILY, PW[EMILY], bearer=True)
    assert app.delete("/me/cart", query={"title_id": T4}, expect=200)["cart"]["count"] == 1


def test_bad_input_gets_a_json_400_and_never_a_traceback(service, monkeypatch, caplog):
    svc = service
    c = svc.client()
    j = "application/json"
    r = c.post("/login", raw=b'{"card_number": "2100000003", ', content_type=j, expect=400)
    assert r["error"] == "bad_json"
    assert c.post("/login", raw=b"[1, 2]", content_type=j, expect=400)["details"]["problem"] == "expected a JSON object"
    r = c.post("/login", {"card_number": 2100000003, "password": "x"}, validate=False, expect=400)
    assert r["details"] == {"field": "card_number", "problem": "expected a string"}
    r = c.post("/login", {"card_number": EMILY, "password": "x", "remember": True}, validate=False, expect=400)
    assert r["details"]["problem"] == "unknown field" and r["details"]["unknown"] == ["remember"]
    assert c.post("/login", {"card_number": EMILY}, validate=False, expect=400)["details"]["problem"] == "required"
    assert c.post("/login", raw=b"card_number=1&password=2", content_type="application/x-www-form-urlencoded",
                  expect=415)["error"] == "unsupported_media_type"
    assert c.post("/login", raw=b"\xff\xfe", content_type=j, expect=400)["error"] == "bad_json"
    assert c.post("/login", raw=b"x" * (300 * 1024), content_type=j, expect=413)["error"] == "body_too_large"

    c.login(EMILY, PW[EMILY])
    assert c.post("/me/cart", {"title_id": ["a"]}, validate=False, expect=400)["details"]["field"] == "title_id"
    assert c.put("/me/reading-goal", {"goal": True}, validate=False,
                 expect=400)["details"]["problem"] == "expected an integer"
    assert c.put("/me/reading-goal", {"goal": "3"}, validate=False, expect=400)["error"] == "invalid_input"
    assert c.put("/me/reading-goal", {"goal": 0}, validate=False, expect=422)["error"] == "goal_invalid"
    assert c.put("/me/reading-goal", {"goal": None}, expect=200)["goal"] is None
    assert c.get("/me/calendar", query={"month": "2026-13"}, expect=400)["details"]["field"] == "month"
    assert c.get("/me/reading-progress", query={"year": "soon"}, expect=400)["details"]["field"] == "year"
    assert c.get("/me/loans", query={"page": "2"}, expect=400)["details"]["problem"] == "unknown query parameter"
    assert c.post("/me/requests", {"title_id": T4, "titles": [{"title_id": T6}], "mode": "set"},
                  expect=400)["details"]["field"] == "title_id"
    assert c.post("/me/requests", {"titles": [{"title_id": T6, "isbn": "x"}], "mode": "set"}, validate=False,
                  expect=400)["details"]["field"] == "titles[0].isbn"
    assert c.post("/me/requests", {"title_id": T4, "pickup_branch": "kaita", "contact_method": "fax"},
                  expect=422)["error"] == "contact_method_not_offered"
    assert c.patch("/me/settings", {"email": "not an address"}, expect=422)["error"] == "email_invalid"
    r = c.patch("/me/settings", {"email": "emily@hotmail.co.jp"}, expect=200)
    assert r["warning"]["code"] == "email_domain_warning" and r["changed"] == ["email"]
    assert c.get("/me/bookshelf/read-later", expect=404)["error"] == "not_found"
    assert c.post("/me/bookshelf/history", {"title_id": T4}, expect=422)["error"] == "unknown_shelf"
    assert c.post("/me/loans/abc/renew", validate=False, expect=404)["error"] == "not_found"
    assert c.get("/nothing-here", expect=404)["error"] == "not_found"
    r = c.delete("/me/loans", validate=False, expect=405)
    assert r["error"] == "method_not_allowed" and "GET" in r.headers["Allow"]
    assert c.put("/me/password", {"old_password": PW[EMILY], "new_password": "a"},
                 expect=422)["error"] == "password_length"
    assert c.put("/me/password", {"old_password": "nope", "new_password": "abcd"},
                 expect=403)["error"] == "password_change_failed"

    staff = svc.client()
    staff.staff_login("iizuka.counter")
    assert staff.post("/staff/checkin", {"barcode": "I-T1", "dropped_at": "yesterday"}, validate=False,
                      expect=400)["details"]["field"] == "dropped_at"
    future = (NOW + timedelta(hours=1)).isoformat() + "+09:00"
    assert staff.post("/staff/checkin", {"barcode": "I-T1", "dropped_at": "2026-11-20T02:00:00Z"},
                      expect=422)["error"] == "dropped_at_in_future"        # 11:00 in Japan
    assert staff.post("/staff/checkin", {"barcode": "I-T1", "dropped_at": future},
                      expect=422)["error"] == "dropped_at_in_future"
    assert staff.post("/staff/checkin", {"barcode": "I-T1", "return_kind": "chimney"}, validate=False,
                      expect=400)["details"]["allowed"][0] == "book_drop"
    assert staff.post("/staff/checkout", {"barcode": "NOPE", "card_number": EMILY}, expect=404)["error"] == "not_found"
    assert staff.post("/staff/login", {"username": "iizuka.counter", "password": "wrong"},
                      expect=401)["error"] == "staff_login_failed"

    # a bug on our side: logged, answered 500 in JSON, no traceback to the client
    async def broken(circ, card):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(loans, "patron_loans", broken)
    with caplog.at_level("ERROR", logger="unioncat.circulation.api"):
        r = c.get("/me/loans", expect=500)
    assert r["error"] == "internal_error" and "fire" not in json.dumps(r.json)
    assert "database on fire" in caplog.text


# --------------------------------------------------------------------------- Komae

def test_komae_requests_only_at_the_counter_and_the_phone_call_list(service):
    svc = service
    sakura = svc.client()
    sakura.login(SAKURA, PW[SAKURA])
    # a リクエスト (nobody in Komae owns the title) is refused on the web ...
    r = sakura.post("/me/requests", {"title_id": UNOWNED, "title": "新しい本", "material_type": "book"}, expect=409)
    assert r["error"] == "channel_not_allowed" and r["details"]["channels"] == ["counter"]
    # ... and the cart reports it per title, next to a reservation that works
    sakura.post("/me/cart", {"title_id": UNOWNED, "title": "新しい本"}, expect=201)
    sakura.post("/me/cart", {"title_id": K1, "title": "多摩川の本"}, expect=201)
    co = sakura.post("/me/cart/checkout", {}, expect=200)
    assert [p["title_id"] for p in co["placed"]] == [K1]
    assert [(x["title_id"], x["error"]) for x in co["refused"]] == [(UNOWNED, "channel_not_allowed")]
    assert [i["title_id"] for i in co["cart"]["items"]] == [UNOWNED]
    assert sakura.post("/me/cart/checkout", {"title_ids": [K1]}, expect=422)["error"] == "not_in_cart"
    assert sakura.post("/me/cart/checkout", {"pickup_branch": "iizuka"},
                       expect=422)["error"] == "pickup_not_service_point"

    # staff take it at the counter of the pickup branch (not at another branch's)
    nishi = svc.client()
    nishi.staff_login("komae.nishi")
    r = nishi.post("/staff/requests", {"card_number": SAKURA, "title_id": UNOWNED, "title": "新しい本",
                                       "pickup_branch": "komae-central"}, expect=409)
    assert r["error"] == "request_not_at_pickup_branch"
    counter = svc.client()
    counter.staff_login("komae.requests")
    placed = counter.post("/staff/requests", {"card_number": SAKURA, "title_id": UNOWNED, "title": "新しい本",
                                              "memo": "新刊案内で見ました"}, expect=201)
    rid = placed["request_id"]
    assert placed["requests"][0]["state"] == "PURCHASE_REVIEW" and placed["requests"][0]["kind"] == "request"
    second = counter.post("/staff/requests", {"card_number": SAKURA, "title_id": "isbn:9784000000014",
                                              "title": "高い本"}, expect=201)
    queue = counter.get("/staff/review", expect=200)
    assert [x["request_id"] for x in queue["requests"]] == [rid, second["request_id"]]
    assert queue["requests"][0]["memo"] == "新刊案内で見ました"
    ok = counter.post(f"/staff/review/{rid}", {"decision": "purchase"}, expect=200)
    assert ok["state"] == "QUEUED" and ok["status_ja"] == "予約中"
    counter.post(f"/staff/review/{second['request_id']}", {"decision": "refuse", "reason": "収集方針外"}, expect=200)
    assert counter.post(f"/staff/review/{rid}", {"decision": "ill"}, expect=409)["error"] == "not_in_review"
    mine = {r["request_id"]: r for r in sakura.get("/me/requests", expect=200)["requests"]}
    assert mine[rid]["status_ja"] == "予約中"
    refused = sakura.get("/me/requests/cancelled", expect=200)["requests"]
    assert [(x["request_id"], x["reason"], x["status_ja"]) for x in refused] == [
        (second["request_id"], "収集方針外", "お断り")]
    history = counter.get(f"/staff/requests/{rid}/history", expect=200)["events"]
    assert [e["event"] for e in history] == ["PLACE", "VALIDATE", "SEND_TO_PURCHASE_REVIEW", "PURCHASE_APPROVED"]
    assert history[0]["channel"] == "counter" and history[0]["actor"] == "komae.requests"

    # Makoto is called by phone when his hold is ready: the branch's call list
    makoto = svc.client()
    makoto.login(MAKOTO, PW[MAKOTO])
    counter.post("/staff/checkin", {"barcode": "K-1"}, expect=200)            # Sakura's hold takes K-1 first
    mk = makoto.post("/me/requests", {"title_id": K1, "title": "多摩川の本"}, expect=201)
    assert mk["requests"][0]["contact_method"] == "phone" and mk["position"] == 1
    counter.post("/staff/checkout", {"barcode": "K-1", "card_number": SAKURA}, expect=201)
    ret = counter.post("/staff/checkin", {"barcode": "K-1"}, expect=200)
    assert ret["routing"]["request_id"] == mk["request_id"]
    deadline = time.monotonic() + 20
    while not (calls := counter.get("/staff/call-list", expect=200)["entries"]):
        assert time.monotonic() < deadline, "the hold-ready notice never reached the call list"
        time.sleep(0.05)
    assert [(x["card_number"], x["number"], x["contact_method"]) for x in calls] == [(MAKOTO, "03-3480-0002", "phone")]
    # he is reached two days later: 連絡日から1週間 counts from then, and the call is done
    assert calls[0]["shelf_deadline"] == "2026-11-27"
    svc.at(NOW + timedelta(days=2))
    counter.staff_login("komae.requests")
    told = counter.post(f"/staff/call-list/{mk['request_id']}", {"note": "ご本人"}, expect=200)
    assert told.json == {"request_id": mk["request_id"], "contacted_at": "2026-11-22T10:00:00+09:00",
                    "shelf_deadline": "2026-11-29"}
    assert counter.get("/staff/call-list", expect=200)["entries"] == []
    makoto.login(MAKOTO, PW[MAKOTO])
    [mine] = [r for r in makoto.get("/me/requests", expect=200)["requests"] if r["request_id"] == mk["request_id"]]
    assert mine["shelf_deadline"] == "2026-11-29"
    assert counter.post("/staff/call-list/999999", expect=404)["error"] == "not_found"
    history = counter.get(f"/staff/requests/{mk['request_id']}/history", expect=200)["events"]
    assert [(e["event"], e["actor"], e["at"]) for e in history if e["event"] == "CONTACTED"] == \
        [("CONTACTED", "komae.requests", "2026-11-22T10:00:00+09:00")]
    assert "ご本人" in history[-1]["reason"]


# --------------------------------------------------------------------------- staff lists and jobs

def test_pull_list_trap_transit_hold_shelf_staff_cancel_and_the_shelf_expiry_job(service):
    svc = service
    taro = svc.client()
    taro.login(TARO, PW[TARO], bearer=True)
    hold = taro.post("/me/requests", {"title_id": T4, "title": TITLES[T4], "pickup_branch": "iizuka",
                                      "memo": "2階の窓口で受け取ります"}, expect=201)
    rid = hold["request_id"]
    assert hold["requests"][0]["memo"] is None                     # not secured yet: memo hidden
    staff = svc.client()
    staff.staff_login("iizuka.counter")

    pull = staff.get("/staff/pull-list", query={"branch": "chikuho"}, expect=200)
    assert [(x["request_id"], x["barcode"], x["pickup_branch"]) for x in pull["items"]] == [(rid, "I-T4", "iizuka")]
    assert staff.get("/staff/pull-list", expect=200)["items"] == []        # the staff member's own branch
    t = staff.post("/staff/trap", {"barcode": "I-T4", "branch": "chikuho"}, expect=200)
    assert t["routing"] == {"kind": "transit_hold", "request_id": rid, "to_branch": "iizuka"}
    assert staff.post("/staff/trap", {"barcode": "I-T4", "branch": "chikuho"},
                      expect=409)["error"] == "item_not_on_shelf"
    out = staff.get("/staff/transits", query={"branch": "chikuho"}, expect=200)["transits"]
    inn = staff.get("/staff/transits", query={"branch": "iizuka", "direction": "in"}, expect=200)["transits"]
    assert [x["barcode"] for x in out] == [x["barcode"] for x in inn] == ["I-T4"]
    assert inn[0]["memo"] == "2階の窓口で受け取ります" and inn[0]["reason"] == "hold"
    mine = taro.get("/me/requests", expect=200)["requests"][0]
    assert mine["status_ja"] == "搬送中" and mine["memo"] == "2階の窓口で受け取ります"
    assert taro.post(f"/me/requests/{rid}/cancel", expect=409)["error"] == "secured_staff_only"
    arrived = staff.post("/staff/checkin", {"barcode": "I-T4"}, expect=200)
    assert arrived["returned"] is False and arrived["code"] == "not_on_loan"
    assert arrived["routing"] == {"kind": "hold_shelf", "request_id": rid, "to_branch": "iizuka"}
    shelf = staff.get("/staff/shelf", expect=200)["holds"]
    assert [(x["request_id"], x["barcode"]) for x in shelf] == [(rid, "I-T4")]
    events = [e["event"] for e in staff.get(f"/staff/requests/{rid}/history", expect=200)["events"]]
    assert events[:4] == ["PLACE", "VALIDATE", "ENQUEUE", "TRAP_ELSEWHERE"] and events[-1] == "ARRIVE_AT_PICKUP"

    # a second hold, trapped at the counter and cancelled there by staff (secured: staff only)
    h6 = taro.post("/me/requests", {"title_id": T6, "title": TITLES[T6], "pickup_branch": "iizuka"}, expect=201)
    staff.post("/staff/trap", {"barcode": "I-T6"}, expect=200)
    c = staff.post(f"/staff/requests/{h6['request_id']}/cancel", {"reason": "利用者から電話で取消"}, expect=200)
    assert c["state"] == "CANCELLED" and c["cancel_reason"] == "利用者から電話で取消"
    assert staff.post(f"/staff/requests/{h6['request_id']}/cancel", expect=409)["error"] == "already_closed"

    # the shelf deadline passes; the admin runs the shelf expiry job
    svc.at(NOW + timedelta(days=12))
    admin = svc.client()
    admin.staff_login("iizuka.admin")
    assert admin.post("/staff/jobs/shelf_expiry", expect=200).json == {"job": "shelf_expiry", "changed": 1}
    assert admin.post("/staff/jobs/shelf_expiry", expect=200)["changed"] == 0
    assert admin.get("/staff/shelf", expect=200)["holds"] == []
    taro.login(TARO, PW[TARO], bearer=True)                      # the old session idled out
    gone = {x["request_id"]: x for x in taro.get("/me/requests/cancelled", expect=200)["requests"]}
    assert gone[rid]["reason"] == "取置期限切れ" and gone[rid]["status_ja"] == "取置期限切れ"
    assert gone[h6["request_id"]]["channel_ja"] == "窓口"
    assert admin.post("/staff/jobs/notices", expect=200)["job"] == "notices"


# --------------------------------------------------------------------------- the document itself

def test_the_openapi_document_is_valid_and_documents_exactly_the_routes_of_the_app(tmp_path):
    validate_spec(DOC)
    app = make_app(tmp_path, circulation=Circulation(Database(f"sqlite+aiosqlite:///{tmp_path}/c.db")))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith(API + "/") and r.method != "HEAD"}
    documented = {(m.upper(), p) for p, item in DOC["paths"].items() for m in item
                  if m in ("get", "put", "post", "delete", "patch")}
    assert routes == documented, (sorted(routes - documented), sorted(documented - routes))
    assert len(routes) == len(ROUTES)
    ids = [op["operationId"] for item in DOC["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    # every schema referenced exists, and every component schema is used
    text = DOC_FILE.read_text(encoding="utf-8")
    refs = set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', text))
    assert refs == set(DOC["components"]["schemas"])


def test_the_session_cookie_is_secure_unless_the_service_listens_on_loopback(tmp_path):
    def secure(**kw) -> bool:
        app = make_app(tmp_path, circulation=Circulation(Database(f"sqlite+aiosqlite:///{tmp_path}/c.db")), **kw)
        sub = next(r.get_info()["app"] for r in app.router.resources() if r.get_info().get("prefix") == API)
        return sub[STATE].cookie_secure

    assert secure(host="127.0.0.1") is False and secure(host="::1") is False and secure(host="localhost") is False
    assert secure(host="0.0.0.0") is True and secure(host="192.0.2.10") is True
    assert secure(host="library.example.jp") is True
    assert secure(host="127.0.0.1", cookie_secure=True) is True and secure(host="0.0.0.0", cookie_secure=False) is False


def test_the_api_serves_its_openapi_document(service):
    r = svc_get_raw(service.server.base + API + "/openapi.json")
    assert json.loads(r) == DOC


def svc_get_raw(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return r.read()


# --------------------------------------------------------------------------- unioncat serve

@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    from gateway.demo import write_demo_files
    from indexers.ingest import ingest

    d = tmp_path_factory.mktemp("serve-catalog")
    for lib, path in write_demo_files(d / "in").items():
        ingest(d, lib, [path], quiet=True)
    return d


def _cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, (args, res.stdout, res.stderr)
    return res


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"unioncat serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("unioncat serve did not listen")


def test_unioncat_serve_runs_the_api_and_the_jobs_with_circ_db(db_url, catalog_dir, smtp):
    env = {k: v for k, v in os.environ.items() if k not in ("UNIONCAT_CIRC_DB", "UNIONCAT_DATA_DIR")}
    env["UNIONCAT_ARGON2"] = "time_cost=1,memory_cost=8,parallelism=1"
    _cli("circ", "init", "--db", db_url, env=env)
    samples = ROOT / "config" / "samples"
    with ThreadPoolExecutor(4) as pool:           # four independent files: load them side by side
        list(pool.map(lambda kind: _cli("circ", "load", kind, str(samples / f"{kind}.csv"), "--db", db_url,
                                        env=env), ("patrons", "items", "staff", "calendar")))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(catalog_dir), "--circ-db", db_url,
         "--port", str(port), "--z3950-port", "0", "--z3950-workers", "1", "--smtp-host", "127.0.0.1",
         "--smtp-port", str(smtp.port), "--mail-from", "noreply@unioncat.test", "--cookie-secure", "always"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_port(port, proc)
        c = Client(f"http://127.0.0.1:{port}")
        c.post("/password-registration", {"card_number": "2100000001", "phone": "0948-22-0001",
                                          "new_password": "hana2026"}, expect=200)
        c.login("2100000001", "hana2026")
        assert c.get("/me", expect=200)["name"] == "山田 花子"
        assert "Secure" in c.set_cookie_headers[-1]                   # --cookie-secure always
        placed = c.post("/me/requests", {"title_id": "isbn:9784004310013", "title": "サンプル"}, expect=201)
        assert placed["requests"][0]["status_ja"] == "予約中"
        smtp.wait_for("hanako.yamada@example.jp", "新規パスワード登録通知")
        smtp.wait_for("hanako.yamada@example.jp", "予約受付通知")
        # the SRU service is still there
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sru?version=1.2&operation=explain", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert "circulation jobs scheduled" in err and "notices every 1 min" in err, err


def test_unioncat_serve_says_in_one_line_what_is_wrong_with_the_circulation_options(catalog_dir, tmp_path,
                                                                                     monkeypatch):
    from gateway import cli

    monkeypatch.delenv("UNIONCAT_CIRC_DB", raising=False)
    (tmp_path / "x.db").touch()

    def options(*extra):
        args = cli.build_parser().parse_args(["serve", "--data-dir", str(tmp_path), *extra])
        return cli._serve_circulation(args, tmp_path)

    assert options() == {}                                        # no database: no API
    for extra, fragment in (
            (["--circ-db", f"sqlite+aiosqlite:///{tmp_path}/missing.db"], "run `unioncat circ init` first"),
            (["--circ-db", "not a url"], "not a database URL"),
            (["--smtp-host", "127.0.0.1"], "--smtp-host needs a circulation database"),
            (["--circ-db", f"sqlite+aiosqlite:///{tmp_path}/x.db", "--smtp-host", "127.0.0.1"], "needs --mail-from"),
            (["--circ-db", f"sqlite+aiosqlite:///{tmp_path}/x.db", "--mail-from", "a@b.jp"], "needs --smtp-host")):
        with pytest.raises(cli.CircError, match=re.escape(fragment)):
            options(*extra)
    # a deployment's own circulation.toml with a bad [pool]: one line naming the file and key
    own = tmp_path / "own-config"
    own.mkdir()
    (own / "circulation.toml").write_text("[pool]\nsize = 0\noverflow = 1\n")
    monkeypatch.setenv("UNIONCAT_CONFIG_DIR", str(own))
    with pytest.raises(cli.CircError, match=r"circulation\.toml: \[pool\] size must be"):
        options("--circ-db", "postgresql+asyncpg://nobody@127.0.0.1:9/none")
    monkeypatch.delenv("UNIONCAT_CONFIG_DIR")
    (tmp_path / "circulation.db").touch()                         # DATA_DIR/circulation.db is the default
    got = options("--cookie-secure", "never")
    assert got["circ_db"].endswith(f"{tmp_path}/circulation.db") and got["cookie_secure"] is False
    assert got["mailer"] is None
    # a database without the tables: the service does not start, and says why in one line
    res = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(catalog_dir),
                          "--circ-db", f"sqlite+aiosqlite:///{tmp_path}/x.db", "--port", str(free_port()),
                          "--z3950-port", "0", "--z3950-workers", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    errors = [line for line in res.stderr.splitlines() if " INFO " not in line]
    assert res.returncode != 0 and len(errors) == 1 and "is not usable" in errors[0], res.stderr
    assert "unioncat circ init" in errors[0] and "Traceback" not in res.stderr
