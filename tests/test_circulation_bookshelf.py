"""The patron's own pages on the database (circulation/bookshelf.py): My bookshelf
(want to read, finished, borrowing history after opt-in), the reading marathon, the
settings and the calendar. SQLite and PostgreSQL (``db_url``)."""
from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import insert

from circ_helpers import NOW, add_calendar, add_item, add_patron, rows
from circulation import bookshelf as bs
from circulation import holds, loans
from circulation import schema as s
from circulation.store import NotFound

HANAKO, ICHIRO = "2100000001", "2100000002"


async def add_loan(circ, item_id: int, patron_id: int, lent_at: datetime, *, due: date | None = None,
                   returned: bool = True) -> int:
    async with circ.db.transaction() as conn:
        res = await conn.execute(insert(s.loans).values(
            item_id=item_id, patron_id=patron_id, branch="iizuka", lent_at=lent_at,
            due=due or lent_at.date(), returned_at=lent_at if returned else None,
            state="RETURNED" if returned else "ON_LOAN"))
        return res.inserted_primary_key[0]


async def test_want_to_read_and_finished_are_the_patrons_own_shelves(circ):
    await add_patron(circ, HANAKO, "iizuka")
    await add_patron(circ, ICHIRO, "iizuka")
    want = await bs.add_to_shelf(circ, HANAKO, "want", "isbn:9784003101018", title="吾輩は猫である")
    assert want.allowed and want.code == "added"
    again = await bs.add_to_shelf(circ, HANAKO, "want", "isbn:9784003101018", title="吾輩は猫である")
    assert (again.allowed, again.code, again.details["id"]) == (True, "already_on_shelf", want.details["id"])
    done = await bs.add_to_shelf(circ, HANAKO, "finished", "isbn:9784101010014", title="學問のすゝめ",
                                 note="2回目")
    assert done.allowed
    assert (await bs.add_to_shelf(circ, HANAKO, "history", "isbn:1")).code == "unknown_shelf"
    assert (await bs.add_to_shelf(circ, HANAKO, "want", "  ")).code == "title_missing"

    assert [(e.title_id, e.title) for e in await bs.list_shelf(circ, HANAKO, "want")] == [
        ("isbn:9784003101018", "吾輩は猫である")]
    (fin,) = await bs.list_shelf(circ, HANAKO, "finished")
    assert (fin.title, fin.note, fin.added_at) == ("學問のすゝめ", "2回目", NOW)
    assert await bs.list_shelf(circ, ICHIRO, "want") == []

    # someone else cannot remove my entry, even knowing its id
    assert (await bs.remove_entry(circ, ICHIRO, want.details["id"])).code == "entry_not_found"
    assert len(await bs.list_shelf(circ, HANAKO, "want")) == 1
    assert (await bs.remove_from_shelf(circ, HANAKO, "want", "isbn:9784003101018")).code == "removed"
    assert await bs.list_shelf(circ, HANAKO, "want") == []
    assert (await bs.remove_entry(circ, HANAKO, done.details["id"])).code == "removed"
    assert await rows(circ, s.bookshelf) == []
    with pytest.raises(NotFound):
        await bs.list_shelf(circ, "2199999999", "want")


async def test_borrowing_history_is_saved_only_after_opt_in_and_stopping_keeps_it(circ):
    await add_patron(circ, HANAKO, "iizuka")
    for n, title in enumerate(["isbn:a", "isbn:b", "isbn:c"], 1):
        await add_item(circ, f"I{n}", title, "iizuka", "iizuka")

    async def lend(barcode):
        res = await loans.check_out(circ, barcode=barcode, card=HANAKO, branch="iizuka", role="staff",
                                    actor="counter1")
        assert res.decision.allowed, res.decision

    await lend("I1")                                   # before opting in: not kept
    assert (await bs.set_history_opt_in(circ, HANAKO, True)).code == "history_started"
    await lend("I2")
    assert [e.title_id for e in await bs.list_shelf(circ, HANAKO, "history")] == ["isbn:b"]
    assert (await bs.set_history_opt_in(circ, HANAKO, False)).code == "history_stopped"
    await lend("I3")                                   # after stopping: not recorded, old kept
    history = await bs.list_shelf(circ, HANAKO, "history")
    assert [e.title_id for e in history] == ["isbn:b"] and history[0].loan_id is not None

    d = await bs.delete_history(circ, HANAKO)
    assert (d.code, d.details["deleted"]) == ("history_deleted", 1)
    assert await bs.list_shelf(circ, HANAKO, "history") == []
    (p,) = await rows(circ, s.patrons, s.patrons.c.card_number == HANAKO)
    assert p.history_opt_in is False


async def test_deleting_history_keeps_saving_new_loans_while_opted_in(circ):
    await add_patron(circ, HANAKO, "iizuka")
    await add_item(circ, "I1", "isbn:a", "iizuka", "iizuka")
    await add_item(circ, "I2", "isbn:b", "iizuka", "iizuka")
    await bs.set_history_opt_in(circ, HANAKO, True)
    await loans.check_out(circ, barcode="I1", card=HANAKO, branch="iizuka", role="staff", actor="c")
    await bs.delete_history(circ, HANAKO)
    await loans.check_out(circ, barcode="I2", card=HANAKO, branch="iizuka", role="staff", actor="c")
    assert [e.title_id for e in await bs.list_shelf(circ, HANAKO, "history")] == ["isbn:b"]


async def test_reading_marathon_counts_distinct_titles_lent_each_month_toward_the_goal(circ):
    pid = await add_patron(circ, HANAKO, "iizuka")
    other = await add_patron(circ, ICHIRO, "iizuka")
    a1 = await add_item(circ, "A1", "isbn:a", "iizuka", "iizuka")
    a2 = await add_item(circ, "A2", "isbn:a", "iizuka", "honami")       # another copy, same title
    b = await add_item(circ, "B1", "isbn:b", "iizuka", "iizuka")
    c = await add_item(circ, "C1", "isbn:c", "iizuka", "iizuka")
    await add_loan(circ, a1, pid, datetime(2026, 1, 10, 11))
    await add_loan(circ, a2, pid, datetime(2026, 3, 2, 15))             # title a again: not counted
    await add_loan(circ, b, pid, datetime(2026, 3, 5, 10))
    await add_loan(circ, c, pid, datetime(2026, 11, 20, 10), returned=False)
    await add_loan(circ, b, pid, datetime(2025, 12, 31, 18))            # last year
    await add_loan(circ, c, other, datetime(2026, 2, 1, 10))            # someone else

    assert (await bs.set_reading_goal(circ, HANAKO, 12)).code == "goal_set"
    prog = await bs.reading_progress(circ, HANAKO, 2026)
    assert prog == {"year": 2026, "goal": 12, "done": 3, "percent": 25,
                    "by_month": [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0]}
    last_year = await bs.reading_progress(circ, HANAKO, 2025)
    assert (last_year["done"], last_year["by_month"][11]) == (1, 1)

    for bad in (0, -3, 1.5, True, "12"):
        assert (await bs.set_reading_goal(circ, HANAKO, bad)).code == "goal_invalid", bad
    assert (await bs.set_reading_goal(circ, HANAKO, None)).code == "goal_cleared"
    cleared = await bs.reading_progress(circ, HANAKO, 2026)
    assert (cleared["goal"], cleared["done"], cleared["percent"]) == (None, 3, None)


async def test_settings_refuse_a_pickup_place_or_contact_method_the_system_does_not_offer(circ):
    await add_patron(circ, HANAKO, "iizuka", default_pickup_branch="iizuka")
    await add_patron(circ, "4300000001", "hiroshima", phone="082-241-0001")
    cases = [
        (HANAKO, {"default_pickup_branch": "central"}, "pickup_not_service_point"),   # Hiroshima's
        ("4300000001", {"default_pickup_branch": "tomohato"}, "pickup_not_service_point"),  # mobile library
        (HANAKO, {"default_contact_method": "phone"}, "contact_method_not_offered"),
        (HANAKO, {"default_contact_method": "email"}, "email_missing"),
        (HANAKO, {"email": "hanako@@example.jp"}, "email_invalid"),
        (HANAKO, {"email": "花子@example.jp"}, "email_invalid"),
        (HANAKO, {"locale": "fr"}, "locale_invalid"),
        # a valid change and an invalid one together: nothing is stored
        (HANAKO, {"email": "hanako@example.jp", "default_pickup_branch": "naka"}, "pickup_not_service_point"),
    ]
    for card, change, code in cases:
        d = await bs.update_settings(circ, card=card, **change)
        assert (d.allowed, d.code) == (False, code), change
        assert d.message_ja and d.message_en
    (p,) = await rows(circ, s.patrons, s.patrons.c.card_number == HANAKO)
    assert (p.email, p.default_pickup_branch, p.default_contact_method, p.locale) == (None, "iizuka", "none", "ja")

    d = await bs.update_settings(circ, card=HANAKO, email="hanako@example.jp", default_contact_method="email",
                                 default_pickup_branch="honami", locale="en", new_book_alerts=True)
    assert d.code == "settings_updated"
    assert set(d.details["changed"]) == {"email", "default_contact_method", "default_pickup_branch", "locale",
                                         "new_book_alerts"}
    (p,) = await rows(circ, s.patrons, s.patrons.c.card_number == HANAKO)
    assert (p.email, p.default_pickup_branch, p.default_contact_method, p.locale, p.new_book_alerts) == (
        "hanako@example.jp", "honami", "email", "en", True)
    ok = await bs.update_settings(circ, card="4300000001", default_contact_method="phone",
                                  default_pickup_branch="asaminami")
    assert ok.allowed


async def test_iizuka_warns_but_keeps_a_hotmail_address(circ):
    await add_patron(circ, HANAKO, "iizuka")
    await add_patron(circ, "3200000001", "komae")
    d = await bs.update_settings(circ, card=HANAKO, email="hanako@hotmail.co.jp")
    assert (d.allowed, d.code, d.details["domain"]) == (True, "email_domain_warning", "hotmail")
    assert "届きません" in d.message_ja
    (p,) = await rows(circ, s.patrons, s.patrons.c.card_number == HANAKO)
    assert p.email == "hanako@hotmail.co.jp"
    assert (await bs.update_settings(circ, card=HANAKO, email="hanako@nothotmail.com")).code == "settings_updated"
    # Komae's seed names no such domain
    assert (await bs.update_settings(circ, card="3200000001", email="s@hotmail.com")).code == "settings_updated"


async def test_the_email_address_cannot_be_removed_while_mail_is_the_contact_method(circ):
    await add_patron(circ, HANAKO, "iizuka", email="hanako@example.jp", default_contact_method="email")
    assert (await bs.update_settings(circ, card=HANAKO, email="")).code == "email_needed_for_contact"
    d = await bs.update_settings(circ, card=HANAKO, email="", default_contact_method="none")
    assert d.allowed
    (p,) = await rows(circ, s.patrons, s.patrons.c.card_number == HANAKO)
    assert (p.email, p.default_contact_method) == (None, "none")


async def test_changing_the_contact_method_can_update_the_patrons_live_holds(circ):
    await add_patron(circ, HANAKO, "iizuka", email="hanako@example.jp", default_contact_method="email")
    await add_item(circ, "I1", "isbn:a", "iizuka", "iizuka", status="on_loan")
    await add_item(circ, "I2", "isbn:b", "iizuka", "iizuka", status="on_loan")
    ids = []
    for t in ("isbn:a", "isbn:b"):
        r = await holds.place(circ, card=HANAKO, title_id=t, pickup_branch="iizuka", channel="web",
                              role="patron", actor=HANAKO, contact_method="email")
        assert r.decision.allowed, r.decision
        ids.append(r.request_id)
    d = await bs.update_settings(circ, card=HANAKO, default_contact_method="none")
    assert d.details["holds_updated"] == 0
    assert {r.contact_method for r in await rows(circ, s.requests)} == {"email"}
    d = await bs.update_settings(circ, card=HANAKO, default_contact_method="email", update_live_holds=False)
    d = await bs.update_settings(circ, card=HANAKO, default_contact_method="none", update_live_holds=True)
    assert (d.code, d.details["holds_updated"]) == ("settings_updated", 2)
    assert {r.contact_method for r in await rows(circ, s.requests)} == {"none"}
    changed = await rows(circ, s.notices, s.notices.c.kind == "hold_changed")
    assert sorted(n.request_id for n in changed) == ids


async def test_the_calendar_shows_closed_days_events_and_my_due_dates(circ):
    await add_patron(circ, HANAKO, "iizuka")
    await add_patron(circ, ICHIRO, "iizuka")
    await add_patron(circ, "4300000001", "hiroshima")
    await add_item(circ, "I1", "isbn:a", "iizuka", "iizuka")
    await add_item(circ, "I2", "isbn:b", "iizuka", "iizuka")
    await add_calendar(circ, "iizuka", date(2026, 12, 29), "closed", "年末年始休館")
    await add_calendar(circ, "shonai", date(2026, 12, 12), "event", "冬のSPおはなし会")
    await add_calendar(circ, "iizuka", date(2026, 12, 19), "event", "おはなし会")
    await add_calendar(circ, "central", date(2026, 12, 13), "event", "広島の昔話")   # another system
    await add_calendar(circ, "central", date(2026, 11, 23), "holiday", "勤労感謝の日")
    lent = await loans.check_out(circ, barcode="I1", card=HANAKO, branch="iizuka", role="staff", actor="c")
    await loans.check_out(circ, barcode="I2", card=ICHIRO, branch="iizuka", role="staff", actor="c")

    cal = await bs.patron_calendar(circ, HANAKO, date(2026, 12, 5))
    assert cal["month"] == "2026-12"
    assert set(cal["branches"]) == {"iizuka", "chikuho", "shonai", "honami", "kaita"}
    assert cal["branches"]["iizuka"] == {"name": "飯塚図書館", "closed_days": [date(2026, 12, 29)]}
    assert cal["branches"]["honami"]["closed_days"] == []
    assert cal["events"] == [{"branch": "shonai", "day": date(2026, 12, 12), "title": "冬のSPおはなし会"},
                             {"branch": "iizuka", "day": date(2026, 12, 19), "title": "おはなし会"}]
    assert [(d["day"], d["barcode"], d["loan_id"]) for d in cal["due_dates"]] == [
        (lent.due, "I1", lent.loan_id)]                      # mine only, not 一郎's
    assert (await bs.patron_calendar(circ, HANAKO, date(2026, 11, 1)))["due_dates"] == []

    # Hiroshima: closed on Mondays, but a Monday that is a public holiday opens with holiday hours
    hcal = await bs.patron_calendar(circ, "4300000001", date(2026, 11, 1))
    assert hcal["branches"]["central"]["closed_days"] == [date(2026, 11, d) for d in (2, 9, 16, 30)]
    assert hcal["branches"]["naka"]["closed_days"] == [date(2026, 11, d) for d in (2, 9, 16, 23, 30)]
    assert hcal["events"] == [] and hcal["due_dates"] == []
