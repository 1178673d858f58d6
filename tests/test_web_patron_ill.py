"""A patron's 連携貸出 (ILL request) through POST /api/v1/me/ill-requests and on the title
page (/title/<id>), between two `unioncat serve` processes that lend over ISO 18626 (the
nodes of tests/test_ill_serve.py).  Node A serves Hiroshima with a copy of the shipped
profiles in which Hiroshima also takes requests (リクエスト) on the web (UNIONCAT_CONFIG_DIR):
the shipped profile takes them at the counter, on the form and by FAX only, so there the
web is refused (tests/test_ill_patron.py).  Node B serves Komae (ILL only for Komae), so a
Hiroshima patron on B sees why the request is not offered.  Last, the same in Chromium with
axe-core (the helpers of tests/test_web_browser.py)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from live_server import free_port
from test_demo import _stop_all, cli, env
from test_ill_serve import PATRON, TITLE, Api, _config
from test_web_browser import Tab, text
from web_harness import Browserless, axe_source

ROOT = Path(__file__).resolve().parents[1]
SECOND = "4300000002"                 # another Hiroshima demo patron


def _serve(tmp: Path, data_dir: str, port: int, config_dir: Path | None):
    e = env()
    if config_dir is not None:
        e["UNIONCAT_CONFIG_DIR"] = str(config_dir)
    log = tmp / f"serve-{port}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--data-dir", data_dir, "--port",
                                 str(port), "--z3950-port", "0"], cwd=tmp, env=e, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 240            # a bound on start-up, not a measurement
    while proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() >= deadline:
                proc.kill()
                proc.wait(30)
                raise AssertionError(log.read_text(errors="replace")) from None
            time.sleep(0.2)
    return proc, log


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    from gateway.demo import DEMO_PATRON_PASSWORDS

    tmp = tmp_path_factory.mktemp("patron-ill")
    for d in ("a", "b", "c"):
        res = cli("demo", "--no-serve", "--data-dir", d, cwd=tmp)
        assert res.returncode == 0, res.stderr
    conf = tmp / "conf"
    shutil.copytree(ROOT / "config" / "profiles", conf / "profiles")
    prof = conf / "profiles" / "hiroshima.toml"
    text = prof.read_text(encoding="utf-8")
    old = 'request_channels = ["counter", "form", "fax"]\n'
    assert text.count(old) == 1
    prof.write_text(text.replace(old, 'request_channels = ["counter", "form", "fax", "web"]\n'), encoding="utf-8")
    pa, pb, pc = free_port(), free_port(), free_port()
    _config(tmp / "a" / "unioncat.toml", "JP-1000000", "JP-2000000", pb, "komae", pa, ["hiroshima"],
            "PILL_A_TO_B", "PILL_B_TO_A")
    _config(tmp / "b" / "unioncat.toml", "JP-2000000", "JP-1000000", pa, "hiroshima", pb, ["komae"],
            "PILL_B_TO_A", "PILL_A_TO_B")
    # node C: Hiroshima with the shipped profile (no requests on the web); it only shows pages here
    _config(tmp / "c" / "unioncat.toml", "JP-3000000", "JP-2000000", pb, "komae", pc, ["hiroshima"],
            "PILL_C_TO_B", "PILL_B_TO_C")
    secrets = {"PILL_A_TO_B": "secret-a-b", "PILL_B_TO_A": "secret-b-a", "PILL_C_TO_B": "c-b",
               "PILL_B_TO_C": "b-c"}
    os.environ.update(secrets)
    procs = []
    try:
        for d, port, cd in (("a", pa, conf), ("b", pb, None), ("c", pc, None)):
            proc, log = _serve(tmp, d, port, cd)
            procs.append((proc, log))
            assert proc.poll() is None, log.read_text(errors="replace")
        yield {"a": pa, "b": pb, "c": pc, "pw": DEMO_PATRON_PASSWORDS}
    finally:
        for k in secrets:
            os.environ.pop(k, None)
        for text in _stop_all(procs):
            assert "ERROR" not in text and "Traceback" not in text, text


def test_the_patron_asks_partners_through_the_api(nodes):
    me = Api(nodes["a"]).login_patron(PATRON, nodes["pw"][PATRON])
    placed = me.call("POST", "/me/ill-requests", {"title_id": TITLE, "pickup_branch": "central", "memo": "卒論"},
                     expect=201)
    assert isinstance(placed["request_id"], int) and placed["supplier"] == "JP-2000000"
    listed = me.call("GET", "/me/requests")["requests"]
    assert [(r["title_id"], r["kind"]) for r in listed if r["request_id"] == placed["request_id"]] == [
        (TITLE, "partner")]
    again = me.call("POST", "/me/ill-requests", {"title_id": TITLE, "pickup_branch": "central"}, expect=409)
    assert again["error"] == "duplicate_request" and again["message_ja"] and again["message_en"]
    # bad input: a clear 400/422, never a 500
    assert me.call("POST", "/me/ill-requests", {"pickup_branch": "central"}, expect=400)["error"]
    assert me.call("POST", "/me/ill-requests", {"isbn": "12"}, expect=400)["error"]
    assert me.call("POST", "/me/ill-requests", {"title_id": TITLE, "card_number": SECOND},
                   expect=(400, 422))["error"]
    assert me.call("POST", "/me/ill-requests", {"title_id": TITLE, "pickup_branch": "nowhere"},
                   expect=422)["error"] == "pickup_not_service_point"
    # only patrons: no token, 401
    assert Api(nodes["a"]).call("POST", "/me/ill-requests", {"title_id": TITLE}, expect=401)["error"]


def _title_path(c: Browserless) -> str:
    page = c.get(f"/title?tid={TITLE}")
    assert page.status == 200, page.text[:300]
    m = re.search(r"/title/(\d+)", page.url)
    assert m, page.url
    return f"/title/{m.group(1)}"


def test_the_title_page_offers_it_and_my_page_shows_it(nodes):
    c = Browserless(f"http://127.0.0.1:{nodes['a']}")
    assert c.login(SECOND, nodes["pw"][SECOND]).status == 200
    path = _title_path(c)
    page = c.get(path)
    assert "連携貸出を申し込む" in page.text and f'action="{path}/ill"' in page.text
    done = c.form(path, f"{path}/ill", {"pickup_branch": "central", "memo": "授業で使います"})
    assert done.status == 200 and done.url.endswith("/my/holds"), (done.status, done.url)
    assert any("連携貸出を申し込みました" in m for m in done.messages()), done.messages()
    assert "日本の図書館" in done.text
    # again: the engine's reason, in the page's language, 409 and the form kept
    refused = c.form(path, f"{path}/ill", {"pickup_branch": "central", "memo": "二度目"})
    assert refused.status == 409 and "すでに予約・リクエストしています" in refused.text
    assert 'value="二度目"' in refused.text
    c.get(path + "?lang=en")
    refused = c.form(path, f"{path}/ill", {"pickup_branch": "central"})
    assert refused.status == 409 and "Request from a partner library" in refused.text
    assert "already" in refused.text.lower()
    # a POST without the page's CSRF token is refused
    assert c.post(f"{path}/ill", {"pickup_branch": "central"}).status == 403


def test_not_offered_says_why_and_logged_out_sees_no_form(nodes):
    c = Browserless(f"http://127.0.0.1:{nodes['b']}")
    path = _title_path(c)
    assert f'action="{path}/ill"' not in c.get(path).text
    assert c.login(PATRON, nodes["pw"][PATRON]).status == 200
    page = c.get(path)
    assert "連携貸出は申し込めません" in page.text and "相互貸借の依頼を受け付けていません" in page.text
    assert f'action="{path}/ill"' not in page.text
    # posting anyway: the engine's refusal, 409
    refused = c.form(path, f"{path}/ill", {"pickup_branch": "central"})
    assert refused.status == 409 and "相互貸借の依頼を受け付けていません" in refused.text



def test_a_profile_without_web_requests_says_so_and_the_engine_refuses(nodes):
    c = Browserless(f"http://127.0.0.1:{nodes['c']}")
    assert c.login(PATRON, nodes["pw"][PATRON]).status == 200
    path = _title_path(c)
    page = c.get(path)
    assert "連携貸出は申し込めません" in page.text and "ウェブからの申込は受け付けていません" in page.text
    assert f'action="{path}/ill"' not in page.text
    refused = c.form(path, f"{path}/ill", {"pickup_branch": "central"})
    assert refused.status == 409 and "この方法では受け付けていません" in refused.text
    me = Api(nodes["c"]).login_patron(PATRON, nodes["pw"][PATRON])
    answer = me.call("POST", "/me/ill-requests", {"title_id": TITLE, "pickup_branch": "central"}, expect=409)
    assert answer["error"] == "channel_not_allowed" and answer["details"]["channels"] == ["counter", "fax", "form"]
    assert all(r["title_id"] != TITLE for r in me.call("GET", "/me/requests")["requests"])



class _Site:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"


def test_in_chromium_with_axe_the_patron_requests_from_a_partner(nodes, browser):
    card = "4300000003"
    tab = Tab(browser, _Site(nodes["a"]), axe_source())
    try:
        page = tab.login(card, nodes["pw"][card])
        page = tab.go(f"/title?tid={TITLE}")
        assert "/title/" in page.url and "日本の図書館" in page.locator("h1").inner_text()
        title_path = page.url[len(tab.base):]
        assert page.get_by_role("heading", name="連携貸出を申し込む").is_visible()
        page.locator("#i-pickup").select_option("central")
        page.locator("#i-memo").fill("ゼミで使います")
        tab.check("title-ill")
        tab.submit(page.get_by_role("button", name="連携貸出を申し込む"))
        assert page.url.endswith("/my/holds")
        assert "連携貸出を申し込みました" in text(page, ".msg") and "日本の図書館" in text(page)
        tab.check("my-holds-ill")
        tab.go(title_path)
        tab.submit(page.get_by_role("button", name="連携貸出を申し込む"))
        assert "すでに予約・リクエストしています" in text(page, ".msg-error")
        tab.check("title-ill-refused")
    finally:
        tab.ctx.close()
