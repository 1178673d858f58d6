"""The patron's own pages: My bookshelf (My本棚), the reading marathon (読書マラソン),
settings (利用者情報変更) and the calendar (カレンダー), after the Iizuka guide.

My bookshelf has three shelves in ``bookshelf.shelf``:

* ``want`` (読みたい本) and ``finished`` (読み終わった本): the patron adds and removes
  entries; a title is on a shelf at most once (adding it again changes nothing). The
  two shelves are independent.
* ``history`` (借りた本): written at check-out, and only while the patron has opted in
  (``patrons.history_opt_in``, 貸出履歴保存開始 after agreeing to the terms); the
  check-out in :mod:`circulation.loans` writes it. Nothing borrowed before opting in
  is kept. Stopping keeps what was saved (途中で停止することができますが、
  今までに保存された履歴は残ります); :func:`delete_history` removes it (手動で履歴を消す),
  :func:`remove_entry` one entry.

Every function works on the patron's own entries only: an entry of someone else is
"not found", whatever its id.

The reading marathon counts the distinct titles (``items.title_id``) the patron borrowed
in a year, from ``loans`` (not from the history shelf: it works without opting in), each
title in the month of its first loan that year, so the twelve month counts add up to the
total. Loans the purge job has removed no longer count.

Settings (:func:`update_settings`) are validated against the patron's profile: the
default pickup branch must be a pickup service point of the patron's own system, the
contact method one the profile offers (and usable: an e-mail address for ``email``, a
phone number for ``phone``, :func:`lifecycle.policies.contact_method_ok`). An address at
a domain the profile lists as undeliverable (Iizuka: @hotmail) is stored but the answer
warns (code ``email_domain_warning``).
"""
from __future__ import annotations

import calendar as _calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import policies
from lifecycle.model import Decision
from lifecycle.profiles import Profile
from lifecycle.reasons import decide

from . import holds
from . import schema as s
from .service import Circulation
from .store import patron_by_card, patron_contact

PATRON_SHELVES = ("want", "finished")
SHELVES = PATRON_SHELVES + ("history",)
LOCALES = ("ja", "en")
GOAL_MAX = 10000
TITLE_MAX = 1000
NOTE_MAX = 2000

@dataclass(frozen=True)
class ShelfEntry:
    id: int
    shelf: str
    title_id: str
    title: str
    added_at: datetime
    note: str = ""
    loan_id: int | None = None


# --------------------------------------------------------------------------- My bookshelf

async def add_to_shelf(circ: Circulation, card: str, shelf: str, title_id: str, *, title: str = "",
                       note: str = "") -> Decision:
    """Put a title on the patron's 読みたい本 (``want``) or 読み終わった本 (``finished``)
    shelf. ``details["id"]`` is the entry's id (also when it was there already)."""
    if shelf not in PATRON_SHELVES:
        return decide("unknown_shelf", shelf=shelf, shelves=list(PATRON_SHELVES))
    if not (title_id or "").strip():
        return decide("title_missing")
    now = circ.now()

    async def work(conn: AsyncConnection) -> Decision:
        p = await patron_by_card(conn, card, lock=True)      # serializes adds of one patron
        existing = (await conn.execute(select(s.bookshelf.c.id).where(
            s.bookshelf.c.patron_id == p.id, s.bookshelf.c.shelf == shelf,
            s.bookshelf.c.title_id == title_id))).first()
        if existing is not None:
            return decide("already_on_shelf", id=existing.id)
        res = await conn.execute(insert(s.bookshelf).values(
            patron_id=p.id, shelf=shelf, title_id=title_id, title=title[:TITLE_MAX],
            note=note[:NOTE_MAX], added_at=now))
        return decide("added", id=res.inserted_primary_key[0])

    return await circ.db.run(work)


async def remove_entry(circ: Circulation, card: str, entry_id: int) -> Decision:
    """Remove one entry from any of the patron's shelves (history included)."""
    async def work(conn: AsyncConnection) -> Decision:
        p = await patron_by_card(conn, card, lock=True)
        res = await conn.execute(delete(s.bookshelf).where(s.bookshelf.c.id == entry_id,
                                                           s.bookshelf.c.patron_id == p.id))
        return decide("removed") if res.rowcount else decide("entry_not_found")

    return await circ.db.run(work)


async def remove_from_shelf(circ: Circulation, card: str, shelf: str, title_id: str) -> Decision:
    """Remove a title from the patron's ``want`` or ``finished`` shelf."""
    if shelf not in PATRON_SHELVES:
        return decide("unknown_shelf", shelf=shelf, shelves=list(PATRON_SHELVES))

    async def work(conn: AsyncConnection) -> Decision:
        p = await patron_by_card(conn, card, lock=True)
        res = await conn.execute(delete(s.bookshelf).where(
            s.bookshelf.c.patron_id == p.id, s.bookshelf.c.shelf == shelf,
            s.bookshelf.c.title_id == title_id))
        return decide("removed") if res.rowcount else decide("entry_not_found")

    return await circ.db.run(work)


async def list_shelf(circ: Circulation, card: str, shelf: str) -> list[ShelfEntry]:
    """The entries of one shelf, newest first."""
    if shelf not in SHELVES:
        raise ValueError(f"unknown shelf {shelf!r}; shelves: {', '.join(SHELVES)}")
    async with circ.db.read() as conn:
        p = await patron_by_card(conn, card)
        rows = (await conn.execute(
            select(s.bookshelf).where(s.bookshelf.c.patron_id == p.id, s.bookshelf.c.shelf == shelf)
            .order_by(s.bookshelf.c.added_at.desc(), s.bookshelf.c.id.desc()))).all()
    return [ShelfEntry(r.id, r.shelf, r.title_id, r.title, r.added_at, r.note, r.loan_id) for r in rows]


async def set_history_opt_in(circ: Circulation, card: str, on: bool) -> Decision:
    """Start (after the patron agreed to the terms) or stop saving borrowing history.
    Stopping keeps the saved history."""
    async def work(conn: AsyncConnection) -> Decision:
        p = await patron_by_card(conn, card, lock=True)
        await conn.execute(update(s.patrons).where(s.patrons.c.id == p.id).values(history_opt_in=bool(on)))
        return decide("history_started" if on else "history_stopped")

    return await circ.db.run(work)


async def delete_history(circ: Circulation, card: str) -> Decision:
    """Delete every saved history entry; ``details["deleted"]`` says how many. Whether
    history keeps being saved does not change."""
    async def work(conn: AsyncConnection) -> Decision:
        p = await patron_by_card(conn, card, lock=True)
        res = await conn.execute(delete(s.bookshelf).where(s.bookshelf.c.patron_id == p.id,
                                                           s.bookshelf.c.shelf == "history"))
        return decide("history_deleted", deleted=res.rowcount)

    return await circ.db.run(work)


# --------------------------------------------------------------------------- reading marathon

async def set_reading_goal(circ: Circulation, card: str, goal: int | None) -> Decision:
    """Set the yearly reading goal (books), or clear it with None."""
    if goal is not None and (isinstance(goal, bool) or not isinstance(goal, int) or not 1 <= goal <= GOAL_MAX):
        return decide("goal_invalid", max=GOAL_MAX)

    async def work(conn: AsyncConnection) -> Decision:
        p = await patron_by_card(conn, card, lock=True)
        await conn.execute(update(s.patrons).where(s.patrons.c.id == p.id).values(reading_goal=goal))
        return decide("goal_set", goal=goal) if goal is not None else decide("goal_cleared")

    return await circ.db.run(work)


async def reading_progress(circ: Circulation, card: str, year: int) -> dict:
    """``{"year", "goal", "done", "by_month": [12 counts], "percent"}`` for the graph:
    distinct titles lent to the patron in ``year``, each in the month of its first loan."""
    start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    async with circ.db.read() as conn:
        p = await patron_by_card(conn, card)
        rows = (await conn.execute(
            select(s.items.c.title_id, func.min(s.loans.c.lent_at).label("first"))
            .join(s.items, s.items.c.id == s.loans.c.item_id)
            .where(s.loans.c.patron_id == p.id, s.loans.c.lent_at >= start, s.loans.c.lent_at < end)
            .group_by(s.items.c.title_id))).all()
    by_month = [0] * 12
    for r in rows:
        first = r.first if isinstance(r.first, datetime) else datetime.fromisoformat(str(r.first))
        by_month[first.month - 1] += 1
    done = sum(by_month)
    goal = p.reading_goal
    return {"year": year, "goal": goal, "done": done, "by_month": by_month,
            "percent": (min(100, done * 100 // goal) if goal else None)}


# --------------------------------------------------------------------------- settings

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


def email_syntax_ok(address: str) -> bool:
    """A plain check (ASCII local part and domain, one @, a dot in the domain, no
    leading/trailing/double dots in the local part); the test mail proves delivery."""
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        return False
    local = address.rsplit("@", 1)[0]
    return len(local) <= 64 and not (local.startswith(".") or local.endswith(".") or ".." in local)


def undeliverable_domain(profile: Profile, address: str) -> str | None:
    """The profile's undeliverable domain this address is at ("hotmail" for
    someone@hotmail.co.jp), or None."""
    domain = address.rsplit("@", 1)[-1].lower()
    for d in profile.notices.undeliverable_domains:
        if domain == d or domain.startswith(d + "."):
            return d
    return None


def pickup_problem(profile: Profile, branch: str) -> Decision | None:
    """Refusal when ``branch`` is not a pickup service point of the profile's system."""
    b = profile.branch(branch)
    if b is None or not b.pickup:
        return decide("pickup_not_service_point", branch=branch,
                      choices=sorted(c for c, bc in profile.branches.items() if bc.branch.pickup))
    return None


async def update_settings(circ: Circulation, *, card: str, email: str | None = None,
                          locale: str | None = None, default_pickup_branch: str | None = None,
                          default_contact_method: str | None = None,
                          new_book_alerts: bool | None = None,
                          update_live_holds: bool = False) -> Decision:
    """Change the patron's settings; None leaves a setting as it is, ``email=""``
    removes the address (削除する). Nothing is stored unless every given value is valid.
    ``update_live_holds`` (登録済み予約の連絡先も…変更する): after the settings are saved,
    the patron's holds not yet secured take the new contact method
    (:func:`circulation.holds.update_patron_requests`, which logs each change and queues
    a hold_changed notice). Only the contact method: the seed says a hold's pickup
    place is changed by cancelling and placing it again. ``details["changed"]`` lists
    the settings that changed, ``details["holds_updated"]`` the number of holds."""
    if email is not None:
        email = email.strip()
        if email and not email_syntax_ok(email):
            return decide("email_invalid")
    if locale is not None and locale not in LOCALES:
        return decide("locale_invalid", locales=list(LOCALES))

    async def work(conn: AsyncConnection) -> Decision:
        p = await patron_by_card(conn, card, lock=True)
        profile = circ.profile(p.library)
        changes: dict = {}
        if email is not None:
            changes["email"] = email or None
        if default_pickup_branch is not None:
            problem = pickup_problem(profile, default_pickup_branch)
            if problem is not None:
                return problem
            changes["default_pickup_branch"] = default_pickup_branch
        method = default_contact_method if default_contact_method is not None else p.default_contact_method
        if default_contact_method is not None:
            ok = policies.contact_method_ok(profile, patron_contact(p, email=changes.get("email", p.email)), method)
            if not ok.allowed:
                return ok
            changes["default_contact_method"] = method
        elif "email" in changes and changes["email"] is None and method == "email":
            return decide("email_needed_for_contact")
        if locale is not None:
            changes["locale"] = locale
        if new_book_alerts is not None:
            changes["new_book_alerts"] = bool(new_book_alerts)
        changed = [k for k, v in changes.items() if getattr(p, k) != v]
        if changed:
            await conn.execute(update(s.patrons).where(s.patrons.c.id == p.id)
                               .values(**{k: changes[k] for k in changed}))
        warn = undeliverable_domain(profile, changes["email"]) if changes.get("email") else None
        if warn:
            return decide("email_domain_warning", domain=warn, changed=changed)
        return decide("settings_updated", changed=changed)

    d = await circ.db.run(work)
    holds_updated = 0
    if d.allowed and update_live_holds and default_contact_method is not None:
        holds_updated = await holds.update_patron_requests(
            circ, card=card, contact_method=default_contact_method, role="patron", actor=card)
    return decide(d.code, **d.details, holds_updated=holds_updated) if d.allowed else d


# --------------------------------------------------------------------------- calendar

async def patron_calendar(circ: Circulation, card: str, month: date) -> dict:
    """The calendar page for the month containing ``month``: for every branch of the
    patron's system its closed days (opening hours of the profile, weekly closing days,
    published closed days), the events (``calendar_entries`` of kind event) and the due
    dates of the patron's current loans.

    ``{"month": "YYYY-MM", "branches": {code: {"name", "closed_days": [date]}},
    "events": [{"branch", "day", "title"}], "due_dates": [{"day", "loan_id", "title_id",
    "barcode", "branch"}]}``"""
    first = month.replace(day=1)
    last = first.replace(day=_calendar.monthrange(first.year, first.month)[1])
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    async with circ.db.read() as conn:
        p = await patron_by_card(conn, card)
        profile = circ.profile(p.library)
        branches: dict = {}
        for code, bc in profile.branches.items():
            cal = await circ.calendar(conn, code)
            branches[code] = {"name": bc.branch.name, "closed_days": [d for d in days if not cal.is_open(d)]}
        events = (await conn.execute(
            select(s.calendar_entries.c.branch, s.calendar_entries.c.day, s.calendar_entries.c.title)
            .where(s.calendar_entries.c.branch.in_(list(profile.branches)),
                   s.calendar_entries.c.kind == "event",
                   s.calendar_entries.c.day >= first, s.calendar_entries.c.day <= last)
            .order_by(s.calendar_entries.c.day, s.calendar_entries.c.branch))).all()
        dues = (await conn.execute(
            select(s.loans.c.id, s.loans.c.due, s.loans.c.branch, s.items.c.title_id, s.items.c.barcode)
            .join(s.items, s.items.c.id == s.loans.c.item_id)
            .where(s.loans.c.patron_id == p.id, s.loans.c.returned_at.is_(None),
                   s.loans.c.due >= first, s.loans.c.due <= last)
            .order_by(s.loans.c.due, s.loans.c.id))).all()
    return {
        "month": f"{first:%Y-%m}",
        "branches": branches,
        "events": [{"branch": e.branch, "day": e.day, "title": e.title} for e in events],
        "due_dates": [{"day": d.due, "loan_id": d.id, "title_id": d.title_id, "barcode": d.barcode,
                       "branch": d.branch} for d in dues],
    }
