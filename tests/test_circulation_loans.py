"""Loans on the database (circulation/loans.py), on SQLite and PostgreSQL: check-out,
renewal, check-in with return points and routing, overdue marking, the loans page.

Each test is one rule of a seed (000 Iizuka, 002 Hiroshima; POLICIES.md) or one
behaviour of the engine, and checks the rows and the audit trail it leaves."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import update

from circ_helpers import NOW, add_calendar, add_item, add_patron, one_row, rows
from circulation import holds, jobs, loans
from circulation import schema as s
from circulation.jobs import run_job
from circulation.store import NotFound

STAFF = dict(role="staff", actor="counter-1")


def at(circ, when: datetime) -> None:
    circ.clock.fixed = when


async def lend(circ, barcode, card, branch, **kw):
    r = await loans.check_out(circ, barcode=barcode, card=card, branch=branch, **{**STAFF, **kw})
    assert r.decision.allowed, (r.decision.code, r.decision.details)
    return r


async def person(circ, card, library, **kw):
    kw.setdefault("email", f"{card.lower()}@example.jp")
    return await add_patron(circ, card, library, **kw)


async def give_back(circ, barcode, branch, **kw):
    return await loans.check_in(circ, barcode=barcode, branch=branch, **{**STAFF, **kw})


async def place(circ, card, title_id, pickup, channel="web", contact="email"):
    res = await holds.place(circ, card=card, title_id=title_id, pickup_branch=pickup,
                            channel=channel, role="patron", actor=card,
                            contact_method=contact)
    assert res.decision.allowed, (res.decision.code, res.decision.details)
    return res.request_id


async def loan_row(circ, loan_id):
    return await one_row(circ, s.loans, s.loans.c.id == loan_id)


async def request_row(circ, request_id):
    return await one_row(circ, s.requests, s.requests.c.id == request_id)


async def item_row(circ, barcode):
    return await one_row(circ, s.items, s.items.c.barcode == barcode)


async def events(circ, *where):
    return [(e.event, e.from_state, e.to_state)
            for e in await rows(circ, s.events, *where, order_by=s.events.c.id)]


# --------------------------------------------------------------------------- check-out

async def test_hiroshima_lends_ten_items_for_two_weeks_and_refuses_the_eleventh(circ):
    await person(circ, "H001", "hiroshima")
    for i in range(11):
        await add_item(circ, f"HB{i:02}", f"bib-{i}", "hiroshima", "central" if i % 2 else "naka")
    for i in range(10):
        # 1枚の貸出利用券で全館で10冊: the limit counts every library of the city together
        r = await lend(circ, f"HB{i:02}", "H001", "naka" if i < 5 else "central")
        assert r.due == date(2026, 12, 4)        # Friday 20 Nov + 2 weeks
    r = await loans.check_out(circ, barcode="HB10", card="H001", branch="naka", **STAFF)
    assert not r.decision.allowed and r.decision.code == "loan_limit" and r.loan_id is None
    assert r.decision.message_ja == "貸出点数の上限に達しています。"
    assert len(await rows(circ, s.loans)) == 10
    assert (await item_row(circ, "HB10")).status == "available"
    assert [e[0] for e in await events(circ)] == ["CHECK_OUT"] * 10
    assert (await item_row(circ, "HB03")).status == "on_loan"


async def test_iizuka_due_date_on_a_closed_day_moves_to_the_lending_branchs_next_open_day(circ):
    await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    await add_item(circ, "IB2", "bib-2", "iizuka", "honami")
    await add_calendar(circ, "iizuka", date(2026, 12, 4))      # 休館日 at 飯塚図書館 only
    await add_calendar(circ, "iizuka", date(2026, 12, 5))
    assert (await lend(circ, "IB1", "I001", "iizuka")).due == date(2026, 12, 6)
    assert (await lend(circ, "IB2", "I001", "honami")).due == date(2026, 12, 4)


async def test_hiroshima_group_loan_due_on_a_closed_monday_moves_to_tuesday(circ):
    await person(circ, "G001", "hiroshima", category="group")
    await add_item(circ, "HG1", "bib-1", "hiroshima", "central")
    at(circ, datetime(2026, 11, 21, 10))          # Saturday; 団体貸出 1ヶ月 = 30 days → Monday 21 Dec
    r = await lend(circ, "HG1", "G001", "central")
    assert r.due == date(2026, 12, 22)
    assert (await loan_row(circ, r.loan_id)).due == date(2026, 12, 22)


async def test_a_copy_already_on_loan_is_refused_to_a_second_patron(circ):
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    first = await lend(circ, "IB1", "I001", "iizuka")
    r = await loans.check_out(circ, barcode="IB1", card="I002", branch="chikuho", **STAFF)
    assert (r.loan_id, r.decision.code, r.decision.message_en) == (
        None, "item_on_loan", "This item is already on loan.")
    (only,) = await rows(circ, s.loans)
    assert only.id == first.loan_id and only.patron_id != (await rows(
        circ, s.patrons, s.patrons.c.card_number == "I002"))[0].id


async def test_the_database_backstop_turns_a_second_open_loan_into_a_clean_refusal(circ, monkeypatch):
    # The locks normally stop a second loan before the insert; if a bug let it through,
    # ux_loans_open_item must reject it and check_out must answer, not crash.
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    await lend(circ, "IB1", "I001", "iizuka")
    async with circ.db.transaction() as conn:   # make the item look free
        await conn.execute(update(s.items).where(s.items.c.barcode == "IB1").values(status="available"))

    real_reads = loans.check_out_reads

    async def no_loan(conn, patron_row, item_id):
        snapshot, secured, _open_loan = await real_reads(conn, patron_row, item_id)
        return snapshot, secured, False
    monkeypatch.setattr(loans, "check_out_reads", no_loan)
    r = await loans.check_out(circ, barcode="IB1", card="I002", branch="iizuka", **STAFF)
    assert r.decision.code == "item_on_loan" and r.loan_id is None
    assert len(await rows(circ, s.loans)) == 1
    assert [e[0] for e in await events(circ)] == ["CHECK_OUT"]


async def test_reference_and_non_circulating_items_are_not_lent(circ):
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "REF1", "bib-1", "hiroshima", "central", material_type="reference")
    await add_item(circ, "NC1", "bib-2", "hiroshima", "central", circulating=False)
    for bc in ("REF1", "NC1"):
        r = await loans.check_out(circ, barcode=bc, card="H001", branch="central", **STAFF)
        assert r.decision.code == "item_not_circulating"
    assert await rows(circ, s.loans) == []


async def test_a_card_of_another_system_and_unknown_barcodes_or_cards(circ):
    await person(circ, "I001", "iizuka")
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    r = await loans.check_out(circ, barcode="HB1", card="I001", branch="central", **STAFF)
    assert r.decision.code == "card_not_valid_here"
    with pytest.raises(NotFound):
        await loans.check_out(circ, barcode="NOPE", card="H001", branch="central", **STAFF)
    with pytest.raises(NotFound):
        await loans.check_out(circ, barcode="HB1", card="H999", branch="central", **STAFF)
    assert await rows(circ, s.loans) == []


async def test_hiroshima_partner_university_item_is_lent_only_over_the_city_counter_it_waits_at(circ):
    # 連携貸出: 申込いただいた窓口にて貸出 — within the normal 10 items
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "U1", "bib-u", "hiroshima-u", "central", partner="hiroshima-u")
    for branch, channel in (("central", "kiosk"), ("naka", "counter")):
        r = await loans.check_out(circ, barcode="U1", card="H001", branch=branch, channel=channel, **STAFF)
        assert r.decision.code == "partner_lend_at_counter"
    r = await lend(circ, "U1", "H001", "central")
    loan = await loan_row(circ, r.loan_id)
    assert (loan.branch, loan.channel, r.due) == ("central", "counter", date(2026, 12, 4))


async def test_hiroshima_self_checkout_is_everywhere_but_yuki_kono_and_not_for_magazines(circ):
    # 「自動貸出機」を、湯来河野閲覧室を除く全館に設置…雑誌等一部の資料についてはご利用いただけない
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "B1", "bib-b", "hiroshima", "yuki-kono")
    await add_item(circ, "M1", "bib-m", "hiroshima", "naka", material_type="magazine")
    await add_item(circ, "B2", "bib-b2", "hiroshima", "naka")
    here = await loans.check_out(circ, barcode="B1", card="H001", branch="yuki-kono", channel="kiosk",
                                 role="patron", actor="H001")
    assert (here.decision.code, here.decision.details["branch"]) == ("kiosk_not_here", "yuki-kono")
    mag = await loans.check_out(circ, barcode="M1", card="H001", branch="naka", channel="kiosk",
                                role="patron", actor="H001")
    assert (mag.decision.code, mag.loan_id) == ("kiosk_material_excluded", None)
    assert await rows(circ, s.loans) == []
    kiosk = await lend(circ, "B2", "H001", "naka", channel="kiosk", role="patron", actor="H001")
    assert (await loan_row(circ, kiosk.loan_id)).channel == "kiosk"
    await lend(circ, "M1", "H001", "naka")                  # the counter lends the magazine
    await lend(circ, "B1", "H001", "yuki-kono")             # and Yuki-Kono lends at its counter
    assert [e[0] for e in await events(circ, s.events.c.event == "CHECK_OUT")] == ["CHECK_OUT"] * 3


async def test_iizuka_borrowing_history_is_kept_only_after_the_patron_opts_in(circ):
    pid = await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    await add_item(circ, "IB2", "bib-2", "iizuka", "iizuka")
    await lend(circ, "IB1", "I001", "iizuka")
    assert await rows(circ, s.bookshelf) == []          # 同意する前に借りた資料の情報は保存されません
    async with circ.db.transaction() as conn:
        await conn.execute(update(s.patrons).where(s.patrons.c.id == pid).values(history_opt_in=True))
    second = await lend(circ, "IB2", "I001", "iizuka")
    (h,) = await rows(circ, s.bookshelf)
    assert (h.patron_id, h.shelf, h.title_id, h.loan_id) == (pid, "history", "bib-2", second.loan_id)


# --------------------------------------------------------------------------- hold shelf

async def held_for_i001(circ) -> int:
    """I001, I002 and I003 at Iizuka; IB1 (bib-1) lent to I003 and held for I001: the
    request's id."""
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    await person(circ, "I003", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    await lend(circ, "IB1", "I003", "iizuka")
    return await place(circ, "I001", "bib-1", "iizuka")


async def test_the_hold_shelf_copy_is_lent_only_to_the_patron_it_waits_for(circ):
    rid = await held_for_i001(circ)
    back = await give_back(circ, "IB1", "iizuka")
    assert back.routing.kind == "hold_shelf" and back.routing.request_id == rid
    assert (await request_row(circ, rid)).state == "ON_HOLD_SHELF"

    other = await loans.check_out(circ, barcode="IB1", card="I002", branch="iizuka", **STAFF)
    assert other.decision.code == "held_for_another_patron" and other.loan_id is None

    mine = await lend(circ, "IB1", "I001", "iizuka")
    assert mine.request_id == rid
    req = await request_row(circ, rid)
    loan = await loan_row(circ, mine.loan_id)
    assert (req.state, loan.request_id, loan.state) == ("ON_LOAN", rid, "ON_LOAN")
    assert ("CHECK_OUT", "ON_HOLD_SHELF", "ON_LOAN") in await events(circ, s.events.c.request_id == rid)
    assert (await item_row(circ, "IB1")).status == "on_loan"


async def test_a_walk_in_borrows_a_returned_copy_before_staff_secure_it_for_the_queue(circ):
    # 来館者を優先します: the copy handed back at the counter goes to the patron standing there
    rid = await held_for_i001(circ)
    back = await give_back(circ, "IB1", "iizuka", walk_in=True)
    assert back.routing.kind == "walk_in"
    walk_in = await lend(circ, "IB1", "I002", "iizuka")
    assert walk_in.request_id is None
    assert (await request_row(circ, rid)).state == "QUEUED"


# --------------------------------------------------------------------------- renewals

async def test_iizuka_renews_once_within_a_week_of_the_due_date(circ):
    pid = await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    at(circ, datetime(2026, 11, 6, 11))
    lent = await lend(circ, "IB1", "I001", "iizuka")
    assert lent.due == date(2026, 11, 20)
    at(circ, NOW)                                 # the due date itself
    r = await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I001", channel="web",
                          card="I001")
    assert r.decision.allowed and r.due == date(2026, 12, 4) and r.renewals == 1
    loan = await loan_row(circ, lent.loan_id)
    assert (loan.due, loan.renewals, loan.renewed_via) == (date(2026, 12, 4), 1, "web")
    (n,) = await rows(circ, s.notices)
    assert (n.kind, n.patron_id, n.loan_id, n.dedupe_key) == (
        "renewal_done", pid, lent.loan_id, f"renewal_done:{lent.loan_id}:1")
    # 1回だけ
    at(circ, datetime(2026, 11, 30, 10))
    again = await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I001", channel="web")
    assert again.decision.code == "renewal_limit" and again.due is None
    assert (await loan_row(circ, lent.loan_id)).due == date(2026, 12, 4)
    assert [e[0] for e in await events(circ, s.events.c.loan_id == lent.loan_id)] == ["CHECK_OUT", "RENEW"]


async def test_iizuka_renewal_is_too_early_more_than_a_week_before_the_due_date(circ):
    await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    lent = await lend(circ, "IB1", "I001", "iizuka")      # due 4 Dec
    r = await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I001", channel="web")
    assert r.decision.code == "renewal_too_early" and r.decision.details["opens"] == date(2026, 11, 27)
    at(circ, datetime(2026, 11, 27, 9, 30))
    assert (await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I001",
                              channel="web")).due == date(2026, 12, 18)


async def test_iizuka_renewal_is_refused_more_than_a_week_after_the_due_date(circ):
    await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    at(circ, datetime(2026, 10, 30, 10))
    lent = await lend(circ, "IB1", "I001", "iizuka")      # due 13 Nov; today 20 Nov is 7 days late
    at(circ, datetime(2026, 11, 21, 10))
    r = await loans.renew(circ, loan_id=lent.loan_id, role="staff", actor="counter-1", channel="counter")
    assert r.decision.code == "renewal_too_late"
    assert (await loan_row(circ, lent.loan_id)).renewals == 0 and await rows(circ, s.notices) == []


async def test_iizuka_renewal_refused_when_someone_is_waiting(circ):
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    at(circ, datetime(2026, 11, 10, 10))
    lent = await lend(circ, "IB1", "I001", "iizuka")
    rid = await place(circ, "I002", "bib-1", "chikuho")
    at(circ, NOW)
    r = await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I001", channel="web")
    assert r.decision.code == "someone_waiting"
    assert r.decision.message_ja == "次に予約の方がいるため延長できません。"
    assert (await loan_row(circ, lent.loan_id)).due == date(2026, 11, 24)
    assert (await request_row(circ, rid)).state == "QUEUED"


async def test_iizuka_web_renewal_cannot_be_repeated_at_the_counter(circ):
    await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    at(circ, datetime(2026, 11, 10, 10))
    lent = await lend(circ, "IB1", "I001", "iizuka")      # due 24 Nov
    at(circ, NOW)
    assert (await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I001",
                              channel="web")).decision.allowed
    r = await loans.renew(circ, loan_id=lent.loan_id, role="staff", actor="counter-1", channel="counter")
    assert r.decision.code == "web_renewal_not_repeatable_at_counter"
    assert r.decision.message_ja == "Webで延長した資料は窓口で延長できません。"
    assert (await loan_row(circ, lent.loan_id)).renewals == 1


async def test_hiroshima_renewal_runs_two_weeks_from_today_when_today_is_before_the_due_date(circ):
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    at(circ, datetime(2026, 11, 13, 10))
    lent = await lend(circ, "HB1", "H001", "central")     # due 27 Nov
    at(circ, NOW)
    r = await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="H001", channel="web")
    assert r.due == date(2026, 12, 4)                      # 申出日 20 Nov + 2 weeks, not 27 Nov + 2 weeks


async def test_hiroshima_overdue_renewal_runs_two_weeks_from_the_due_date(circ):
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    at(circ, datetime(2026, 11, 1, 10))                    # Sunday
    lent = await lend(circ, "HB1", "H001", "central")     # due Sunday 15 Nov
    at(circ, NOW)
    assert await jobs.mark_overdue(circ) == 1
    assert (await loan_row(circ, lent.loan_id)).state == "OVERDUE"
    r = await loans.renew(circ, loan_id=lent.loan_id, role="staff", actor="counter-1", channel="counter")
    assert r.due == date(2026, 11, 29)                     # 返却期限日 15 Nov + 2 weeks
    loan = await loan_row(circ, lent.loan_id)
    assert (loan.state, loan.due) == ("ON_LOAN", date(2026, 11, 29))
    assert ("RENEW", "OVERDUE", "ON_LOAN") in await events(circ, s.events.c.loan_id == lent.loan_id)


async def test_hiroshima_renewal_refused_when_someone_is_waiting(circ):
    await person(circ, "H001", "hiroshima")
    await person(circ, "H002", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    lent = await lend(circ, "HB1", "H001", "central")
    await place(circ, "H002", "bib-1", "naka")
    r = await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="H001", channel="web")
    assert r.decision.code == "someone_waiting" and r.due is None


async def test_renewing_a_hold_loan_brings_its_overdue_request_back_on_loan(circ):
    await person(circ, "H001", "hiroshima")
    await person(circ, "H002", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    at(circ, datetime(2026, 10, 30, 10))
    await lend(circ, "HB1", "H002", "central")
    rid = await place(circ, "H001", "bib-1", "central")
    at(circ, datetime(2026, 11, 1, 10))
    assert (await give_back(circ, "HB1", "central")).routing.kind == "hold_shelf"
    lent = await lend(circ, "HB1", "H001", "central")     # due 15 Nov
    at(circ, NOW)
    await jobs.mark_overdue(circ)
    assert (await request_row(circ, rid)).state == "OVERDUE"
    r = await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="H001", channel="web",
                          card="H001")
    assert r.due == date(2026, 11, 29)
    assert (await request_row(circ, rid)).state == "ON_LOAN"
    assert [e for e in await events(circ, s.events.c.request_id == rid) if e[0] in
            ("CHECK_OUT", "DUE_DATE_PASSED", "RENEW")] == [
        ("CHECK_OUT", "ON_HOLD_SHELF", "ON_LOAN"), ("DUE_DATE_PASSED", "ON_LOAN", "OVERDUE"),
        ("RENEW", "OVERDUE", "ON_LOAN")]
    assert [e[0] for e in await events(circ, s.events.c.loan_id == lent.loan_id)] == [
        "CHECK_OUT", "DUE_DATE_PASSED", "RENEW"]


async def test_a_patron_cannot_renew_someone_elses_loan(circ):
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    at(circ, datetime(2026, 11, 10, 10))
    lent = await lend(circ, "IB1", "I001", "iizuka")
    at(circ, NOW)
    with pytest.raises(NotFound):
        await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I002", channel="web",
                          card="I002")
    with pytest.raises(NotFound):
        await loans.renew(circ, loan_id=99999, role="patron", actor="I002", channel="web")
    assert (await loan_row(circ, lent.loan_id)).renewals == 0


# --------------------------------------------------------------------------- returns

async def test_hiroshima_return_at_the_pickup_branch_traps_the_copy_on_its_hold_shelf(circ):
    await person(circ, "H001", "hiroshima")
    await person(circ, "H002", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    lent = await lend(circ, "HB1", "H001", "central")
    rid = await place(circ, "H002", "bib-1", "naka")
    at(circ, datetime(2026, 11, 25, 15))
    back = await give_back(circ, "HB1", "naka")           # 全館で返却: any city library
    assert back.decision.allowed and back.loan_id == lent.loan_id
    assert (back.routing.kind, back.routing.request_id) == ("hold_shelf", rid)
    loan = await loan_row(circ, lent.loan_id)
    assert (loan.state, loan.returned_at, loan.return_branch, loan.return_kind) == (
        "RETURNED", datetime(2026, 11, 25, 15), "naka", "counter")
    req = await request_row(circ, rid)
    item = await item_row(circ, "HB1")
    assert (req.state, req.item_id, item.status, item.current_branch) == (
        "ON_HOLD_SHELF", item.id, "on_hold_shelf", "naka")
    assert [e[0] for e in await events(circ, s.events.c.loan_id == lent.loan_id)] == ["CHECK_OUT", "CHECK_IN"]


async def test_hiroshima_return_elsewhere_sends_the_copy_in_transit_to_the_pickup_branch(circ):
    await person(circ, "H001", "hiroshima")
    await person(circ, "H002", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    await lend(circ, "HB1", "H001", "central")
    rid = await place(circ, "H002", "bib-1", "saeki")
    back = await give_back(circ, "HB1", "higashi")
    assert (back.routing.kind, back.routing.request_id, back.routing.to_branch) == (
        "transit_hold", rid, "saeki")
    assert (await request_row(circ, rid)).state == "IN_TRANSIT"
    assert (await item_row(circ, "HB1")).status == "in_transit"
    # arrival at the pickup branch puts it on the hold shelf
    arrived = await give_back(circ, "HB1", "saeki")
    assert arrived.loan_id is None and arrived.routing.kind == "hold_shelf"
    assert (await request_row(circ, rid)).state == "ON_HOLD_SHELF"
    assert len(await rows(circ, s.loans, s.loans.c.returned_at.is_not(None))) == 1


async def test_returning_a_hold_loan_completes_its_request(circ):
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    await lend(circ, "IB1", "I002", "iizuka")
    rid = await place(circ, "I001", "bib-1", "iizuka")
    await give_back(circ, "IB1", "iizuka")
    mine = await lend(circ, "IB1", "I001", "iizuka")
    back = await give_back(circ, "IB1", "chikuho")
    assert back.loan_id == mine.loan_id and back.routing.kind in ("transit_home", "reshelve")
    assert (await request_row(circ, rid)).state == "COMPLETED"
    tail = (await events(circ, s.events.c.request_id == rid))[-2:]
    assert tail == [("CHECK_IN", "ON_LOAN", "RETURNED"), ("CLOSE", "RETURNED", "COMPLETED")]


async def test_hiroshima_partner_item_is_returned_only_at_the_counter_it_was_lent_from(circ):
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "U1", "bib-u", "hiroshima-u", "central", partner="hiroshima-u")
    lent = await lend(circ, "U1", "H001", "central")
    for branch, kind in (("naka", "counter"), ("central", "book_drop"), ("central", "drop_point")):
        r = await give_back(circ, "U1", branch, return_kind=kind)
        assert r.decision.code == "partner_return_to_lending_counter" and r.returned_at is None
        assert r.decision.details["branch"] == "central"
    loan = await loan_row(circ, lent.loan_id)
    assert (loan.state, loan.returned_at) == ("ON_LOAN", None)
    assert [e[0] for e in await events(circ, s.events.c.loan_id == lent.loan_id)] == [
        "CHECK_OUT", "RETURN_REFUSED", "RETURN_REFUSED", "RETURN_REFUSED"]
    ok = await give_back(circ, "U1", "central")
    assert ok.decision.allowed and (await loan_row(circ, lent.loan_id)).state == "RETURNED"


async def test_hiroshima_drop_point_return_is_dated_when_processed_so_it_can_be_overdue(circ):
    # 返却ポスト…コンピュータ処理が終了するまでは、返却されたことになりません
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    await add_item(circ, "HB2", "bib-2", "hiroshima", "central")
    at(circ, datetime(2026, 11, 6, 10))
    a = await lend(circ, "HB1", "H001", "central")        # both due Friday 20 Nov
    b = await lend(circ, "HB2", "H001", "central")
    dropped = datetime(2026, 11, 19, 18)                   # before the due date
    at(circ, datetime(2026, 11, 22, 9))
    assert await jobs.mark_overdue(circ) == 2             # the overdue notice may still go out
    at(circ, datetime(2026, 11, 24, 10))                   # collected and processed on Tuesday
    r = await give_back(circ, "HB1", "asaminami", return_kind="drop_point", dropped_at=dropped)
    assert r.returned_at == datetime(2026, 11, 24, 10) and r.overdue_days == 4
    assert (await loan_row(circ, a.loan_id)).returned_at == datetime(2026, 11, 24, 10)
    # the library's own book drop counts from when it was dropped (reading in docs/lifecycle.md)
    r = await give_back(circ, "HB2", "central", return_kind="book_drop", dropped_at=dropped)
    assert r.returned_at == dropped and r.overdue_days == 0
    assert (await loan_row(circ, b.loan_id)).return_kind == "book_drop"


async def test_hiroshima_ill_items_and_audio_books_cannot_be_returned_at_drop_points(circ):
    # 録音図書や相互貸借を利用して借りた本は返却できませんので、直接図書館にご返却ください
    await person(circ, "H001", "hiroshima")
    await add_item(circ, "AUD1", "bib-a", "hiroshima", "central", material_type="audiobook")
    await add_item(circ, "ILL1", "bib-i", "hiroshima", "central", ill=True)
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    for bc in ("AUD1", "ILL1", "HB1"):
        await lend(circ, bc, "H001", "central")
    for bc in ("AUD1", "ILL1"):
        r = await give_back(circ, bc, "naka", return_kind="drop_point", dropped_at=NOW)
        assert r.decision.code == "not_at_drop_point" and r.returned_at is None
    assert (await give_back(circ, "HB1", "naka", return_kind="drop_point")).decision.allowed
    open_loans = await rows(circ, s.loans, s.loans.c.returned_at.is_(None))
    assert len(open_loans) == 2
    for bc in ("AUD1", "ILL1"):
        assert (await give_back(circ, bc, "naka")).decision.allowed
    assert await rows(circ, s.loans, s.loans.c.returned_at.is_(None)) == []


async def test_a_loan_is_returned_only_within_the_library_system_that_lent_it(circ):
    await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    lent = await lend(circ, "IB1", "I001", "iizuka")
    r = await give_back(circ, "IB1", "central")            # a Hiroshima library
    assert (r.decision.code, r.returned_at, r.routing) == ("return_other_system", None, None)
    assert (await loan_row(circ, lent.loan_id)).returned_at is None
    assert (await give_back(circ, "IB1", "kaita")).decision.allowed   # any Iizuka branch


async def test_checking_in_the_same_item_twice_returns_it_only_once(circ):
    await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    lent = await lend(circ, "IB1", "I001", "iizuka")
    first = await give_back(circ, "IB1", "iizuka")
    at(circ, NOW + timedelta(minutes=5))
    second = await give_back(circ, "IB1", "iizuka")
    assert first.loan_id == lent.loan_id and first.decision.allowed
    assert second.loan_id is None and second.decision.code == "not_on_loan"
    assert (await loan_row(circ, lent.loan_id)).returned_at == NOW
    assert [e[0] for e in await events(circ)] == ["CHECK_OUT", "CHECK_IN"]


async def test_staff_check_in_of_a_shelf_copy_someone_wants_traps_it(circ):
    await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "shonai")
    rid = await place(circ, "I001", "bib-1", "iizuka")
    assert (await request_row(circ, rid)).state == "QUEUED"      # on the shelf, not yet secured
    r = await give_back(circ, "IB1", "shonai")
    assert r.loan_id is None and r.decision.code == "not_on_loan"
    assert (r.routing.kind, r.routing.request_id, r.routing.to_branch) == ("transit_hold", rid, "iizuka")
    assert (await request_row(circ, rid)).state == "IN_TRANSIT"
    assert await rows(circ, s.loans) == []
    # scanned again at shonai before the van leaves: still one transit, nothing returned
    again = await give_back(circ, "IB1", "shonai")
    assert again.routing is None and again.decision.details["to_branch"] == "iizuka"
    assert len(await rows(circ, s.transits)) == 1


# --------------------------------------------------------------------------- overdue, lost

async def test_overdue_marking_is_idempotent_and_moves_a_hold_loan_to_overdue(circ):
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    for bc in ("IB1", "IB2"):
        await add_item(circ, bc, f"bib-{bc}", "iizuka", "iizuka")
    at(circ, datetime(2026, 11, 1, 10))
    await lend(circ, "IB1", "I002", "iizuka")
    rid = await place(circ, "I001", "bib-IB1", "iizuka")
    await give_back(circ, "IB1", "iizuka")
    hold_loan = await lend(circ, "IB1", "I001", "iizuka")  # due 15 Nov
    at(circ, datetime(2026, 11, 10, 10))
    fresh = await lend(circ, "IB2", "I002", "iizuka")      # due 24 Nov
    at(circ, datetime(2026, 11, 15, 23))                   # the due day itself: not overdue yet
    assert await run_job(circ, "overdue") == 0
    at(circ, datetime(2026, 11, 16, 0, 5))
    assert await run_job(circ, "overdue") == 1
    assert await run_job(circ, "overdue") == 0
    assert (await loan_row(circ, hold_loan.loan_id)).state == "OVERDUE"
    assert (await loan_row(circ, fresh.loan_id)).state == "ON_LOAN"
    assert (await request_row(circ, rid)).state == "OVERDUE"
    assert [e[0] for e in await events(circ, s.events.c.event == "DUE_DATE_PASSED")] == [
        "DUE_DATE_PASSED", "DUE_DATE_PASSED"]             # the loan's and its request's
    runs = await rows(circ, s.job_runs, order_by=s.job_runs.c.id)
    assert [(r.job, r.changed) for r in runs] == [("overdue", 0), ("overdue", 1), ("overdue", 0)]
    assert all(r.finished_at is not None and r.error is None for r in runs)


async def test_a_lost_copy_stays_on_the_patron_until_found_and_checked_in(circ):
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    lent = await lend(circ, "IB1", "I001", "iizuka")
    assert (await loans.declare_lost(circ, loan_id=lent.loan_id, **STAFF)).allowed
    assert ((await loan_row(circ, lent.loan_id)).state, (await item_row(circ, "IB1")).status) == ("LOST", "lost")
    r = await loans.check_out(circ, barcode="IB1", card="I002", branch="iizuka", **STAFF)
    assert r.decision.code == "item_on_loan"
    found = await give_back(circ, "IB1", "iizuka")
    assert found.loan_id == lent.loan_id and (await loan_row(circ, lent.loan_id)).state == "RETURNED"
    assert [e[0] for e in await events(circ)] == ["CHECK_OUT", "DECLARE_LOST", "CHECK_IN"]


# --------------------------------------------------------------------------- loans page

async def test_iizuka_loans_page_shows_the_renewal_button_only_when_renewable(circ):
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    for bc in ("IB1", "IB2", "IB3"):
        await add_item(circ, bc, f"bib-{bc}", "iizuka", "iizuka" if bc != "IB2" else "honami")
    at(circ, datetime(2026, 11, 1, 10))
    await lend(circ, "IB1", "I001", "iizuka")               # due 15 Nov: overdue 5 days, renewable
    at(circ, datetime(2026, 11, 10, 10))
    await lend(circ, "IB2", "I001", "honami")               # due 24 Nov, someone waiting
    at(circ, NOW)
    await lend(circ, "IB3", "I001", "iizuka")               # due 4 Dec: too early
    await place(circ, "I002", "bib-IB2", "iizuka")
    page = await loans.patron_loans(circ, "I001")
    assert [p["barcode"] for p in page] == ["IB1", "IB2", "IB3"]
    one, two, three = page
    assert (one["overdue"], one["overdue_days"], one["renewable"], one["branch_name"]) == (
        True, 5, True, "飯塚図書館")
    assert (two["renewable"], two["someone_waiting"], two["renewal_code"], two["branch_name"]) == (
        False, True, "someone_waiting", "穂波図書館")
    assert two["renewal_message_ja"] == "次に予約の方がいるため延長できません。"
    assert (three["renewable"], three["renewal_code"], three["overdue"]) == (False, "renewal_too_early", False)
    assert three["due"] == date(2026, 12, 4) and three["renewals"] == 0
    with pytest.raises(NotFound):
        await loans.patron_loans(circ, "I999")


# --------------------------------------------------------------------------- a check-in's one write of the copy

async def _check_in_trail(circ, pickup: str | None, return_at: str):
    """Lend HB1 (central), maybe place a hold for pickup at ``pickup``, return it at
    ``return_at``: the routing, every audit row of the copy in order, the copy's final
    state, and how many UPDATEs of items the check-in sent."""
    from sqlalchemy import event as sa_event

    from circulation import prepared
    await person(circ, "H001", "hiroshima")
    await person(circ, "H002", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    await lend(circ, "HB1", "H001", "central")
    if pickup:
        await place(circ, "H002", "bib-1", pickup)
    at(circ, datetime(2026, 11, 25, 15))
    sent: list[str] = []

    def seen(sql: str) -> None:
        if " ".join(sql.split()).upper().startswith("UPDATE ITEMS"):
            sent.append(sql)

    def cursor(_conn, _cursor, statement, *_a):
        seen(statement)

    engine = circ.db.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", cursor)
    prepared.ON_STATEMENT.append(seen)
    try:
        back = await give_back(circ, "HB1", return_at)
    finally:
        prepared.ON_STATEMENT.remove(seen)
        sa_event.remove(engine, "before_cursor_execute", cursor)
    item = await item_row(circ, "HB1")
    trail = [(e.event, e.actor_role, e.from_state, e.to_state, e.branch, e.reason, e.at)
             for e in await rows(circ, s.events, s.events.c.item_id == item.id, order_by=s.events.c.id)]
    return back.routing.kind, trail, (item.status, item.current_branch, item.updated_at), len(sent)


T_IN = datetime(2026, 11, 25, 15)


@pytest.mark.parametrize("pickup, return_at, kind, moves, final", [
    (None, "central", "reshelve", [], ("available", "central")),
    (None, "naka", "transit_home", [("TRANSIT_SENT", "staff", None, None, "naka", "return_home -> central")],
     ("in_transit", "naka")),
    ("naka", "naka", "hold_shelf", [("TRAP_AT_PICKUP", "staff", "QUEUED", "ON_HOLD_SHELF", "naka", "")],
     ("on_hold_shelf", "naka")),
    ("saeki", "higashi", "transit_hold", [("TRAP_ELSEWHERE", "staff", "QUEUED", "IN_TRANSIT", "higashi", ""),
                                          ("TRANSIT_SENT", "staff", None, None, "higashi", "hold -> saeki")],
     ("in_transit", "higashi")),
])
async def test_a_check_in_writes_the_copy_once_with_the_same_audit_rows(circ, pickup, return_at, kind, moves,
                                                                        final):
    # CHECK_IN and the routing's move (RESHELVE, SEND, PUT_ON_HOLD_SHELF) are each asked of
    # the item table, and written in one UPDATE; the audit rows are those of two writes
    got_kind, trail, item, updates = await _check_in_trail(circ, pickup, return_at)
    assert got_kind == kind
    assert [t[:5] + (t[6],) for t in trail[:2]] == [
        ("CHECK_OUT", "staff", None, "ON_LOAN", "central", datetime(2026, 11, 20, 10, 0)),
        ("CHECK_IN", "staff", "ON_LOAN", "RETURNED", return_at, T_IN)]
    assert [t[:6] for t in trail[2:]] == moves and all(t[6] == T_IN for t in trail[2:])
    assert item == final + (T_IN,)
    assert updates == 1


async def test_a_renewal_writes_the_loan_its_audit_row_and_its_notice(circ):
    # on PostgreSQL one statement writes the three (store.loan_transition(notice=...)), on
    # SQLite one after the other: the rows are the same; the borrower's own request for the
    # title does not count as someone waiting (the one read of the borrower and the queue)
    import json
    pid = await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    await add_item(circ, "IB2", "bib-1", "iizuka", "iizuka")
    at(circ, datetime(2026, 11, 6, 11))
    lent = await lend(circ, "IB1", "I001", "iizuka")
    await lend(circ, "IB2", "I002", "iizuka")
    await place(circ, "I001", "bib-1", "iizuka")                # the borrower's own hold on the title
    at(circ, NOW)
    r = await loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I001", channel="web", card="I001")
    assert r.decision.allowed and r.due == date(2026, 12, 4) and r.renewals == 1
    got = [(e.event, e.actor_role, e.actor, e.from_state, e.to_state, e.channel, e.branch, e.reason, e.item_id,
            e.request_id, e.at) for e in await rows(circ, s.events, s.events.c.loan_id == lent.loan_id,
                                                    order_by=s.events.c.id)]
    item = await item_row(circ, "IB1")
    assert got[1:] == [("RENEW", "patron", "I001", "ON_LOAN", "ON_LOAN", "web", "iizuka",
                        "due 2026-11-20 -> 2026-12-04", item.id, None, NOW)]
    [n] = await rows(circ, s.notices, s.notices.c.kind == "renewal_done")
    assert (n.patron_id, n.loan_id, n.request_id, n.dedupe_key, n.status, n.attempts, n.next_attempt_at,
            n.created_at) == (pid, lent.loan_id, None, f"renewal_done:{lent.loan_id}:1", "pending", 0, NOW, NOW)
    assert json.loads(n.data) == {"title": "bib-1", "barcode": "IB1", "due": "2026-12-04",
                                  "previous_due": "2026-11-20", "renewals": 1}
    # another patron waiting: refused, nothing written
    await place(circ, "I002", "bib-1", "iizuka")
    at(circ, datetime(2026, 12, 1, 10))
    again = await loans.renew(circ, loan_id=lent.loan_id, role="staff", actor="counter-1", channel="counter")
    assert not again.decision.allowed and again.due is None
    assert len(await rows(circ, s.events, s.events.c.loan_id == lent.loan_id)) == 2
    assert len(await rows(circ, s.notices, s.notices.c.kind == "renewal_done")) == 1
