"""Group cards on the database (団体貸出, Hiroshima): registering group and school grade
cards, extending a card for another year, and lending a reading-group set (読書会用図書)
as a whole.

Rules are pure (:mod:`lifecycle.policies`: ``card_expiry``, ``card_extension``,
``can_register_group``, ``can_check_out_set``); a refusal is a Decision, never an
exception. Unknown cards and set codes raise :class:`circulation.store.NotFound`.

Readings and choices
--------------------
* **Validity** (利用券の有効期間はお申込み時から1年間): ``patrons.card_expires`` is the last
  valid day, registration day + ``cards.<category>.valid_years`` - 1 day. After it
  loans, renewals and new holds are refused with ``card_expired``; returns are not.
* **Extension** (確認…これにより、利用券はさらに1年間有効): staff confirm the group
  (representative, activity; the note is kept in the audit) and :func:`extend_card`
  moves the expiry one more year on from the old expiry, or from the confirmation day
  when the card had already lapsed (``extend_from``); audited as CARD_EXTENDED.
* **School grade cards** (利用券は学年で1枚, 代表者は学年主任): category ``school`` with
  ``patrons.school`` / ``grade`` (compared after NFKC and trimming); a second card for
  a school grade that still has an unexpired one is refused
  (``school_grade_card_exists``), at registration and at extension. On PostgreSQL a
  transaction advisory lock on (library, school, grade) serializes two registrations
  of the same grade (SQLite serializes writers anyway).
* **Reading-group sets**: all copies with the set's ``items.set_code`` are lent in one
  unit of work, each as its own loan (so each counts against the card's 50 and each
  goes back copy by copy through ``loans.check_in``), or none is.
"""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import date

from sqlalchemy import insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import policies
from lifecycle.item_table import ItemEvent, ItemStatus
from lifecycle.loan_table import LoanState
from lifecycle.model import Decision
from lifecycle.reasons import decide
from lifecycle.table import Role

from . import schema as s
from .reads import patron_snapshot
from .service import Circulation
from .store import (
    ConcurrentChange,
    NotFound,
    get_row,
    is_unique_violation,
    item_record,
    item_transition,
    lock_one,
    lock_rows,
    open_loan,
    patron_contact,
    record_event,
)


@dataclass(frozen=True)
class RegistrationResult:
    patron_id: int | None
    card_expires: date | None
    decision: Decision


@dataclass(frozen=True)
class ExtensionResult:
    card_expires: date | None
    decision: Decision


@dataclass(frozen=True)
class SetCheckOutResult:
    loan_ids: tuple[int, ...]
    due: date | None
    decision: Decision


def _norm(value: str | None) -> str | None:
    if value is None:
        return None
    v = unicodedata.normalize("NFKC", value).strip()
    return v or None


async def _lock_grade(conn: AsyncConnection, library: str, school: str, grade: str) -> None:
    """Serialize registrations of one school grade (PostgreSQL advisory lock, released at
    commit); SQLite already holds the writer lock."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"school-card|{library}|{school}|{grade}".encode()).digest()
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                       {"k": int.from_bytes(digest[:8], "big", signed=True)})


async def _live_grade_card(conn: AsyncConnection, library: str, school: str, grade: str,
                           today: date, *, other_than: int | None = None) -> str | None:
    """The card number of an unexpired card of this school grade, if any."""
    p = s.patrons.c
    q = (select(p.card_number).where(
        p.library == library, p.school == school, p.grade == grade,
        or_(p.card_expires.is_(None), p.card_expires >= today))
        .order_by(p.id))
    if other_than is not None:
        q = q.where(p.id != other_than)
    return (await conn.execute(q)).scalars().first()


# --------------------------------------------------------------------------- registration

async def register(circ: Circulation, *, card: str, library: str, category: str, name: str,
                   home_municipality: str, role, actor: str, branch: str | None = None,
                   school: str | None = None, grade: str | None = None,
                   representative: str | None = None, email: str | None = None,
                   phone: str | None = None, fax: str | None = None) -> RegistrationResult:
    """Register a group card (団体貸出用の利用券) or a school grade card at ``branch``.

    ``home_municipality`` is where the group is based (活動拠点). Refusals:
    ``group_not_in_area``, ``school_grade_card_exists``, ``card_number_taken``. A
    category without ``[cards.<category>]`` rules, or a school grade card without
    school and grade, is a ValueError. Audited as CARD_REGISTERED."""
    role = Role(role)
    profile = circ.profile(library)
    rule = profile.cards.get(category)
    if rule is None:
        raise ValueError(f"{library}: {category!r} has no [cards] rules: not a group card category")
    school, grade = _norm(school), _norm(grade)
    if rule.one_per_school_grade and (school is None or grade is None):
        raise ValueError("a school grade card needs school= and grade=")

    async def work(conn: AsyncConnection) -> RegistrationResult:
        now = circ.now()
        live = None
        if rule.one_per_school_grade:
            await _lock_grade(conn, library, school, grade)
            live = await _live_grade_card(conn, library, school, grade, now.date())
        decision = policies.can_register_group(profile, category, home_municipality,
                                               live_grade_card=live)
        if not decision.allowed:
            return RegistrationResult(None, None, decision)
        taken = (await conn.execute(select(s.patrons.c.id).where(s.patrons.c.card_number == card))).first()
        if taken is not None:
            return RegistrationResult(None, None, decide("card_number_taken", card=card))
        expires = policies.card_expiry(profile, category, now.date())
        try:
            async with conn.begin_nested():
                res = await conn.execute(insert(s.patrons).values(
                    card_number=card, library=library, name=name, category=category,
                    home_municipality=home_municipality, email=email, phone=phone, fax=fax,
                    school=school, grade=grade, representative=representative,
                    card_expires=expires, created_at=now))
        except IntegrityError as e:
            if not is_unique_violation(e):
                raise
            return RegistrationResult(None, None, decide("card_number_taken", card=card))
        pid = res.inserted_primary_key[0]
        what = f"{category} card" + (f" for {school} {grade}" if school else "")
        await record_event(conn, at=now, event="CARD_REGISTERED", actor_role=role.value, actor=actor,
                           patron_id=pid, to_state=expires.isoformat() if expires else None,
                           channel="counter", branch=branch,
                           reason=f"{what}, valid through {expires.isoformat() if expires else '-'}")
        return RegistrationResult(pid, expires, decide("ok", expires=expires))

    return await circ.db.run(work)


async def extend_card(circ: Circulation, *, card: str, role, actor: str, branch: str | None = None,
                      confirmed: str = "", representative: str | None = None) -> ExtensionResult:
    """Extend a card for another period after staff re-confirmed the group
    (``confirmed``: what was checked, e.g. 代表者変更なし・活動実態確認; ``representative``:
    a new 代表者). ``policies.card_extension`` gives the new expiry; refusals
    ``card_not_extendable``, ``card_extension_too_early`` and, for a school grade
    that meanwhile got another card, ``school_grade_card_exists``. Audited as
    CARD_EXTENDED (from the old to the new expiry)."""
    role = Role(role)

    async def work(conn: AsyncConnection) -> ExtensionResult:
        now = circ.now()
        first = await get_row(conn, s.patrons, s.patrons.c.card_number == card,
                              what=f"no patron with card {card!r}")
        profile = circ.profile(first.library)
        rule = profile.cards.get(first.category)
        if rule is not None and rule.one_per_school_grade and first.school and first.grade:
            await _lock_grade(conn, first.library, first.school, first.grade)
        patron = await lock_one(conn, s.patrons, s.patrons.c.id == first.id)
        decision = policies.card_extension(profile, patron.category, patron.card_expires, now.date())
        if not decision.allowed:
            return ExtensionResult(None, decision)
        if rule.one_per_school_grade and patron.school and patron.grade:
            other = await _live_grade_card(conn, patron.library, patron.school, patron.grade,
                                           now.date(), other_than=patron.id)
            if other is not None:
                return ExtensionResult(None, decide("school_grade_card_exists", card=other))
        new = decision.details["expires"]
        values = {"card_expires": new}
        if representative is not None:
            values["representative"] = representative
        res = await conn.execute(update(s.patrons).where(
            s.patrons.c.id == patron.id,
            s.patrons.c.card_expires == patron.card_expires).values(**values))
        if res.rowcount != 1:
            raise ConcurrentChange(f"card {card} changed")
        reason = f"valid through {new.isoformat()}"
        if confirmed:
            reason += f"; confirmed: {confirmed}"
        if representative is not None and representative != patron.representative:
            reason += f"; representative {patron.representative or '-'} -> {representative}"
        await record_event(conn, at=now, event="CARD_EXTENDED", actor_role=role.value, actor=actor,
                           patron_id=patron.id, from_state=patron.card_expires.isoformat(),
                           to_state=new.isoformat(), channel="counter", branch=branch, reason=reason)
        return ExtensionResult(new, decision)

    return await circ.db.run(work)


# --------------------------------------------------------------------------- 読書会用図書

async def check_out_set(circ: Circulation, *, set_code: str, card: str, branch: str, role,
                        actor: str) -> SetCheckOutResult:
    """Lend every copy of the reading-group set ``set_code`` to a group or school card at
    ``branch``, one loan per copy, in one unit of work: all or nothing.

    Refusals (nothing written): ``card_not_valid_here``, ``card_expired``,
    ``card_not_for_mobile``, and ``policies.can_check_out_set``'s
    ``reading_set_category`` (individual and mobile cards), ``reading_set_lend_at``,
    ``reading_set_incomplete`` (a copy on loan, in transit, held, lost or missing;
    ``details['missing']``), ``loan_limit`` (the copies do not fit in the card's
    limit). Events: CHECK_OUT per copy and SET_CHECK_OUT for the patron."""
    role = Role(role)
    profile = circ.profile_of_branch(branch)

    async def work(conn: AsyncConnection) -> SetCheckOutResult:
        now = circ.now()
        first = (await conn.execute(select(s.items.c.title_id).where(s.items.c.set_code == set_code)
                                    .distinct())).scalars().all()
        if not first:
            raise NotFound(f"no reading-group set {set_code!r}")
        for title_id in sorted(first):      # lock order: title queues, items, patron
            await lock_one(conn, s.title_queues, s.title_queues.c.title_id == title_id)
        copies = await lock_rows(conn, s.items, s.items.c.set_code == set_code, order_by=s.items.c.id)
        patron = await lock_one(conn, s.patrons, s.patrons.c.card_number == card)
        if patron is None:
            raise NotFound(f"patron {card!r}")
        if patron.library != profile.system:
            return SetCheckOutResult((), None, decide("card_not_valid_here", library=patron.library))
        usable = policies.card_usable_at(profile, patron_contact(patron), branch, now)
        if not usable.allowed:
            return SetCheckOutResult((), None, usable)
        ids = [c.id for c in copies]
        lent = set((await conn.execute(select(s.loans.c.item_id).where(
            s.loans.c.item_id.in_(ids), s.loans.c.returned_at.is_(None)))).scalars())
        secured = set((await conn.execute(select(s.requests.c.item_id).where(
            s.requests.c.item_id.in_(ids), s.requests.c.state.in_(s.SECURED_STATES)))).scalars())
        records = [item_record(c, on_loan=(c.status != ItemStatus.AVAILABLE.value or c.id in lent or c.id in secured
                                           or c.library != profile.system))
                   for c in copies]
        snapshot = await patron_snapshot(conn, patron)
        decision = policies.can_check_out_set(profile, snapshot, records, branch, now)
        if not decision.allowed:
            return SetCheckOutResult((), None, decision)
        due = (await circ.calendar(conn, branch)).next_open_day(decision.details["due"])
        loan_ids = []
        for c in copies:
            loan_id = await open_loan(conn, item_id=c.id, patron_id=patron.id, branch=branch,
                                      channel="counter", at=now, due=due, role=role, actor=actor,
                                      reason=f"due {due.isoformat()}, reading set {set_code}")
            if loan_id is None:
                raise ConcurrentChange(f"copy {c.barcode} of set {set_code} was lent meanwhile")
            loan_ids.append(loan_id)
            await item_transition(conn, c, ItemEvent.LEND, at=now, current_branch=branch)
        await record_event(conn, at=now, event="SET_CHECK_OUT", actor_role=role.value, actor=actor,
                           patron_id=patron.id, to_state=LoanState.ON_LOAN.value, channel="counter", branch=branch,
                           reason=f"reading set {set_code}: {len(loan_ids)} copies, due {due.isoformat()}")
        return SetCheckOutResult(tuple(loan_ids), due, decide("ok", due=due, copies=len(loan_ids)))

    return await circ.db.run(work)
