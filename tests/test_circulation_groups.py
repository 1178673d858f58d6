"""Group cards (団体貸出, Hiroshima seed 002) on SQLite and PostgreSQL: a year's validity
and its extension, school grade cards (one per grade), reading-group sets (読書会用図書)
lent as a whole. Plus the pure date rules of card validity.

Each database test checks the rows and the audit trail (events) it leaves."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, datetime

import pytest
from sqlalchemy import update

from circ_helpers import add_item, add_patron, one_row, rows
from circulation import groups, holds, loans
from circulation import routing as rt
from circulation import schema as s
from circulation.store import NotFound
from lifecycle import policies
from lifecycle.profiles import load_profile

STAFF = dict(role="staff", actor="central-1")


def at(circ, when: datetime) -> None:
    circ.clock.fixed = when


async def register_group(circ, card="G001", **kw):
    args = dict(card=card, library="hiroshima", category="group", name="口田子ども文庫",
                home_municipality="広島市", representative="山田花子", phone="082-111-1111",
                branch="central", **STAFF)
    args.update(kw)
    return await groups.register(circ, **args)


async def register_school(circ, card, school="広島市立落合小学校", grade="5年", **kw):
    args = dict(card=card, library="hiroshima", category="school", name=f"{school} {grade}",
                home_municipality="広島市", school=school, grade=grade, representative="学年主任 佐藤",
                phone="082-222-2222", branch="asakita", **STAFF)
    args.update(kw)
    return await groups.register(circ, **args)


async def patron_events(circ, patron_id):
    return [(e.event, e.from_state, e.to_state, e.reason) for e in
            await rows(circ, s.events, s.events.c.patron_id == patron_id, order_by=s.events.c.id)]


async def lend(circ, barcode, card, branch="central"):
    r = await loans.check_out(circ, barcode=barcode, card=card, branch=branch, **STAFF)
    assert r.decision.allowed, (r.decision.code, r.decision.details)
    return r


# --------------------------------------------------------------------------- validity

async def test_hiroshima_group_card_is_valid_for_one_year_from_registration(circ):
    res = await register_group(circ)
    # 利用券の有効期間はお申込み時から1年間です
    assert res.decision.allowed and res.card_expires == date(2027, 11, 19)
    row = await one_row(circ, s.patrons, s.patrons.c.card_number == "G001")
    assert (row.category, row.card_expires, row.representative) == ("group", date(2027, 11, 19), "山田花子")
    assert await patron_events(circ, res.patron_id) == [
        ("CARD_REGISTERED", None, "2027-11-19", "group card, valid through 2027-11-19")]
    for i in range(3):
        await add_item(circ, f"GB{i}", f"gbib-{i}", "hiroshima", "central")
    first = await lend(circ, "GB0", "G001")
    assert first.due == date(2026, 12, 20)                       # 1ヶ月 (30 days)
    # the last valid day still works ...
    at(circ, datetime(2027, 11, 19, 10, 0))
    assert (await lend(circ, "GB1", "G001")).due == date(2027, 12, 19)
    # ... the day after: no loans, renewals or new holds; returns are taken
    at(circ, datetime(2027, 11, 20, 10, 0))
    r = await loans.check_out(circ, barcode="GB2", card="G001", branch="central", **STAFF)
    assert not r.decision.allowed and r.decision.code == "card_expired"
    assert r.decision.details["expired"] == date(2027, 11, 19)
    rn = await loans.renew(circ, loan_id=first.loan_id, channel="counter", **STAFF)
    assert not rn.decision.allowed and rn.decision.code == "card_expired"
    p = await holds.place(circ, card="G001", title_id="gbib-2", pickup_branch="central",
                          channel="counter", role="staff", actor="central-1", contact_method="phone")
    assert not p.decision.allowed and p.decision.code == "card_expired"
    back = await loans.check_in(circ, barcode="GB0", branch="naka", **STAFF)
    assert back.decision.allowed
    assert len(await rows(circ, s.loans)) == 2 and await rows(circ, s.requests) == []
    assert [e.event for e in await rows(circ, s.events, s.events.c.loan_id == first.loan_id,
                                        order_by=s.events.c.id)] == ["CHECK_OUT", "CHECK_IN"]


async def test_hiroshima_group_card_is_extended_a_year_after_staff_reconfirm_it(circ):
    res = await register_group(circ)
    # not two months ahead (extend_window_days = 30, assumed)
    at(circ, datetime(2027, 9, 1, 10, 0))
    early = await groups.extend_card(circ, card="G001", confirmed="代表者変更なし", **STAFF)
    assert not early.decision.allowed and early.decision.code == "card_extension_too_early"
    assert early.decision.details["opens"] == date(2027, 10, 20)
    # これにより、利用券はさらに1年間有効となります: on from the old expiry
    at(circ, datetime(2027, 11, 1, 10, 0))
    ext = await groups.extend_card(circ, card="G001", confirmed="代表者変更あり・活動実態確認",
                                   representative="鈴木一郎", branch="central", **STAFF)
    assert ext.decision.allowed and ext.card_expires == date(2028, 11, 19)
    row = await one_row(circ, s.patrons, s.patrons.c.id == res.patron_id)
    assert (row.card_expires, row.representative) == (date(2028, 11, 19), "鈴木一郎")
    # a card left to lapse runs from the day it is confirmed again
    at(circ, datetime(2029, 2, 10, 10, 0))
    lapsed = await groups.extend_card(circ, card="G001", confirmed="会員名簿", **STAFF)
    assert lapsed.card_expires == date(2030, 2, 9)
    assert await patron_events(circ, res.patron_id) == [
        ("CARD_REGISTERED", None, "2027-11-19", "group card, valid through 2027-11-19"),
        ("CARD_EXTENDED", "2027-11-19", "2028-11-19",
         "valid through 2028-11-19; confirmed: 代表者変更あり・活動実態確認; representative 山田花子 -> 鈴木一郎"),
        ("CARD_EXTENDED", "2028-11-19", "2030-02-09", "valid through 2030-02-09; confirmed: 会員名簿"),
    ]
    actors = {(e.actor_role, e.actor) for e in await rows(circ, s.events, s.events.c.patron_id == res.patron_id)}
    assert actors == {("staff", "central-1")}
    # an individual card has no validity period to extend
    await add_patron(circ, "H001", "hiroshima")
    d = await groups.extend_card(circ, card="H001", **STAFF)
    assert not d.decision.allowed and d.decision.code == "card_not_extendable"
    with pytest.raises(NotFound):
        await groups.extend_card(circ, card="nobody", **STAFF)


async def test_hiroshima_group_card_is_only_for_groups_based_in_the_city(circ):
    res = await register_group(circ, home_municipality="廿日市市")
    assert not res.decision.allowed and res.decision.code == "group_not_in_area"
    assert await rows(circ, s.patrons) == [] and await rows(circ, s.events) == []
    await add_patron(circ, "G001", "hiroshima")
    taken = await register_group(circ)
    assert not taken.decision.allowed and taken.decision.code == "card_number_taken"
    assert len(await rows(circ, s.patrons)) == 1 and await rows(circ, s.events) == []
    with pytest.raises(ValueError):
        await register_group(circ, card="G002", category="individual")


# --------------------------------------------------------------------------- school grade cards

async def test_hiroshima_school_has_one_card_per_grade(circ):
    first = await register_school(circ, "S501")
    assert first.decision.allowed and first.card_expires == date(2027, 11, 19)
    # 利用券は学年で1枚: the same grade again, typed with a full-width digit
    again = await register_school(circ, "S502", grade="５年 ")
    assert not again.decision.allowed and again.decision.code == "school_grade_card_exists"
    assert again.decision.details["card"] == "S501"
    other = await register_school(circ, "S601", grade="6年")
    assert other.decision.allowed
    assert [(p.card_number, p.school, p.grade) for p in await rows(circ, s.patrons, order_by=s.patrons.c.id)] == [
        ("S501", "広島市立落合小学校", "5年"), ("S601", "広島市立落合小学校", "6年")]
    # once the card has expired, the grade may register a new one; the old card cannot
    # then be extended next to it
    at(circ, datetime(2027, 12, 1, 9, 30))
    renewed = await register_school(circ, "S503")
    assert renewed.decision.allowed and renewed.card_expires == date(2028, 11, 30)
    d = await groups.extend_card(circ, card="S501", **STAFF)
    assert not d.decision.allowed and d.decision.code == "school_grade_card_exists"
    assert (await one_row(circ, s.patrons, s.patrons.c.card_number == "S501")).card_expires == date(2027, 11, 19)
    assert [e.event for e in await rows(circ, s.events, order_by=s.events.c.id)] == ["CARD_REGISTERED"] * 3
    with pytest.raises(ValueError):
        await register_school(circ, "S504", grade=None)


async def test_hiroshima_school_grade_card_borrows_fifty_and_returns_at_any_library(circ):
    await register_school(circ, "S501")
    for i in range(51):
        await add_item(circ, f"SB{i:02}", f"sbib-{i}", "hiroshima", "asakita")
    for i in range(50):
        await lend(circ, f"SB{i:02}", "S501", branch="asakita")
    r = await loans.check_out(circ, barcode="SB50", card="S501", branch="asakita", **STAFF)
    assert not r.decision.allowed and r.decision.code == "loan_limit" and r.decision.details["limit"] == 50
    # 借りられた本はどこの市立図書館でも返却ができます
    back = await loans.check_in(circ, barcode="SB00", branch="minami", **STAFF)
    assert back.decision.allowed and back.routing.kind == rt.TRANSIT_HOME
    loan = await one_row(circ, s.loans, s.loans.c.id == back.loan_id)
    assert (loan.return_branch, loan.due) == ("minami", date(2026, 12, 20))
    assert len(await rows(circ, s.events, s.events.c.event == "CHECK_OUT")) == 50


async def test_hiroshima_two_registrations_of_one_grade_at_once_give_one_card(circ):
    results = await asyncio.gather(*(register_school(circ, f"S50{i}") for i in range(4)))
    assert sorted(r.decision.code for r in results) == ["ok"] + ["school_grade_card_exists"] * 3
    assert len(await rows(circ, s.patrons)) == 1
    assert len(await rows(circ, s.events, s.events.c.event == "CARD_REGISTERED")) == 1


# --------------------------------------------------------------------------- 読書会用図書

async def reading_set(circ, code="RG-001", title="rg-bib-1", copies=15, branch="central"):
    for i in range(copies):
        await add_item(circ, f"{code}-{i:02}", title, "hiroshima", branch, set_code=code)


async def test_hiroshima_reading_group_set_is_lent_whole_to_a_group_card_and_returned_copy_by_copy(circ):
    await register_group(circ)
    await reading_set(circ)
    res = await groups.check_out_set(circ, set_code="RG-001", card="G001", branch="central", **STAFF)
    assert res.decision.allowed and len(res.loan_ids) == 15 and res.due == date(2026, 12, 20)
    opened = await rows(circ, s.loans, s.loans.c.returned_at.is_(None))
    assert len(opened) == 15 and {x.due for x in opened} == {date(2026, 12, 20)}
    assert {i.status for i in await rows(circ, s.items)} == {"on_loan"}
    outs = await rows(circ, s.events, s.events.c.event == "CHECK_OUT")
    assert len(outs) == 15 and {e.reason for e in outs} == {"due 2026-12-20, reading set RG-001"}
    summary = await one_row(circ, s.events, s.events.c.event == "SET_CHECK_OUT")
    assert (summary.patron_id, summary.branch, summary.reason) == (
        1, "central", "reading set RG-001: 15 copies, due 2026-12-20")
    # returned copy by copy
    at(circ, datetime(2026, 12, 10, 10, 0))
    back = await loans.check_in(circ, barcode="RG-001-03", branch="central", **STAFF)
    assert back.decision.allowed
    assert len(await rows(circ, s.loans, s.loans.c.returned_at.is_(None))) == 14
    assert (await one_row(circ, s.items, s.items.c.barcode == "RG-001-03")).status == "available"
    # the set is not complete on the shelf, so it cannot go out again yet
    await register_group(circ, card="G002", name="読書会ひまわり")
    again = await groups.check_out_set(circ, set_code="RG-001", card="G002", branch="central", **STAFF)
    assert not again.decision.allowed and again.decision.code == "reading_set_incomplete"
    assert len(again.decision.details["missing"]) == 14
    assert len(await rows(circ, s.events, s.events.c.event == "SET_CHECK_OUT")) == 1


async def test_hiroshima_reading_group_set_is_not_for_individual_cards_nor_lent_copy_by_copy(circ):
    await add_patron(circ, "H001", "hiroshima")
    await register_group(circ)
    await reading_set(circ)
    r = await groups.check_out_set(circ, set_code="RG-001", card="H001", branch="central", **STAFF)
    assert not r.decision.allowed and r.decision.code == "reading_set_category"
    one = await loans.check_out(circ, barcode="RG-001-00", card="G001", branch="central", **STAFF)
    assert not one.decision.allowed and one.decision.code == "reading_set_whole_only"
    one = await loans.check_out(circ, barcode="RG-001-00", card="H001", branch="central", **STAFF)
    assert not one.decision.allowed and one.decision.code == "reading_set_whole_only"
    # 直接中央図書館に来館していただく: not lent at a district library
    r = await groups.check_out_set(circ, set_code="RG-001", card="G001", branch="naka", **STAFF)
    assert not r.decision.allowed and r.decision.code == "reading_set_lend_at"
    assert await rows(circ, s.loans) == []
    assert [e.event for e in await rows(circ, s.events)] == ["CARD_REGISTERED"]
    with pytest.raises(NotFound):
        await groups.check_out_set(circ, set_code="RG-999", card="G001", branch="central", **STAFF)


async def test_hiroshima_reading_group_set_goes_out_whole_or_not_at_all(circ):
    await register_group(circ)
    await reading_set(circ)
    await reading_set(circ, code="RG-002", title="rg-bib-2", copies=14)     # one copy was withdrawn
    async with circ.db.transaction() as conn:
        await conn.execute(update(s.items).where(s.items.c.barcode == "RG-001-07").values(status="lost"))
    r = await groups.check_out_set(circ, set_code="RG-001", card="G001", branch="central", **STAFF)
    assert not r.decision.allowed and r.decision.code == "reading_set_incomplete"
    assert r.decision.details["missing"] == ["RG-001-07"]
    r = await groups.check_out_set(circ, set_code="RG-002", card="G001", branch="central", **STAFF)
    assert not r.decision.allowed and r.decision.code == "reading_set_incomplete"
    assert (r.decision.details["copies"], r.decision.details["expected"]) == (14, 15)
    assert await rows(circ, s.loans) == []
    assert {i.status for i in await rows(circ, s.items, s.items.c.barcode != "RG-001-07")} == {"available"}
    assert [e.event for e in await rows(circ, s.events)] == ["CARD_REGISTERED"]


async def test_hiroshima_reading_group_set_counts_against_the_fifty_item_group_limit(circ):
    await register_group(circ)
    await reading_set(circ)
    for i in range(36):
        await add_item(circ, f"GB{i:02}", f"gbib-{i}", "hiroshima", "central")
        await lend(circ, f"GB{i:02}", "G001")
    # 36 + 15 > 50: nothing of the set goes out
    r = await groups.check_out_set(circ, set_code="RG-001", card="G001", branch="central", **STAFF)
    assert not r.decision.allowed and r.decision.code == "loan_limit"
    assert (r.decision.details["limit"], r.decision.details["room"]) == (50, 14)
    assert len(await rows(circ, s.loans)) == 36
    await loans.check_in(circ, barcode="GB00", branch="central", **STAFF)
    ok = await groups.check_out_set(circ, set_code="RG-001", card="G001", branch="central", **STAFF)
    assert ok.decision.allowed
    assert len(await rows(circ, s.loans, s.loans.c.returned_at.is_(None))) == 50
    assert len(await rows(circ, s.events, s.events.c.event == "SET_CHECK_OUT")) == 1


# --------------------------------------------------------------------------- pure date rules

def test_card_validity_dates_and_extension_bases():
    prof = load_profile("hiroshima")
    assert policies.card_expiry(prof, "group", date(2026, 11, 20)) == date(2027, 11, 19)
    assert policies.card_expiry(prof, "group", date(2028, 2, 29)) == date(2029, 2, 28)
    assert policies.card_expiry(prof, "individual", date(2026, 11, 20)) is None
    d = policies.card_extension(prof, "group", date(2027, 11, 19), date(2027, 11, 19))
    assert d.allowed and d.details["expires"] == date(2028, 11, 19)
    # extend_from = "confirmation": from the confirmation day even before the expiry
    conf = dataclasses.replace(prof, cards={"group": dataclasses.replace(prof.cards["group"],
                                                                        extend_from="confirmation")})
    d = policies.card_extension(conf, "group", date(2027, 11, 19), date(2027, 11, 1))
    assert d.details["expires"] == date(2028, 10, 31)
    assert policies.card_extension(prof, "group", None, date(2027, 1, 1)).code == "card_not_extendable"


async def test_hiroshima_group_cards_and_reading_sets_load_from_csv(circ):
    from circulation.loaders import load_csv
    patrons = ("card_number,library,home_municipality,category,name,card_expires,school,grade,representative\n"
               "S701,hiroshima,広島市,school,落合小学校 5年,2027-03-31,広島市立落合小学校,5年,学年主任 佐藤\n").encode()
    items = "barcode,title_id,library,owning_branch,set_code\n" + "".join(
        f"RG-9-{i:02},rg-bib-9,hiroshima,central,RG-9\n" for i in range(15))
    assert (await load_csv(circ, "patrons", patrons)).added == 1
    assert (await load_csv(circ, "items", items.encode())).added == 15
    p = await one_row(circ, s.patrons, s.patrons.c.card_number == "S701")
    assert (p.card_expires, p.school, p.grade, p.representative) == (
        date(2027, 3, 31), "広島市立落合小学校", "5年", "学年主任 佐藤")
    # the loaded card counts for its grade
    dup = await register_school(circ, "S702")
    assert dup.decision.code == "school_grade_card_exists" and dup.decision.details["card"] == "S701"
    res = await groups.check_out_set(circ, set_code="RG-9", card="S701", branch="central", **STAFF)
    assert res.decision.allowed and len(res.loan_ids) == 15
    assert len(await rows(circ, s.events, s.events.c.event == "CHECK_OUT")) == 15
