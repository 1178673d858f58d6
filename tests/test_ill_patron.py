"""A patron's own ILL request (相互貸借 / 連携貸出 asked on the web, issue 13): requester.place
with role patron and channel web.  The ILL checks come first (``ill_not_offered``,
``owned_locally``, ``no_lender``), then the patron's profile's rules for requests
(``policies.can_place``): the shipped Hiroshima profile takes requests at the counter, on
the form and by FAX only, so the web is refused ``channel_not_allowed`` until its
``placing.request_channels`` names "web"; runs on SQLite and PostgreSQL (db_url)."""
from __future__ import annotations

import dataclasses

import pytest

from circ_helpers import add_item, add_patron
from circulation import lists
from circulation import schema as s
from circulation.ill import requester
from circulation.ill.common import Ill
from circulation.ill.titles import Title
from ill_helpers import StaticTitles, config_for, one_row, rows

TITLE = "isbn:9784000000031"
OTHER = "isbn:9784000000048"
CARD = "3100000031"
PARTNERS = {"JP-5000000": {"url": "http://127.0.0.1:9/iso18626", "token": "t", "accept_token": "a",
                           "library": "komae"}}


def web_requests(circ, system: str = "hiroshima") -> None:
    """The profile as a library that takes requests (リクエスト) on the web would write it."""
    p = circ.profiles[system]
    circ.profiles[system] = dataclasses.replace(p, placing=dataclasses.replace(
        p.placing, request_channels=p.placing.request_channels | {"web"}))


def make_ill(circ, **kw) -> Ill:
    titles = StaticTitles(Title(TITLE, title="和書", isbn="9784000000031", libraries=frozenset({"komae"})),
                          Title(OTHER, title="誰も持たない本", isbn="9784000000048", libraries=frozenset()))
    return Ill(circ, config_for("ISIL:JP-1000000", PARTNERS, 9, systems=["hiroshima"], **kw), titles)


async def _place(ill, title_id=TITLE, **kw):
    kw.setdefault("pickup_branch", "central")
    return await requester.place(ill, card=CARD, title_id=title_id, actor=CARD, channel="web", role="patron", **kw)


async def test_patron_places_on_the_web_where_the_profile_takes_web_requests(circ):
    web_requests(circ)
    await add_patron(circ, CARD, "hiroshima", default_contact_method="email", email="a@example.jp")
    ill = make_ill(circ)
    placed = await _place(ill, memo="卒論用")
    assert placed.ok, placed
    assert placed.detail == {"supplier": "JP-5000000"}
    req = await one_row(circ, s.requests, s.requests.c.id == placed.request_id)
    assert (req.kind, req.channel, req.memo, req.pickup_branch) == (requester.KIND, "web", "卒論用", "central")
    ev = [r for r in await rows(circ, s.events) if r.request_id == placed.request_id and r.event == "PLACE"]
    assert [(e.actor_role, e.channel) for e in ev] == [("patron", "web")]
    mine = await lists.patron_requests(circ, CARD)
    assert [(r["request_id"], r["kind"], r["title_id"]) for r in mine] == [(placed.request_id, requester.KIND, TITLE)]
    again = await _place(ill)
    assert (again.ok, again.code) == (False, "duplicate_request")


async def test_the_shipped_hiroshima_profile_refuses_web_requests_and_writes_nothing(circ):
    await add_patron(circ, CARD, "hiroshima", default_contact_method="email", email="a@example.jp")
    placed = await _place(make_ill(circ))
    assert (placed.ok, placed.code) == (False, "channel_not_allowed")
    assert placed.detail == {"channels": ["counter", "fax", "form"]}
    assert await rows(circ, s.requests) == []
    # the same request placed by the staff at the counter goes through, as before
    staff = await requester.place(make_ill(circ), card=CARD, title_id=TITLE, pickup_branch="central", actor="hq")
    assert staff.ok, staff


@pytest.mark.parametrize("setup, title_id, code", [
    ("owned", TITLE, "owned_locally"),
    ("none", OTHER, "no_lender"),
    ("komae", TITLE, "ill_not_offered"),
])
async def test_the_ill_checks_come_before_the_profile(circ, setup, title_id, code):
    web_requests(circ)
    if setup == "komae":
        await add_patron(circ, CARD, "komae")
    else:
        await add_patron(circ, CARD, "hiroshima", default_contact_method="email", email="a@example.jp")
    if setup == "owned":
        await add_item(circ, "H0000031", TITLE, "hiroshima", "central")
    placed = await _place(make_ill(circ), title_id=title_id,
                          pickup_branch="komae-central" if setup == "komae" else "central")
    assert (placed.ok, placed.code) == (False, code), placed
    assert await rows(circ, s.requests) == []


async def test_the_profile_rules_for_requests_refuse_a_patron(circ):
    web_requests(circ)
    # a card of another municipality: Hiroshima takes requests from its area only
    await add_patron(circ, CARD, "hiroshima", home="東京都", default_contact_method="email", email="a@example.jp")
    placed = await _place(make_ill(circ))
    assert (placed.ok, placed.code) == (False, "not_eligible_for_reservation"), placed
    assert await rows(circ, s.requests) == []
