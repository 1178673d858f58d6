"""Proxy loans (代理での貸出, Hiroshima seed 002 lines 25-32) on the database
(circulation/proxy.py, loans.check_out(proxy=...), the [proxy] profile section), on
SQLite and PostgreSQL.

貸出利用券は、個人カードです。…借りている資料の確認など、個人の情報は本人以外にはお答え
できません。但し、乳幼児や入院中の方などご本人による利用が困難な場合は、本人了承のうえ
カードを預かり代理での貸出は可能です。"""
from __future__ import annotations

from datetime import timedelta

import pytest

from circ_helpers import NOW, add_item, add_patron, one_row, rows
from circulation import loans, proxy
from circulation import schema as s
from circulation.store import NotFound
from lifecycle import policies
from lifecycle.profiles import load_profile

STAFF = dict(role="staff", actor="counter-1")


def at(circ, when) -> None:
    circ.clock.fixed = when


async def holder(circ, card, library="hiroshima", **kw):
    kw.setdefault("email", f"{card.lower()}@example.jp")
    return await add_patron(circ, card, library, **kw)


async def consent(circ, card, name, **kw):
    r = await proxy.record_consent(circ, card=card, proxy_name=name, **{**STAFF, **kw})
    assert r.decision.allowed, r.decision.code
    return r.consent_id


async def account_events(circ, pid):
    return [(e.event, e.actor_role, e.actor, e.branch, e.reason)
            for e in await rows(circ, s.events, s.events.c.patron_id == pid, order_by=s.events.c.id)]


async def lend_events(circ):
    return [(e.event, e.channel, e.reason) for e in await rows(circ, s.events, s.events.c.loan_id.is_not(None),
                                                              order_by=s.events.c.id)]


# --------------------------------------------------------------------------- the profile

def test_proxy_loans_are_a_profile_setting():
    assert load_profile("hiroshima").proxy.loans == "with_consent"
    # the Iizuka and Komae seeds are silent: no proxy loans (docs/lifecycle.md)
    assert load_profile("iizuka").proxy.loans == "not_offered"
    assert load_profile("komae").proxy.loans == "not_offered"


def test_proxy_names_are_compared_after_folding_width_and_spaces():
    hiroshima = load_profile("hiroshima")
    assert policies.proxy_name_key("  山田　花子 ") == "山田 花子"
    assert policies.proxy_name_key("ＹＡＭＡＤＡ  Hanako") == "YAMADA Hanako"
    d = policies.can_lend_to_proxy(hiroshima, "山田　花子", ["山田 花子"])
    assert d.allowed and d.details["proxy"] == "山田 花子"
    assert policies.can_lend_to_proxy(hiroshima, "山田 太郎", ["山田 花子"]).code == "proxy_not_authorised"
    assert policies.can_lend_to_proxy(hiroshima, "　", ["山田 花子"]).code == "proxy_name_missing"
    assert policies.can_lend_to_proxy(load_profile("iizuka"), "山田 花子", ["山田 花子"]).code == \
        "proxy_loans_not_offered"


# --------------------------------------------------------------------------- Hiroshima

async def test_hiroshima_proxy_may_borrow_with_the_holders_consent(circ):
    # 入院中の方: the holder agreed that 山田花子 borrows with the card
    pid = await holder(circ, "H001")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    cid = await consent(circ, "H001", "山田 花子", reason="入院中", branch="central")
    row = await one_row(circ, s.patron_proxies, s.patron_proxies.c.id == cid)
    assert (row.patron_id, row.proxy_name, row.reason, row.consented_at, row.recorded_by, row.revoked_at) == (
        pid, "山田 花子", "入院中", NOW, "counter-1", None)
    assert await account_events(circ, pid) == [
        ("PROXY_CONSENT", "staff", "counter-1", "central", "proxy 山田 花子 (入院中)")]
    # the name as staff type it at the counter, with a full-width space
    r = await loans.check_out(circ, barcode="HB1", card="H001", branch="central", proxy="山田　花子", **STAFF)
    assert r.decision.allowed and r.due is not None
    loan = await one_row(circ, s.loans, s.loans.c.id == r.loan_id)
    assert (loan.patron_id, loan.proxy, loan.channel) == (pid, "山田 花子", "counter")
    assert await lend_events(circ) == [("CHECK_OUT", "counter", "due 2026-12-04, proxy 山田 花子")]
    assert await proxy.consents(circ, "H001") == [
        {"consent_id": cid, "proxy_name": "山田 花子", "reason": "入院中", "consented_at": NOW,
         "recorded_by": "counter-1"}]


async def test_hiroshima_proxy_loan_refused_without_the_holders_consent(circ):
    await holder(circ, "H002")
    await holder(circ, "H003")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    r = await loans.check_out(circ, barcode="HB1", card="H002", branch="central", proxy="山田 花子", **STAFF)
    assert r.loan_id is None and r.decision.code == "proxy_not_authorised"
    assert r.decision.message_ja == "ご本人が了承した代理の方として登録されていないため、貸出できません。"
    # a consent for somebody else, or on another card, does not help
    await consent(circ, "H002", "山田 太郎")
    await consent(circ, "H003", "山田 花子")
    r = await loans.check_out(circ, barcode="HB1", card="H002", branch="central", proxy="山田 花子", **STAFF)
    assert r.decision.code == "proxy_not_authorised"
    assert await rows(circ, s.loans) == []
    assert (await one_row(circ, s.items, s.items.c.barcode == "HB1")).status == "available"
    assert await lend_events(circ) == []
    # the holder borrowing in person needs no consent, and the loan names no proxy
    r = await loans.check_out(circ, barcode="HB1", card="H002", branch="central", **STAFF)
    assert r.decision.allowed and (await one_row(circ, s.loans, s.loans.c.id == r.loan_id)).proxy is None
    assert await lend_events(circ) == [("CHECK_OUT", "counter", "due 2026-12-04")]


async def test_hiroshima_proxy_consent_revoked_stops_proxy_loans(circ):
    pid = await holder(circ, "H004")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    await add_item(circ, "HB2", "bib-2", "hiroshima", "central")
    cid = await consent(circ, "H004", "佐藤 一郎", reason="乳幼児の保護者")
    first = await loans.check_out(circ, barcode="HB1", card="H004", branch="central", proxy="佐藤 一郎", **STAFF)
    assert first.decision.allowed
    at(circ, NOW + timedelta(days=1))
    d = await proxy.revoke_consent(circ, card="H004", proxy_name="佐藤　一郎", branch="naka", **STAFF)
    assert d.allowed
    row = await one_row(circ, s.patron_proxies, s.patron_proxies.c.id == cid)
    assert (row.revoked_at, row.revoked_by) == (NOW + timedelta(days=1), "counter-1")
    assert [e[0] for e in await account_events(circ, pid)] == ["PROXY_CONSENT", "PROXY_CONSENT_REVOKED"]
    assert (await account_events(circ, pid))[-1] == (
        "PROXY_CONSENT_REVOKED", "staff", "counter-1", "naka", "proxy 佐藤 一郎")
    r = await loans.check_out(circ, barcode="HB2", card="H004", branch="central", proxy="佐藤 一郎", **STAFF)
    assert r.decision.code == "proxy_not_authorised"
    # the loan made while the consent was live stays as it was
    assert (await one_row(circ, s.loans, s.loans.c.id == first.loan_id)).proxy == "佐藤 一郎"
    assert len(await rows(circ, s.loans)) == 1
    assert await proxy.consents(circ, "H004") == []
    assert (await proxy.revoke_consent(circ, card="H004", proxy_name="佐藤 一郎", **STAFF)).code == \
        "proxy_consent_not_found"
    # consenting again works
    await consent(circ, "H004", "佐藤 一郎")
    r = await loans.check_out(circ, barcode="HB2", card="H004", branch="central", proxy="佐藤 一郎", **STAFF)
    assert r.decision.allowed


async def test_proxy_consents_are_recorded_by_staff_once_per_proxy(circ):
    pid = await holder(circ, "H005")
    r = await proxy.record_consent(circ, card="H005", proxy_name="山田 花子", role="patron", actor="H005")
    assert (r.consent_id, r.decision.code) == (None, "proxy_staff_only")
    r = await proxy.record_consent(circ, card="H005", proxy_name=" 　", **STAFF)
    assert r.decision.code == "proxy_name_missing"
    await consent(circ, "H005", "山田 花子")
    r = await proxy.record_consent(circ, card="H005", proxy_name="山田　花子", **STAFF)
    assert r.decision.code == "proxy_already_consented"
    assert len(await rows(circ, s.patron_proxies)) == 1
    assert [e[0] for e in await account_events(circ, pid)] == ["PROXY_CONSENT"]
    assert (await proxy.revoke_consent(circ, card="H005", proxy_name="山田 花子", role="patron",
                                       actor="H005")).code == "proxy_staff_only"
    with pytest.raises(NotFound):
        await proxy.record_consent(circ, card="NOPE", proxy_name="山田 花子", **STAFF)


async def test_a_proxy_loan_shows_the_proxy_nothing_of_the_holders_loans(circ):
    # 借りている資料の確認など、個人の情報は本人以外にはお答えできません: the proxy is recorded
    # on the holder's loan only; a proxy who has a card of their own sees their own loans
    await holder(circ, "H006", name="山田 一郎")
    await holder(circ, "H007", name="山田 花子")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    await consent(circ, "H006", "山田 花子")
    r = await loans.check_out(circ, barcode="HB1", card="H006", branch="central", proxy="山田 花子", **STAFF)
    assert r.decision.allowed
    assert await loans.patron_loans(circ, "H007") == []
    (page,) = await loans.patron_loans(circ, "H006")
    assert page["loan_id"] == r.loan_id and "proxy" not in page


# --------------------------------------------------------------------------- Iizuka and Komae

@pytest.mark.parametrize("library,branch", [("iizuka", "iizuka"), ("komae", "komae-central")])
async def test_iizuka_and_komae_offer_no_proxy_loans(circ, library, branch):
    pid = await holder(circ, "C001", library)
    await add_item(circ, "CB1", "bib-1", library, branch)
    r = await proxy.record_consent(circ, card="C001", proxy_name="山田 花子", **STAFF)
    assert (r.consent_id, r.decision.code) == (None, "proxy_loans_not_offered")
    r = await loans.check_out(circ, barcode="CB1", card="C001", branch=branch, proxy="山田 花子", **STAFF)
    assert r.loan_id is None and r.decision.code == "proxy_loans_not_offered"
    assert await rows(circ, s.patron_proxies) == [] and await rows(circ, s.loans) == []
    assert await account_events(circ, pid) == [] and await lend_events(circ) == []
    # the holder borrows as before
    assert (await loans.check_out(circ, barcode="CB1", card="C001", branch=branch, **STAFF)).decision.allowed
