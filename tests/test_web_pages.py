"""The pages of gateway/web/ over plain HTTP (no browser): their security (headers, the
CSRF token, the origin check, no patron data in URLs, the shared session with the JSON
API, staff kept to their library), the files they need shipped in the wheel, and
Hiroshima's services through the JSON API (every request and answer checked against the
OpenAPI document) and through the workbench page that runs the same routes.

The real service on loopback (tests/live_server.py) on SQLite with web_harness's seed."""
from __future__ import annotations

import json
import re
import tomllib
import urllib.request
from datetime import date
from fnmatch import fnmatch
from pathlib import Path

import pytest

from circ_helpers import add_item, add_patron
from circulation import auth, loans, mobile, queries
from test_circulation_api import EMILY, T1, Client
from web_harness import (
    HANAKO,
    HIROSHIMA_PATRON,
    HIROSHIMA_STAFF,
    ROOT,
    Browserless,
    start_site,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
PATRON_PAGES = ["/my", "/my/loans", "/my/holds", "/my/holds/cancelled", "/my/cart", "/my/bookshelf",
                "/my/bookshelf?shelf=finished", "/my/bookshelf?shelf=history", "/my/marathon", "/my/calendar",
                "/my/settings"]
STAFF_PAGES = ["/staff", "/staff/counter", "/staff/shelf", "/staff/pull-list", "/staff/transits",
               "/staff/call-list", "/staff/patron", "/staff/jobs", "/staff/services"]
# Hiroshima (seed 002)
H_STAFF, H_ADULT = HIROSHIMA_STAFF, HIROSHIMA_PATRON
H_MINOR, H_WIDE = "4100000002", "4100000003"
H_TITLE, H_SET = "isbn:9784641000018", "RG-001"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = start_site(tmp_path_factory.mktemp("web-pages"))
    try:
        s.server.run(_hiroshima(s.circ))
        yield s
    finally:
        s.server.stop()


async def update_patron(circ, card: str, **values) -> None:
    from sqlalchemy import update

    from circulation import schema as s
    async with circ.db.transaction() as conn:
        await conn.execute(update(s.patrons).where(s.patrons.c.card_number == card).values(**values))


async def _hiroshima(circ) -> None:
    """Besides web_harness's Hiroshima staff member and resident (H_ADULT): a minor, a
    wide-area patron, copies for delivery, a reading-group set, the mobile library."""
    await update_patron(circ, H_ADULT, email="ichiro@example.jp", default_contact_method="email")
    await add_patron(circ, H_MINOR, "hiroshima", name="広島 こども", phone="082-000-0002", minor=True,
                     default_pickup_branch="central", default_contact_method="phone")
    await add_patron(circ, H_WIDE, "hiroshima", home="呉市", name="呉 花子", phone="0823-00-0003",
                     default_pickup_branch="central", default_contact_method="phone")
    await add_item(circ, "H-B1", H_TITLE, "hiroshima", "central", material_type="book")
    for i in range(15):
        await add_item(circ, f"{H_SET}-{i:02}", "isbn:9784101010014", "hiroshima", "central", set_code=H_SET)
    await add_item(circ, "H-M1", "isbn:9784480020017", "hiroshima", "tomohato")
    await add_item(circ, "H-M2", "isbn:9784003101018", "hiroshima", "tomohato")
    await add_patron(circ, "4900000001", "hiroshima", category="mobile", name="移動 花子")


def browser(site) -> Browserless:
    return Browserless(site.base)


# --------------------------------------------------------------------------- security

def test_every_page_carries_the_security_headers_and_the_session_cookie_is_httponly_lax(site):
    c = browser(site)
    page = c.get("/login")
    h = page.headers
    assert h["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'; style-src 'self'")
    csp = h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "same-origin"
    assert h["X-Content-Type-Options"] == "nosniff" and h["Cache-Control"] == "no-store"
    assert "<script" not in page.text.replace('<script src="/static/site.js" defer></script>', "")
    assert " style=" not in page.text and "<style" not in page.text
    r = c.post("/login", {"card_number": EMILY, "password": "emily123"}, csrf=page.csrf(), follow=False)
    assert r.status == 303 and r.headers["Location"] == "/my"
    cookie = next(v for k, v in r.headers.items() if k == "Set-Cookie" and v.startswith("unioncat_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    for path in PATRON_PAGES:
        p = c.get(path)
        assert p.status == 200, (path, p.status)
        assert p.headers["Content-Security-Policy"] == h["Content-Security-Policy"], path
        assert '<html lang="ja">' in p.text
    css = urllib.request.urlopen(site.base + "/static/site.css", timeout=10)
    assert css.headers["Content-Type"].startswith("text/css") and css.headers["X-Content-Type-Options"] == "nosniff"
    assert c.get("/static/nothing.css").status == 404


def test_forms_need_the_csrf_token_of_their_session_and_the_same_origin(site):
    c = browser(site)
    c.login(EMILY)
    token = c.get("/my/loans").csrf()
    loan_id = next(x["loan_id"] for x in site.server.run(loans.patron_loans(site.circ, EMILY)) if x["title_id"] == T1)
    before = site.server.run(loans.patron_loans(site.circ, EMILY))
    for data, headers in (({"one": loan_id}, {}),                                     # no token
                          ({"one": loan_id, "csrf_token": "0" * 64}, {}),              # a made-up one
                          ({"one": loan_id, "csrf_token": token}, {"Origin": "https://evil.example"}),
                          ({"one": loan_id, "csrf_token": token}, {"Origin": "null"}),
                          ({"one": loan_id, "csrf_token": token}, {"Sec-Fetch-Site": "cross-site"})):
        r = c.post("/my/loans/renew", data, headers=headers)
        assert r.status == 403 and "有効期限" in r.text, (data, headers, r.status)
    other = browser(site)
    other.login(HANAKO)
    r = other.post("/my/loans/renew", {"one": loan_id}, csrf=token)                   # another session's token
    assert r.status == 403
    assert site.server.run(loans.patron_loans(site.circ, EMILY)) == before          # nothing renewed
    # the login form is protected too (login CSRF): a token of another browser is refused
    stranger = browser(site)
    r = stranger.post("/login", {"card_number": EMILY, "password": "emily123"}, csrf=c.get("/login").csrf())
    assert r.status == 403


def test_no_patron_data_in_any_url_of_the_patron_pages(site):
    c = browser(site)
    c.login(EMILY)
    info = site.server.run(queries.patron(site.circ, EMILY))
    loan_ids = {str(x["loan_id"]) for x in site.server.run(loans.patron_loans(site.circ, EMILY))}
    for path in PATRON_PAGES:
        page = c.get(path)
        urls = re.findall(r'(?:href|action|src)="([^"]*)"', page.text)
        for u in urls:
            assert EMILY not in u and (info.email or "@") not in u, (path, u)
            assert not any(re.search(rf"\b{i}\b", u) for i in loan_ids if "loan" in u), (path, u)
        # every form that names a loan, request or entry posts it
        for form in re.findall(r"<form\b[^>]*>.*?</form>", page.text, re.DOTALL):
            if re.search(r'name="(loan_id|one|request_id|entry_id|card_number|title_id)"', form):
                assert 'method="post"' in form, (path, form[:200])


def test_the_page_session_is_the_api_session_and_logging_out_ends_both(site):
    c = browser(site)
    c.login(EMILY)
    token = next(ck.value for ck in c.jar if ck.name == "unioncat_session")
    api = Client(site.base)
    api.cookies["unioncat_session"] = token
    assert api.get("/me", expect=200)["card_number"] == EMILY           # the API reads the pages' cookie
    c.form("/my", "/logout", {})
    assert api.get("/me", expect=401)["error"] == "not_logged_in"
    assert c.get("/my", follow=False).headers["Location"] == "/login"


def test_who_may_open_which_pages(site):
    anon = browser(site)
    for path in PATRON_PAGES:
        assert anon.get(path, follow=False).headers["Location"] == "/login", path
    for path in STAFF_PAGES:
        assert anon.get(path, follow=False).headers["Location"] == "/staff/login", path
    patron = browser(site)
    patron.login(EMILY)
    assert patron.get("/staff/counter").status == 403
    staff = browser(site)
    staff.staff_login()                                   # iizuka.counter: circulation only
    assert staff.get("/my").status == 403
    assert staff.get("/staff/counter").status == 200
    assert staff.get("/staff/jobs").status == 403 and staff.get("/staff/review").status == 403
    admin = browser(site)
    admin.staff_login("iizuka.admin")
    assert admin.get("/staff/jobs").status == 200
    r = admin.form("/staff/jobs", "/staff/jobs", {"job": "overdue"})
    assert "ジョブ overdue を実行しました" in r.messages()[0]


def test_staff_pages_keep_to_their_library(site):
    staff = browser(site)
    staff.staff_login()
    before = site.server.run(loans.patron_loans(site.circ, "3200000001"))
    # Komae's copy and branch at an Iizuka counter; a Komae patron is somebody nobody here knows
    r = staff.form("/staff/counter", "/staff/counter", {"action": "checkin", "barcode": "K-1", "branch": "iizuka"})
    assert r.status == 409 and "他の図書館の資料は扱えません" in r.text
    r = staff.form("/staff/counter", "/staff/counter", {"action": "checkin", "barcode": "I-T6",
                                                         "branch": "komae-central"})
    assert "他の図書館の館では操作できません" in r.text
    r = staff.form("/staff/patron", "/staff/patron", {"card_number": "3200000001"})
    assert r.status == 404 and "鈴木" not in r.text
    assert staff.get("/staff/shelf?branch=komae-central").status == 403
    assert site.server.run(loans.patron_loans(site.circ, "3200000001")) == before


def test_text_from_the_data_is_escaped(site):
    from circulation import cart

    assert site.server.run(cart.add(site.circ, HANAKO, "isbn:x", '<script>alert(1)</script>')).allowed
    c = browser(site)
    c.login(HANAKO)
    page = c.get("/my/cart")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_the_templates_and_static_files_ship_in_the_wheel():
    """Every file under config/web/ matches the package data of pyproject.toml (the wheel
    carries it) and config.locate finds the directories."""
    from config import locate

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["config"]
    web = ROOT / "config" / "web"
    files = [p.relative_to(ROOT / "config").as_posix() for p in web.rglob("*") if p.is_file()]
    assert files and all(any(fnmatch(f, pat) and f.count("/") == pat.count("/") for pat in data) for f in files), files
    assert locate("web/templates") == web / "templates" and locate("web/static/site.css").exists()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "aiohttp-jinja2==1.6" in deps


# --------------------------------------------------------------------------- Hiroshima through the API

def h_staff(site) -> Client:
    c = Client(site.base)
    c.staff_login(H_STAFF)
    return c


def test_hiroshima_home_delivery_registration_request_dispatch_and_ship_through_the_api(site):
    c = h_staff(site)
    assert c.get("/staff/delivery/registration", query={"card_number": H_ADULT}, expect=200)["registered"] is False
    r = c.post("/staff/delivery/registration", {"card_number": H_ADULT, "channel": "post"}, expect=201)
    assert r["registration"]["registered"] is True and r["registration"]["registered_via"] == "post"
    # 広域利用の方は利用できません; 未就学児、小・中学生は保護者の同意が必要です
    assert c.post("/staff/delivery/registration", {"card_number": H_WIDE}, expect=409)["error"] == \
        "delivery_not_eligible_area"
    assert c.post("/staff/delivery/registration", {"card_number": H_MINOR}, expect=409)["error"] == \
        "delivery_guardian_consent_required"
    assert c.post("/staff/delivery/registration", {"card_number": H_MINOR, "guardian_consent": True},
                  expect=201)["registration"]["guardian_consent_at"]
    # the patron asks on the web: the pickup is the dispatch branch
    patron = Client(site.base)
    d = site.server.run(auth.set_password(site.circ, card=H_ADULT, new_password="ichiro26", role="staff",
                                          actor="test"))
    assert d.allowed
    patron.login(H_ADULT, "ichiro26", bearer=True)
    mine = patron.get("/me/delivery", expect=200).json
    assert mine["offered"] and mine["registered"] and mine["dispatch_branch"] == "central" and mine["registered_at"]
    placed = patron.post("/me/delivery-requests", {"title_id": H_TITLE, "title": "広島の歴史と文化"}, expect=201)
    assert placed["request"]["pickup_branch"] == "central"
    # the copy is on the central library's shelf: staff trap it, it appears on the dispatch list
    c.post("/staff/trap", {"barcode": "H-B1"}, expect=200)
    dispatch = c.get("/staff/delivery/dispatch", expect=200)
    assert [x["barcode"] for x in dispatch["requests"]] == ["H-B1"] and dispatch["requests"][0]["registered"]
    shipped = c.post("/staff/delivery/ship", {"barcode": "H-B1"}, expect=201)
    assert date.fromisoformat(shipped["due"]) >= date(2026, 12, 11)        # 3 weeks, on an open day
    assert c.get("/staff/delivery/dispatch", expect=200)["requests"] == []
    r = c.post("/staff/delivery/revocation", {"card_number": H_MINOR, "reason": "postage_unpaid"}, expect=200)
    assert r["registration"]["registered"] is False and r["registration"]["revoked_reason"] == "postage_unpaid"
    # Iizuka offers no delivery: the engine says so
    iizuka = Client(site.base)
    iizuka.staff_login("iizuka.counter")
    assert iizuka.post("/staff/delivery/registration", {"card_number": EMILY}, expect=409)["error"] == \
        "delivery_not_offered"


def test_hiroshima_proxy_consents_and_a_proxy_loan_through_the_api(site):
    c = h_staff(site)
    r = c.post("/staff/proxy-consents", {"card_number": H_WIDE, "proxy_name": "呉 太郎", "reason": "入院中"},
               expect=201)
    assert [x["proxy_name"] for x in r["consents"]] == ["呉 太郎"]
    assert c.post("/staff/proxy-consents", {"card_number": H_WIDE, "proxy_name": "呉　太郎"}, expect=409)["error"] == \
        "proxy_already_consented"
    assert c.post("/staff/proxy-consents", {"card_number": H_WIDE, "proxy_name": "  "}, expect=409)["error"] == \
        "proxy_name_missing"
    assert len(c.get("/staff/proxy-consents", query={"card_number": H_WIDE}, expect=200)["consents"]) == 1
    r = c.post("/staff/proxy-consents/revoke", {"card_number": H_WIDE, "proxy_name": "呉 太郎"}, expect=200)
    assert r["consents"] == []
    iizuka = Client(site.base)
    iizuka.staff_login("iizuka.counter")
    assert iizuka.post("/staff/proxy-consents", {"card_number": EMILY, "proxy_name": "X"}, expect=409)["error"] == \
        "proxy_loans_not_offered"


def test_hiroshima_group_and_school_cards_and_a_reading_set_through_the_api(site):
    c = h_staff(site)
    r = c.post("/staff/group-cards", {"card_number": "4500000001", "category": "group", "name": "読書会みどり",
                                      "home_municipality": "広島市", "representative": "緑 一子"}, expect=201)
    assert r["card_expires"] == "2027-11-19"                     # お申込み時から1年間
    assert c.post("/staff/group-cards", {"card_number": "4500000002", "category": "group", "name": "よそのグループ",
                                         "home_municipality": "呉市"}, expect=409)["error"] == "group_not_in_area"
    assert c.post("/staff/group-cards", {"card_number": "4500000003", "category": "school", "name": "落合小学校5年",
                                         "home_municipality": "広島市"}, expect=422)["error"] == \
        "school_and_grade_required"
    school = {"card_number": "4500000004", "category": "school", "name": "落合小学校", "home_municipality": "広島市",
              "school": "落合小学校", "grade": "5年", "representative": "学年主任"}
    c.post("/staff/group-cards", school, expect=201)
    assert c.post("/staff/group-cards", {**school, "card_number": "4500000005", "grade": "５年"},
                  expect=409)["error"] == "school_grade_card_exists"
    assert c.post("/staff/group-cards/extend", {"card_number": "4500000001"}, expect=409)["error"] == \
        "card_extension_too_early"
    lent = c.post("/staff/reading-sets/checkout", {"set_code": H_SET, "card_number": "4500000001"}, expect=201)
    assert len(lent["loan_ids"]) == 15
    assert c.post("/staff/reading-sets/checkout", {"set_code": "RG-999", "card_number": "4500000001"},
                  expect=404)["error"] == "not_found"
    iizuka = Client(site.base)
    iizuka.staff_login("iizuka.counter")
    assert iizuka.post("/staff/group-cards", {"card_number": "2500000001", "category": "group", "name": "x",
                                              "home_municipality": "飯塚市"}, expect=422)["error"] == \
        "cards_not_offered"


def test_hiroshima_mobile_library_stops_and_a_loan_at_a_stop_through_the_api(site):
    c = h_staff(site)
    r = c.post("/staff/mobile/visits", {"stop": "口田公園", "days": ["2026-11-27", "2026-12-25"]}, expect=201)
    assert r["branch"] == "tomohato" and r["added"] == 2
    assert c.post("/staff/mobile/visits", {"stop": "口田公園", "days": ["2026-11-27"]}, expect=201)["added"] == 0
    stops = c.get("/staff/mobile/stops", expect=200)["stops"]
    assert stops == [{"stop": "口田公園", "school": False,
                      "visits": [{"day": "2026-11-27", "school": False}, {"day": "2026-12-25", "school": False}]}]
    lent = c.post("/staff/mobile/checkout", {"barcode": "H-M1", "card_number": "4900000001", "stop": "口田公園"},
                  expect=201)
    assert lent["due"] == "2026-11-27" and lent["branch"] == "tomohato"       # the next visit to the stop
    assert c.post("/staff/mobile/checkout", {"barcode": "H-M2", "card_number": "4900000001", "stop": "どこか"},
                  expect=404)["error"] == "not_found"
    assert c.post("/staff/mobile/visits", {"stop": "x", "days": ["2026-11-27"], "branch": "central"},
                  expect=422)["error"] == "not_mobile_branch"
    assert site.server.run(mobile.schedule(site.circ, "tomohato"))[0]["stop"] == "口田公園"


def test_hiroshima_services_page_runs_the_same_routes(site):
    staff = browser(site)
    staff.staff_login(H_STAFF)
    page = staff.get("/staff/services")
    assert page.status == 200 and "有料図書宅配サービス" in page.text and "移動図書館" in page.text
    r = staff.form("/staff/services", "/staff/services", {"action": "proxy_record", "card_number": H_ADULT,
                                                          "proxy_name": "広島 二郎", "reason": "乳幼児"})
    assert r.status == 200 and "受け付けました" in r.text and "広島 二郎" in r.text
    r = staff.form("/staff/services", "/staff/services", {"action": "delivery_register", "card_number": H_WIDE})
    assert r.status == 409 and "msg-error" in r.text
    r = staff.form("/staff/services", "/staff/services", {"action": "proxy_lookup", "card_number": "3200000001"})
    assert r.status == 404 and "鈴木" not in r.text                   # another system's patron: nobody
    r = staff.form("/staff/services", "/staff/services", {"action": "mobile_visits", "stop": "落合小学校",
                                                          "days": "2026-12-01 2026-12-15", "school_stop": "yes"})
    assert r.status == 200 and "落合小学校" in r.text
    r = staff.form("/staff/services", "/staff/services", {"action": "mobile_visits", "stop": "x", "days": "12/1"})
    assert r.status == 400
    iizuka = browser(site)
    iizuka.staff_login()
    assert "有料図書宅配サービス" not in iizuka.get("/staff/services").text


def test_the_openapi_document_lists_hiroshimas_routes_under_their_tag():
    doc = json.loads((ROOT / "gateway" / "openapi" / "circulation.json").read_text(encoding="utf-8"))
    from gateway.api import hiroshima

    for route in hiroshima.ROUTES:
        op = doc["paths"]["/api/v1" + route.path][route.method.lower()]
        assert op["tags"] == (["patron"] if route.who == "patron" else ["hiroshima"]), route.path
    assert Path(ROOT / "docs" / "web.md").exists()


def test_the_counter_refuses_a_partners_copy_at_another_counter_and_says_where_it_goes(site):
    """A university's copy lent at 中区図書館 comes back only there (連携貸出): the central
    library's counter shows the engine's refusal naming the lending counter, and nothing moves."""
    from test_circulation_partners import STAFF as PARTNER_STAFF
    from test_circulation_partners import hu_copy, on_shelf, patron

    async def lent():
        await patron(site.circ, "4100000009")
        await hu_copy(site.circ, "U-WEB1", "bib-web-1")
        await on_shelf(site.circ, "U-WEB1", card="4100000009")
        r = await loans.check_out(site.circ, barcode="U-WEB1", card="4100000009", branch="naka", **PARTNER_STAFF)
        assert r.decision.allowed, r.decision

    site.server.run(lent())
    staff = browser(site)
    staff.staff_login(H_STAFF)                                     # at the central library
    r = staff.form("/staff/counter", "/staff/counter", {"action": "checkin", "barcode": "U-WEB1", "branch": "central"})
    assert r.status == 409 and 'class="result refused"' in r.text
    result = re.search(r'class="result-text">(.*?)</p>', r.text, re.DOTALL).group(1)
    assert "借りた窓口に返却してください" in result, result
    assert site.server.run(loans.patron_loans(site.circ, "4100000009"))[0]["barcode"] == "U-WEB1"   # still on loan
    r = staff.form("/staff/counter", "/staff/counter", {"action": "checkin", "barcode": "U-WEB1", "branch": "naka"})
    assert r.status == 200 and "返却しました" in r.text and "大学図書館" in r.text and "へ返送してください" in r.text


def test_a_komae_patron_sees_komaes_rules(site):
    """Komae takes リクエスト (titles it does not own) only at the counter, and its own
    pickup branches and contact methods are the choices."""
    from circulation import cart
    from test_circulation_api import SAKURA, UNOWNED

    assert site.server.run(cart.add(site.circ, SAKURA, UNOWNED, "新しい本")).allowed
    c = browser(site)
    c.login(SAKURA)
    page = c.get("/my/cart")
    assert 'value="komae-central"' in page.text and 'value="iizuka"' not in page.text
    assert 'value="phone"' in page.text                      # Komae phones; Iizuka does not
    done = c.post("/my/cart/checkout", [("title_id", UNOWNED), ("pickup_branch", "komae-central"),
                                         ("contact_method", "email")], csrf=page.csrf())
    assert done.status == 200 and "予約できませんでした" in done.text
    assert "この方法では受け付けていません" in done.text
