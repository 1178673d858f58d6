"""The mobile library (移動図書館「ともはと号」, Hiroshima seed 002) on SQLite and PostgreSQL:
its own card, due on the next visit to the stop, the school-stop limit, returns only to
the mobile or the central library, holds on paper collected on the mobile.

Each test checks the rows and the audit trail (events) it leaves."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from circ_helpers import add_item, add_patron, one_row, rows
from circulation import holds, loans, mobile
from circulation import routing as rt
from circulation import schema as s
from circulation.store import NotFound

STAFF = dict(role="staff", actor="tomohato-1")
MOBILE = "tomohato"


def at(circ, when: datetime) -> None:
    circ.clock.fixed = when


async def mobile_card(circ, card, **kw):
    # 「ともはと号」専用の利用券をその場で作成します
    return await add_patron(circ, card, "hiroshima", category="mobile", **kw)


async def schedule(circ):
    """Two stops: a community stop every four weeks from 27 Nov, a school every four weeks
    from 24 Nov; one more visit to the community stop is in the past."""
    await mobile.add_visits(circ, MOBILE, "口田公園", [date(2026, 10, 30), date(2026, 11, 20),
                                                     date(2026, 12, 18), date(2027, 1, 15)])
    await mobile.add_visits(circ, MOBILE, "落合小学校", [date(2026, 11, 20), date(2026, 12, 15)],
                            school=True)


async def lend(circ, barcode, card, branch=MOBILE, **kw):
    r = await loans.check_out(circ, barcode=barcode, card=card, branch=branch, **{**STAFF, **kw})
    assert r.decision.allowed, (r.decision.code, r.decision.details)
    return r


async def loan_events(circ, loan_id):
    return [(e.event, e.branch, e.reason) for e in
            await rows(circ, s.events, s.events.c.loan_id == loan_id, order_by=s.events.c.id)]


# --------------------------------------------------------------------------- lending

async def test_hiroshima_mobile_card_borrows_twenty_items_due_on_the_next_visit_to_the_stop(circ):
    await schedule(circ)
    await mobile_card(circ, "M001")
    for i in range(21):
        await add_item(circ, f"MB{i:02}", f"mbib-{i}", "hiroshima", MOBILE)
    for i in range(20):
        r = await lend(circ, f"MB{i:02}", "M001", stop="口田公園")
        # 約1か月(次回巡回日まで): the next visit to this stop, not the school's on 15 Dec
        assert r.due == date(2026, 12, 18)
    r = await loans.check_out(circ, barcode="MB20", card="M001", branch=MOBILE, stop="口田公園", **STAFF)
    assert not r.decision.allowed and r.decision.code == "loan_limit"
    assert r.decision.details["limit"] == 20          # 貸出冊数 1人20冊まで
    opened = await rows(circ, s.loans, s.loans.c.returned_at.is_(None))
    assert len(opened) == 20 and {x.stop for x in opened} == {"口田公園"}
    assert {x.branch for x in opened} == {MOBILE} and {x.due for x in opened} == {date(2026, 12, 18)}
    first = opened[0]
    assert await loan_events(circ, first.id) == [("CHECK_OUT", MOBILE, "due 2026-12-18")]
    assert (await one_row(circ, s.items, s.items.c.barcode == "MB20")).status == "available"


async def test_hiroshima_mobile_loan_without_a_scheduled_next_visit_is_due_in_thirty_days(circ):
    await mobile.add_visits(circ, MOBILE, "湯来", [date(2026, 10, 2), date(2026, 11, 20)])
    await mobile_card(circ, "M002")
    await add_item(circ, "MB1", "mbib-1", "hiroshima", MOBILE)
    await add_item(circ, "MB2", "mbib-2", "hiroshima", MOBILE)
    # the stop's visits are all past (or today): loans.mobile.days
    r1 = await lend(circ, "MB1", "M002", stop="湯来")
    # no stop given at all: the same fallback
    r2 = await lend(circ, "MB2", "M002")
    assert r1.due == r2.due == date(2026, 12, 20)
    l1 = await one_row(circ, s.loans, s.loans.c.id == r1.loan_id)
    l2 = await one_row(circ, s.loans, s.loans.c.id == r2.loan_id)
    assert (l1.stop, l2.stop) == ("湯来", None)
    assert await loan_events(circ, r1.loan_id) == [("CHECK_OUT", MOBILE, "due 2026-12-20")]


async def test_hiroshima_mobile_check_out_at_a_stop_not_in_the_schedule_raises(circ):
    await schedule(circ)
    await mobile_card(circ, "M003")
    await add_item(circ, "MB1", "mbib-1", "hiroshima", MOBILE)
    with pytest.raises(NotFound):
        await loans.check_out(circ, barcode="MB1", card="M003", branch=MOBILE, stop="口田公圓", **STAFF)
    with pytest.raises(ValueError):
        await loans.check_out(circ, barcode="MB1", card="M003", branch="central", stop="口田公園", **STAFF)
    assert await rows(circ, s.loans) == [] and await rows(circ, s.events) == []


async def test_hiroshima_library_card_cannot_be_used_at_the_mobile_library_nor_a_mobile_card_at_a_library(circ):
    await schedule(circ)
    await add_patron(circ, "H100", "hiroshima")                 # a library card
    await mobile_card(circ, "M004")
    await add_item(circ, "MB1", "mbib-1", "hiroshima", MOBILE)
    await add_item(circ, "HB1", "hbib-1", "hiroshima", "naka")
    # ※図書館で作成した利用券では、「ともはと号」の利用はできません。
    r = await loans.check_out(circ, barcode="MB1", card="H100", branch=MOBILE, stop="口田公園", **STAFF)
    assert not r.decision.allowed and r.decision.code == "card_not_for_mobile"
    assert r.decision.message_ja == "図書館で作成した利用券では「ともはと号」の利用はできません。"
    # ... and the mobile card is not a library card (reading: see docs/lifecycle.md)
    r = await loans.check_out(circ, barcode="HB1", card="M004", branch="naka", **STAFF)
    assert not r.decision.allowed and r.decision.code == "mobile_card_only"
    assert await rows(circ, s.loans) == [] and await rows(circ, s.events) == []
    assert {i.status for i in await rows(circ, s.items)} == {"available"}
    # the right card at the right place is lent
    assert (await lend(circ, "MB1", "M004", stop="口田公園")).due == date(2026, 12, 18)
    assert (await lend(circ, "HB1", "H100", branch="naka")).due == date(2026, 12, 4)


async def test_hiroshima_school_stop_lends_at_most_five_items_per_person(circ):
    await schedule(circ)
    await mobile_card(circ, "M005")
    await mobile_card(circ, "M006")
    for i in range(7):
        await add_item(circ, f"MB{i}", f"mbib-{i}", "hiroshima", MOBILE)
    for i in range(5):
        r = await lend(circ, f"MB{i}", "M005", stop="落合小学校")
        assert r.due == date(2026, 12, 15)                      # the school's next visit
    # 学校内での児童・生徒への貸出は、一人5冊まで
    r = await loans.check_out(circ, barcode="MB5", card="M005", branch=MOBILE, stop="落合小学校", **STAFF)
    assert not r.decision.allowed and r.decision.code == "school_stop_limit"
    assert r.decision.details["limit"] == 5 and r.decision.details["stop"] == "落合小学校"
    # at a community stop the same card has the ordinary 20
    assert (await lend(circ, "MB5", "M005", stop="口田公園")).due == date(2026, 12, 18)
    # another pupil is not affected
    await lend(circ, "MB6", "M006", stop="落合小学校")
    counts = {}
    for x in await rows(circ, s.loans):
        counts[(x.patron_id, x.stop)] = counts.get((x.patron_id, x.stop), 0) + 1
    assert sorted(counts.values()) == [1, 1, 5]
    assert len(await rows(circ, s.events, s.events.c.event == "CHECK_OUT")) == 7


# --------------------------------------------------------------------------- returns and renewals

async def test_hiroshima_mobile_loans_return_only_to_the_mobile_or_the_central_library(circ):
    await schedule(circ)
    await mobile_card(circ, "M007")
    await add_patron(circ, "H101", "hiroshima")
    for i in range(4):
        await add_item(circ, f"MB{i}", f"mbib-{i}", "hiroshima", MOBILE)
    await add_item(circ, "HB1", "hbib-1", "hiroshima", "central")
    for i in range(4):
        await lend(circ, f"MB{i}", "M007", stop="口田公園")
    lib = await lend(circ, "HB1", "H101", branch="central")
    at(circ, datetime(2026, 12, 1, 11, 0))
    # 中央図書館以外の図書館や公民館図書室への返却はできません
    r = await loans.check_in(circ, barcode="MB0", branch="naka", **STAFF)
    assert not r.decision.allowed and r.decision.code == "mobile_return_only"
    r2 = await loans.check_in(circ, barcode="MB1", branch="central", return_kind="drop_point", **STAFF)
    assert not r2.decision.allowed and r2.decision.code == "mobile_return_only"
    refused = await rows(circ, s.events, s.events.c.event == "RETURN_REFUSED", order_by=s.events.c.id)
    assert [(e.branch, e.channel, e.reason) for e in refused] == [
        ("naka", "counter", "mobile_return_only"), ("central", "drop_point", "mobile_return_only")]
    assert len(await rows(circ, s.loans, s.loans.c.returned_at.is_(None))) == 5
    # the mobile itself and the central library's counter take them
    ok1 = await loans.check_in(circ, barcode="MB0", branch=MOBILE, return_kind="mobile", **STAFF)
    ok2 = await loans.check_in(circ, barcode="MB1", branch="central", **STAFF)
    assert ok1.decision.allowed and ok2.decision.allowed
    assert ok2.routing.kind == rt.TRANSIT_HOME                # the copy goes back on board
    # a library loan still goes back to any library of the city, the mobile included
    ok3 = await loans.check_in(circ, barcode="HB1", branch="saeki", **STAFF)
    assert ok3.decision.allowed
    returned = {x.item_id: (x.return_branch, x.return_kind)
                for x in await rows(circ, s.loans, s.loans.c.returned_at.is_not(None))}
    assert sorted(returned.values()) == [("central", "counter"), ("saeki", "counter"), (MOBILE, "mobile")]
    assert (await one_row(circ, s.loans, s.loans.c.id == lib.loan_id)).state == "RETURNED"
    assert len(await rows(circ, s.events, s.events.c.event == "CHECK_IN")) == 3


async def test_hiroshima_mobile_loan_is_not_renewed_by_the_rules(circ):
    await schedule(circ)
    await mobile_card(circ, "M008")
    await add_item(circ, "MB1", "mbib-1", "hiroshima", MOBILE)
    r = await lend(circ, "MB1", "M008", stop="口田公園")
    # 貸出期間に返却できない場合は、下記までお問い合わせください
    res = await loans.renew(circ, loan_id=r.loan_id, channel="counter", **STAFF)
    assert not res.decision.allowed and res.decision.code == "mobile_loan_not_renewable"
    loan = await one_row(circ, s.loans, s.loans.c.id == r.loan_id)
    assert (loan.due, loan.renewals) == (date(2026, 12, 18), 0)
    assert [e[0] for e in await loan_events(circ, r.loan_id)] == ["CHECK_OUT"]
    page = await loans.patron_loans(circ, "M008")
    assert page[0]["renewable"] is False and page[0]["renewal_code"] == "mobile_loan_not_renewable"


# --------------------------------------------------------------------------- holds (よやく・リクエストカード)

async def place(circ, card, title_id, pickup, channel="form", role="staff"):
    return await holds.place(circ, card=card, title_id=title_id, pickup_branch=pickup,
                             channel=channel, role=role, actor=card if role == "patron" else "tomohato-1",
                             contact_method="phone")


async def test_hiroshima_mobile_card_holds_go_through_staff_and_are_collected_on_the_mobile(circ):
    await schedule(circ)
    await mobile_card(circ, "M009", phone="082-000-0000")
    await add_item(circ, "HB1", "hbib-1", "hiroshima", "central")
    # the web is not the mobile's way: 「よやく・リクエストカード」…職員にお渡しください
    r = await place(circ, "M009", "hbib-1", MOBILE, channel="web", role="patron")
    assert not r.decision.allowed and r.decision.code == "channel_not_allowed"
    assert r.decision.details["channels"] == ["counter", "form"]
    # a library cannot be the pickup point of a mobile card
    r = await place(circ, "M009", "hbib-1", "naka")
    assert not r.decision.allowed and r.decision.code == "mobile_card_only"
    assert await rows(circ, s.requests) == []
    # ご用意でき次第、巡回日にお渡しします
    r = await place(circ, "M009", "hbib-1", MOBILE)
    assert r.decision.allowed
    req = await one_row(circ, s.requests, s.requests.c.id == r.request_id)
    assert (req.pickup_branch, req.channel, req.state) == (MOBILE, "form", "QUEUED")
    # staff at the central library pull the copy: it travels to the mobile
    routing = await loans.check_in(circ, barcode="HB1", branch="central", **STAFF)
    assert routing.routing.kind == rt.TRANSIT_HOLD and routing.routing.to_branch == MOBILE
    arrived = await loans.check_in(circ, barcode="HB1", branch=MOBILE, return_kind="mobile", **STAFF)
    assert arrived.routing.kind == rt.HOLD_SHELF
    at(circ, datetime(2026, 12, 18, 10, 30))                     # the next visit to the stop
    lent = await lend(circ, "HB1", "M009", stop="口田公園")
    assert lent.request_id == r.request_id and lent.due == date(2027, 1, 15)
    req = await one_row(circ, s.requests, s.requests.c.id == r.request_id)
    assert req.state == "ON_LOAN"
    trail = [(e.event, e.to_state) for e in
             await rows(circ, s.events, s.events.c.request_id == r.request_id, order_by=s.events.c.id)]
    assert trail[0] == ("PLACE", "NEW") and trail[-1] == ("CHECK_OUT", "ON_LOAN")
    assert ("ARRIVE_AT_PICKUP", "ON_HOLD_SHELF") in trail


async def test_hiroshima_mobile_card_places_at_most_twenty_holds(circ):
    await mobile_card(circ, "M010", phone="082-000-0001")
    for i in range(21):
        await add_item(circ, f"HB{i:02}", f"hbib-{i}", "hiroshima", "central")
    for i in range(20):
        assert (await place(circ, "M010", f"hbib-{i}", MOBILE)).decision.allowed
    # (最大1人20冊まで)
    r = await place(circ, "M010", "hbib-20", MOBILE)
    assert not r.decision.allowed and r.decision.code == "limit_total"
    assert len(await rows(circ, s.requests)) == 20
    assert len(await rows(circ, s.events, s.events.c.event == "PLACE")) == 20


async def test_hiroshima_library_card_cannot_choose_the_mobile_as_pickup(circ):
    await add_patron(circ, "H102", "hiroshima", phone="082-000-0002")
    await mobile_card(circ, "M011", phone="082-000-0003")
    await add_item(circ, "HB1", "hbib-1", "hiroshima", "central")
    r = await holds.place(circ, card="H102", title_id="hbib-1", pickup_branch=MOBILE, channel="web",
                          role="patron", actor="H102", contact_method="phone")
    assert not r.decision.allowed and r.decision.code == "pickup_not_service_point"
    ok = await holds.place(circ, card="H102", title_id="hbib-1", pickup_branch="naka", channel="web",
                           role="patron", actor="H102", contact_method="phone")
    assert ok.decision.allowed
    # changing a library card's hold to the mobile is refused as well, and a mobile
    # card's hold cannot move to a library
    d = await holds.change(circ, request_id=ok.request_id, pickup_branch=MOBILE, role="staff", actor="naka-1")
    assert not d.allowed and d.code == "pickup_not_service_point"
    m = await place(circ, "M011", "hbib-1", MOBILE)
    d = await holds.change(circ, request_id=m.request_id, pickup_branch="naka", role="staff", actor="naka-1")
    assert not d.allowed and d.code == "mobile_card_only"
    assert {(x.patron_id, x.pickup_branch) for x in await rows(circ, s.requests)} == {
        (1, "naka"), (2, MOBILE)}
    assert await rows(circ, s.events, s.events.c.event == "CHANGE") == []


async def test_hiroshima_mobile_schedule_loads_from_csv_and_sets_the_due_date(circ):
    from circulation.loaders import load_csv
    csv = ("branch,day,kind,title\n"
           "tomohato,2026-11-20,visit,口田公園\n"
           "tomohato,2026-12-18,visit,口田公園\n"
           "tomohato,2026-12-18,school_visit,落合小学校\n"
           "tomohato,2026-12-20,visit,\n"
           "naka,2026-12-18,visit,口田公園\n").encode()
    report = await load_csv(circ, "calendar", csv)
    assert (report.added, report.rejected) == (3, 2)
    assert [line for line, _ in report.errors] == [5, 6]
    entries = await rows(circ, s.calendar_entries, order_by=s.calendar_entries.c.id)
    assert [(e.day, e.kind, e.title) for e in entries] == [
        (date(2026, 11, 20), "visit", "口田公園"), (date(2026, 12, 18), "visit", "口田公園"),
        (date(2026, 12, 18), "school_visit", "落合小学校")]
    await mobile_card(circ, "M012")
    await add_item(circ, "MB1", "mbib-1", "hiroshima", MOBILE)
    assert (await lend(circ, "MB1", "M012", stop="口田公園")).due == date(2026, 12, 18)
