"""The ILL queues of the workbench (gateway/web/staff_ill.py) between two `unioncat serve`
processes that lend to each other over ISO 18626 (the nodes of tests/test_ill_serve.py):
Hiroshima's staff place a request by title on the page, Komae's staff see it in their
supplier queue and its pull list, answer 提供する and ship it on the page; Hiroshima's
queue follows, and the patron's renewal of the partner's copy on 貸出一覧 says that the
lender was asked (延長を依頼しました)."""
from __future__ import annotations

import re

from test_ill_serve import PATRON, TITLE, Api, nodes, until  # noqa: F401 - the module-scoped nodes fixture
from web_harness import Browserless


def _staff(port: int, username: str, password: str) -> Browserless:
    c = Browserless(f"http://127.0.0.1:{port}")
    page = c.staff_login(username, password)
    assert page.url.endswith("/staff"), page.text[:300]
    return c


def test_both_ill_queues_on_the_workbench_between_two_nodes(nodes):  # noqa: F811 - the fixture
    a = _staff(nodes["a"], "hiroshima.central", nodes["staff"]["hiroshima.central"])
    b = _staff(nodes["b"], "komae.requests", nodes["staff"]["komae.requests"])
    page = a.form("/staff/ill", "/staff/ill/requests", {"card_number": PATRON, "title_id": TITLE,
                                                        "pickup_branch": "central"})
    assert page.status == 200 and "処理しました" in page.messages()[0], page.messages()
    assert "日本の図書館" in page.text and "partner JP-2000000" in page.text

    def supply_row():
        text = b.get("/staff/ill").text
        m = re.search(r'name="supply_id" value="(\d+)"', text)
        return m and ("提供可否の回答" in text) and m.group(1)

    supply_id = until(supply_row, "the supply on B's page")
    pull = b.get("/staff/ill/pull-list?branch=komae-central")
    assert pull.status == 200 and "K0000001" in pull.text
    page = b.form("/staff/ill", "/staff/ill/supply", {"supply_id": supply_id, "action": "will_supply"})
    assert "処理しました" in page.messages()[0]
    page = b.form("/staff/ill", "/staff/ill/supply", {"supply_id": supply_id, "action": "ship",
                                                      "barcode": "K0000001", "branch": "komae-central"})
    assert "処理しました" in page.messages()[0], page.messages()
    # another system's copy is not Komae's to ship
    page = b.form("/staff/ill", "/staff/ill/supply", {"supply_id": supply_id, "action": "ship",
                                                      "barcode": "I0000001", "branch": "komae-central"})
    assert page.status == 403
    until(lambda: "到着したら受入" in a.get("/staff/ill").text, "LOANED on A's page")
    # A receives the copy at its counter (a check-in scan) and lends it to the patron there
    api = Api(nodes["a"]).login_staff("hiroshima.central", nodes["staff"]["hiroshima.central"])
    barcode = next(r["barcode"] for r in api.call("GET", "/staff/ill/requests")["requests"] if r["title_id"] == TITLE)
    page = a.form("/staff/counter", "/staff/counter", {"action": "checkin", "barcode": barcode, "branch": "central"})
    assert "取置棚" in page.text, page.text[-2000:]
    page = a.form("/staff/counter", "/staff/counter", {"action": "checkout", "barcode": barcode,
                                                       "card_number": PATRON, "branch": "central"})
    assert "貸出しました" in page.text
    # the patron renews the partner's copy on 貸出一覧: its lender is asked
    patron = Browserless(f"http://127.0.0.1:{nodes['a']}")
    patron.login(PATRON, nodes["patron_pw"])
    loans = patron.get("/my/loans")
    found = re.search(r'name="one" value="(\d+)"', loans.text)
    assert found, re.sub(r"\s+", " ", loans.text[loans.text.find("<tbody"):][:1500])
    loan_id = found.group(1)
    page = patron.post("/my/loans/renew", {"one": loan_id}, csrf=loans.csrf())
    assert "貸出館に延長を依頼しました" in page.messages()[0], page.messages()
