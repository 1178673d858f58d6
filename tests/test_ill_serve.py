"""Two `unioncat serve` processes on 127.0.0.1 lend to each other over ISO 18626, driven
only through their staff and patron JSON APIs, as two libraries' staff would.

Node A serves the Hiroshima patrons (its union catalog says Komae holds 日本の図書館);
node B is Komae's own node, which lends. Each node is the demo network (`unioncat demo
--no-serve`) with an ``[ill]`` section in its DATA_DIR/unioncat.toml; tokens come from
the environment. The background worker of each node delivers the messages."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from live_server import free_port
from test_demo import _serve, _stop_all, cli

TITLE = "isbn:9784062880015"          # 日本の図書館: the demo catalog has it at Iizuka and Komae
PATRON = "4300000001"


class Api:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.token = None

    def call(self, method: str, path: str, body: dict | None = None, expect: int | tuple = (200, 201, 202)):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.token}"} if self.token else {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, payload = r.status, json.load(r)
        except urllib.error.HTTPError as e:
            status, payload = e.code, json.loads(e.read() or b"{}")
        expected = expect if isinstance(expect, tuple) else (expect,)
        assert status in expected, (method, path, status, payload)
        return payload

    def login_staff(self, user: str, password: str) -> "Api":
        self.token = self.call("POST", "/staff/login", {"username": user, "password": password})["token"]
        return self

    def login_patron(self, card: str, password: str) -> "Api":
        self.token = self.call("POST", "/login", {"card_number": card, "password": password})["token"]
        return self


def until(check, what: str, timeout: float = 120):
    """Poll ``check()`` until it returns something true (a bound on the wait, not a measurement)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def _config(path: Path, agency: str, partner: str, partner_port: int, partner_library: str, own_port: int,
            systems: list[str], token_env: str, accept_env: str) -> None:
    path.write_text(f'''
[ill]
agency_id = "ISIL:{agency}"
name = "node {agency}"
callback_url = "http://127.0.0.1:{own_port}/iso18626"
systems = {json.dumps(systems)}

[ill.partners."{partner}"]
name = "partner {partner}"
library = "{partner_library}"
url = "http://127.0.0.1:{partner_port}/iso18626"
token_env = "{token_env}"
accept_token_env = "{accept_env}"
''', encoding="utf-8")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    import os

    from gateway.demo import DEMO_PATRON_PASSWORDS, DEMO_STAFF_PASSWORDS

    tmp = tmp_path_factory.mktemp("ill-serve")
    for d in ("a", "b"):
        res = cli("demo", "--no-serve", "--data-dir", d, cwd=tmp)
        assert res.returncode == 0, res.stderr
    pa, pb = free_port(), free_port()
    _config(tmp / "a" / "unioncat.toml", "JP-1000000", "JP-2000000", pb, "komae", pa, ["hiroshima"],
            "ILL_A_TO_B", "ILL_B_TO_A")
    _config(tmp / "b" / "unioncat.toml", "JP-2000000", "JP-1000000", pa, "hiroshima", pb, ["komae"],
            "ILL_B_TO_A", "ILL_A_TO_B")
    secrets = {"ILL_A_TO_B": "secret-a-b", "ILL_B_TO_A": "secret-b-a"}
    os.environ.update(secrets)              # the nodes read their tokens from the environment
    procs = []
    try:
        for d, port in (("a", pa), ("b", pb)):
            proc, got, log = _serve(tmp, d, port=port)
            procs.append((proc, log))
            assert proc.poll() is None, log.read_text(errors="replace")
        yield {"a": pa, "b": pb, "tmp": tmp, "patron_pw": DEMO_PATRON_PASSWORDS[PATRON],
               "staff": DEMO_STAFF_PASSWORDS}
    finally:
        for k in secrets:
            os.environ.pop(k, None)
        for text in _stop_all(procs):
            assert "ERROR" not in text, text


def test_a_loan_between_two_serving_nodes_through_their_apis(nodes):
    a_staff = Api(nodes["a"]).login_staff("hiroshima.central", nodes["staff"]["hiroshima.central"])
    b_staff = Api(nodes["b"]).login_staff("komae.requests", nodes["staff"]["komae.requests"])
    # A's staff place the request by title; the rota finds Komae (node B) in the union catalog
    placed = a_staff.call("POST", "/staff/ill/requests", {"card_number": PATRON, "title_id": TITLE,
                                                          "pickup_branch": "central"}, expect=201)
    assert placed["supplier"] == "JP-2000000"
    rid = placed["request_id"]
    # B sees it in its queue (holdings checked: Komae has a copy), answers and ships
    sup = until(lambda: [x for x in b_staff.call("GET", "/staff/ill/supplies")["supplies"]
                         if x["state"] == "EXPECT_TO_SUPPLY"], "the supply at B")[0]
    pull = b_staff.call("GET", "/staff/ill/pull-list?branch=komae-central")["items"]
    assert [p["barcode"] for p in pull] == ["K0000001"]
    b_staff.call("POST", f"/staff/ill/supplies/{sup['supply_id']}/will-supply")
    b_staff.call("POST", f"/staff/ill/supplies/{sup['supply_id']}/ship",
                 {"barcode": "K0000001", "branch": "komae-central"})
    shipped = until(lambda: [r for r in a_staff.call("GET", "/staff/ill/requests")["requests"]
                             if r["request_id"] == rid and r["state"] == "SHIPPED"], "SHIPPED at A")[0]
    barcode = shipped["barcode"]            # the lender's barcode (made unique here if ours has it)
    assert barcode.endswith("K0000001")
    # A receives it at the pickup counter (a check-in scan), lends it there
    a_staff.call("POST", "/staff/checkin", {"barcode": barcode, "branch": "central"})
    lent = a_staff.call("POST", "/staff/checkout", {"barcode": barcode, "card_number": PATRON}, expect=201)
    # the patron renews on the web: the lender is asked
    patron = Api(nodes["a"]).login_patron(PATRON, nodes["patron_pw"])
    pending = patron.call("POST", f"/me/loans/{lent['loan_id']}/renew", expect=202)
    assert pending["pending"] is True and pending["code"] == "renewal_pending"
    asked = until(lambda: [x for x in b_staff.call("GET", "/staff/ill/supplies")["supplies"]
                           if x["pending"] == "renew"], "the renewal at B")[0]
    b_staff.call("POST", f"/staff/ill/supplies/{asked['supply_id']}/renew-answer", {"yes": True})
    until(lambda: [x for x in patron.call("GET", "/me/loans")["loans"]
                   if x["loan_id"] == lent["loan_id"] and x["due"] != lent["due"]], "the new due date at A")
    # back at the counter it was collected from, and back to the lender
    a_staff.call("POST", "/staff/checkin", {"barcode": barcode, "branch": "central"})
    until(lambda: [x for x in b_staff.call("GET", "/staff/ill/supplies")["supplies"]
                   if x["state"] == "RETURN_SHIPPED"], "ShippedReturn at B")
    b_staff.call("POST", "/staff/checkin", {"barcode": "K0000001", "branch": "komae-central"})
    until(lambda: [r for r in a_staff.call("GET", "/staff/ill/requests?closed=true")["requests"]
                   if r["request_id"] == rid and r["state"] == "COMPLETED"], "COMPLETED at A")
    history = a_staff.call("GET", f"/staff/ill/requests/{rid}/messages")["messages"]
    assert [h["summary"] for h in history] == [
        "Request New", "RequestResponse ExpectToSupply", "StatusChange WillSupply", "StatusChange Loaned",
        "Received", "Renew", "RenewResponse Loaned Y", "ShippedReturn", "StatusChange LoanCompleted"]
    assert all(h["status"] in ("sent", "ok") for h in history)


def test_staff_of_another_system_and_wrong_credentials(nodes):
    a_iizuka = Api(nodes["a"]).login_staff("iizuka.counter", nodes["staff"]["iizuka.counter"])
    refused = a_iizuka.call("POST", "/staff/ill/requests", {"card_number": PATRON, "title_id": TITLE,
                                                            "pickup_branch": "central"}, expect=(403, 404))
    assert refused["error"] in ("not_found", "branch_not_yours")
    assert a_iizuka.call("GET", "/staff/ill/requests")["requests"] == []      # Iizuka takes no part in ILL
    req = urllib.request.Request(f"http://127.0.0.1:{nodes['b']}/iso18626", data=b"<not xml",
                                 headers={"Authorization": "Bearer wrong"})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
    assert r.status == 200 and b"BadlyFormedMessage" in body
