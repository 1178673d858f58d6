"""The notice outbox: queueing, templates, suppression and dispatch.

Queueing
--------
:func:`enqueue` writes a notice row in the caller's transaction (so a notice exists
if and only if the transition that causes it committed). ``dedupe_key`` makes it
idempotent: the same key is queued once, whatever retries or re-runs happen.

Kinds: hold_received, hold_ready, hold_cancelled, hold_changed, renewal_done,
password_registered, test_mail.

Templates
---------
``config/notices/<kind>.<lang>.txt`` (Jinja2, ``ja`` and ``en``): first line
``Subject: ...``, a blank line, then the body. The patron's ``locale`` picks the
language; anything but ``en`` gets Japanese. Every kind must have both files
(:func:`templates` checks at load time) and every variable a template uses must be
supplied (``StrictUndefined``): a broken template fails the notice with the error in
``last_error``, it never produces a blank or half-filled mail. Template variables
come from the patron, request and loan rows (title, branch names, shelf deadline,
due date, cancel reason and channel), overridden by the notice's ``data`` JSON.

Suppression
-----------
Decided when the dispatcher claims a notice (so a contact method changed after
queueing counts), by :func:`lifecycle.profiles.notice_suppression` with the
profile's ``[notices]`` rules: 連絡不要 (``none``) suppresses the kinds listed in
``suppressed_when_no_contact``; phone/fax/postcard contact suppresses mail (hold-ready
notices then appear on the branch's :func:`call_list`); so do a missing address and
an address at a domain the library's mail does not reach. Hold kinds use the hold's
contact method, the others the patron's default. A suppressed notice has status
``suppressed`` and the reason in ``last_error``.

Dispatch: at most once
----------------------
:func:`dispatch_due` claims due notices (``pending``, ``next_attempt_at <= now``,
oldest first, which is allocation order for hold-ready notices) in a short
transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent dispatchers
take disjoint rows; SQLite serializes writers), marks them ``sending`` with a lease
(``claimed_until``) and a Message-ID derived from the notice id
(``<notice-{id}@{domain}>``), commits, then sends each one over SMTP in order,
outside any transaction, and records the outcome in its own short transaction:

* accepted → ``sent`` (``sent_at``, ``message_id``); a hold-ready mail also records that
  the patron was told (:func:`record_contact`);
* transient failure (4xx, connection refused, timeout) → ``pending`` again with
  ``attempts + 1`` and ``next_attempt_at = now + backoff`` (1, 2, 4, ... minutes,
  at most 6 hours), or ``failed`` once ``max_attempts`` is reached;
* permanent failure (5xx) → ``failed`` with ``last_error``.

A notice still ``sending`` after its lease means the dispatcher died between claiming
and recording the outcome: the mail may or may not have left. Such a notice is **not**
sent again automatically; it becomes ``failed`` with a ``last_error`` saying so, and
staff decide (:func:`requeue` puts it back; the resent copy carries the same
Message-ID, so mail software can recognise a duplicate). The one duplicate this
design cannot rule out is SMTP's own: the connection dropping after the server took
the message but before it answered is reported as a transient error and retried.

Contact (連絡日)
---------------
A hold is *contacted* when the patron is really told it is ready: its hold-ready mail was
accepted by the mail server, or staff reached the patron by phone, fax or postcard
(:func:`record_call`, from the branch's :func:`call_list`). :func:`record_contact` sets
``requests.contacted_at`` then (the first contact counts) and recomputes the shelf
deadline by the profile's rule: Komae counts the shelf period from the contact day
(連絡日から1週間; ``shelf.start = "contact_or_allocation"``), so a mail that could only go
out two days after the trap moves the deadline two days; Iizuka and Hiroshima count
from the trap and keep theirs. The mail says the deadline that holds once it is sent:
it is composed (and dated) when the dispatcher claims it, and that moment is the
contact time recorded when the server accepts it.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from config import locate
from connectors.smtp import MailError
from lifecycle import policies
from lifecycle.profiles import (
    NOTICE_KINDS,
    REQUEST_NOTICE_KINDS,
    NoticeRules,
    notice_suppression,
)
from lifecycle.reasons import CANCEL_REASONS, REASONS
from lifecycle.table import State

from . import schema as s
from .labels import CHANNEL_LABELS, CONTACT_LABELS
from .prepared import execute as run_prepared
from .store import INSERT_NOTICE, NotFound, dumps, lock_title_queue, record_event, request_row

log = logging.getLogger("unioncat.circulation.notices")

KINDS = ("hold_received", "hold_ready", "hold_cancelled", "hold_changed", "renewal_done",
         "password_registered", "test_mail", "loan_recalled", "loan_overdue", "renewal_refused")
assert frozenset(KINDS) == NOTICE_KINDS
LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"

LEASE_MARGIN = timedelta(seconds=60)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)
STALE_ERROR = ("the dispatcher stopped while sending (lease expired at {until}); the mail may "
               "or may not have been delivered, so it is not resent automatically: requeue it "
               "to send it again")


async def enqueue(conn: AsyncConnection, *, kind: str, patron_id: int, dedupe_key: str,
                  at: datetime, request_id: int | None = None, loan_id: int | None = None,
                  data: dict | None = None) -> None:
    """Queue one notice (once per ``dedupe_key``) in the current transaction."""
    values = pending(kind, patron_id=patron_id, dedupe_key=dedupe_key, at=at, request_id=request_id,
                     loan_id=loan_id, data=data)
    await run_prepared(conn, INSERT_NOTICE[conn.dialect.name == "postgresql"], values)


def pending(kind: str, *, patron_id: int, dedupe_key: str, at: datetime, request_id: int | None = None,
            loan_id: int | None = None, data: dict | None = None) -> dict:
    """The outbox row :func:`enqueue` inserts (for a caller that writes it with its own
    statement, e.g. ``store.new_request``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    return dict(dedupe_key=dedupe_key, kind=kind, patron_id=patron_id, request_id=request_id,
                loan_id=loan_id, data=dumps(data or {}), status="pending", attempts=0,
                next_attempt_at=at, created_at=at)




def hold_data(circ, row, **extra) -> dict:
    """The ``data`` of a hold notice (hold_received, hold_ready, hold_cancelled,
    hold_changed) about request ``row``: its title, pickup branch and name, contact
    method and kind, and ``extra`` (reason, channel, shelf deadline, barcode ...)."""
    return {"title": row.title, "title_id": row.title_id, "pickup_branch": row.pickup_branch,
            "pickup_name": circ.branch_name(row.pickup_branch), "contact_method": row.contact_method,
            "kind": row.kind, **extra}


# --------------------------------------------------------------------------- contact

async def _deadline_if_told(circ, conn: AsyncConnection, request, at: datetime):
    """The shelf deadline of ``request`` (a row on the hold shelf) if the patron is told at
    ``at``, by the profile's rule (the first contact counts)."""
    cal = await circ.calendar(conn, request.pickup_branch)
    return policies.shelf_deadline(circ.profile(request.library), cal, request.ready_at,
                                   request.contacted_at or at)


def _waiting_on_shelf(row) -> bool:
    return row is not None and row.state == State.ON_HOLD_SHELF.value and not row.delivery


async def record_contact(circ, conn: AsyncConnection, request_id: int, at: datetime, *, how: str,
                         actor_role: str, actor: str):
    """The patron of hold ``request_id`` was told at ``at`` that it is ready (``how``: what
    told them): ``contacted_at`` (when not contacted before) and the shelf deadline by the
    profile's rule, with a CONTACTED audit row. Returns the request row as it is now, or
    None when the hold is no longer waiting on its shelf (then nothing changes)."""
    row = (await conn.execute(select(s.requests).where(s.requests.c.id == request_id))).first()
    if not _waiting_on_shelf(row):
        return None
    await lock_title_queue(conn, row.title_id)           # the lock order of every hold change
    row = await request_row(conn, request_id, lock=True)
    if not _waiting_on_shelf(row):
        return None
    if row.contacted_at is not None:
        return row
    deadline = await _deadline_if_told(circ, conn, row, at)
    await conn.execute(update(s.requests).where(s.requests.c.id == request_id)
                       .values(contacted_at=at, shelf_deadline=deadline))
    await record_event(conn, at=at, event="CONTACTED", actor_role=actor_role, actor=actor,
                       request_id=request_id, branch=row.pickup_branch,
                       reason=f"{how}; shelf deadline {deadline.isoformat()}")
    return await request_row(conn, request_id)


@dataclass(frozen=True)
class Contacted:
    request_id: int
    contacted_at: datetime
    shelf_deadline: date | None


async def record_call(circ, request_id: int, *, actor: str, note: str = "") -> Contacted:
    """Staff reached the patron of hold ``request_id`` (on the call list: contact by phone,
    fax or postcard) and told them it is ready: :func:`record_contact` now (``note``: what
    was said, for the audit row). Recording it again changes nothing (the first contact
    counts). NotFound when the hold is not waiting on a hold shelf."""
    async def work(conn):
        how = "staff told the patron" + (f" ({note})" if note else "")
        row = await record_contact(circ, conn, request_id, circ.now(), how=how, actor_role="staff",
                                   actor=actor)
        if row is None:
            raise NotFound(f"request {request_id} is not waiting on a hold shelf")
        return Contacted(row.id, row.contacted_at, row.shelf_deadline)
    return await circ.db.run(work)


# --------------------------------------------------------------------------- templates

class NoticeError(Exception):
    """A notice cannot be rendered: missing template, variable or value."""


WEEKDAYS_JA = "月火水木金土日"


def _as_datetime(v, zone=None) -> datetime:
    """A value of the notice as the service's local time: a naive time is local already,
    an aware one (a snapshot written with its offset) is shown in ``zone``."""
    if isinstance(v, datetime):
        t = v
    elif isinstance(v, date):
        return datetime(v.year, v.month, v.day)
    elif isinstance(v, str):
        try:
            t = datetime.fromisoformat(v)
        except ValueError:
            raise NoticeError(f"not a date and time: {v!r}") from None
    else:
        raise NoticeError(f"not a date and time: {v!r}")
    if t.tzinfo is not None:
        if zone is None:
            raise NoticeError(f"no time zone to show {v!r} in")
        t = t.astimezone(zone).replace(tzinfo=None)
    return t


def _as_date(v, zone=None) -> date:
    if isinstance(v, date) and not isinstance(v, datetime):
        return v
    if isinstance(v, str) and len(v) == 10:
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise NoticeError(f"not a date: {v!r}") from None
    try:
        return _as_datetime(v, zone).date()
    except NoticeError:
        raise NoticeError(f"not a date: {v!r}") from None


def date_ja(v, zone=None) -> str:
    d = _as_date(v, zone)
    return f"{d.year}年{d.month}月{d.day}日({WEEKDAYS_JA[d.weekday()]})"


def date_en(v, zone=None) -> str:
    d = _as_date(v, zone)
    return f"{d:%a} {d.day} {d:%b %Y}"


def datetime_ja(v, zone=None) -> str:
    t = _as_datetime(v, zone)
    return f"{date_ja(t)} {t:%H:%M}"


def datetime_en(v, zone=None) -> str:
    t = _as_datetime(v, zone)
    return f"{date_en(t)}, {t:%H:%M}"


def _in_zone(f):
    """``f`` as a template filter: the service's zone comes with the context (``zone``)."""
    return jinja2.pass_context(lambda ctx, v: f(v, ctx.get("zone")))


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    language: str


class Templates:
    """The notice templates of one directory, all loaded and checked up front."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else locate("notices")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.directory)), undefined=jinja2.StrictUndefined,
            autoescape=False, keep_trailing_newline=True, trim_blocks=True)
        self.env.filters.update(date_ja=_in_zone(date_ja), date_en=_in_zone(date_en),
                                datetime_ja=_in_zone(datetime_ja), datetime_en=_in_zone(datetime_en))
        self._templates: dict[tuple[str, str], jinja2.Template] = {}
        problems = []
        for kind in KINDS:
            for lang in LANGUAGES:
                name = f"{kind}.{lang}.txt"
                try:
                    self._templates[kind, lang] = self.env.get_template(name)
                except jinja2.TemplateNotFound as e:
                    problems.append(f"missing template {self.directory / name}"
                                    + ("" if e.name == name else f" (includes missing {e.name})"))
                except jinja2.TemplateSyntaxError as e:
                    problems.append(f"{self.directory / name}, line {e.lineno}: {e.message}")
        if problems:
            raise NoticeError("; ".join(problems))

    def render(self, kind: str, language: str, context: dict[str, Any]) -> Rendered:
        """Subject and body of ``kind`` in ``language`` (Japanese when the language has
        no templates). Raises :class:`NoticeError` on an undefined variable or a result
        without a subject or body."""
        lang = language if language in LANGUAGES else DEFAULT_LANGUAGE
        try:
            template = self._templates[kind, lang]
        except KeyError:
            raise NoticeError(f"unknown notice kind {kind!r}") from None
        try:
            text = template.render(**context)
        except jinja2.UndefinedError as e:
            raise NoticeError(f"{kind}.{lang}.txt: {e.message}") from None
        except NoticeError as e:
            raise NoticeError(f"{kind}.{lang}.txt: {e}") from None
        head, sep, body = text.partition("\n\n")
        if not sep or not head.startswith("Subject:") or "\n" in head:
            raise NoticeError(f"{kind}.{lang}.txt: expected 'Subject: ...', a blank line, then the body")
        subject = head[len("Subject:"):].strip()
        body = body.strip("\n") + "\n"
        if not subject or not body.strip():
            raise NoticeError(f"{kind}.{lang}.txt: empty subject or body")
        return Rendered(subject, body, lang)


@lru_cache(maxsize=4)
def templates(directory: str | None = None) -> Templates:
    return Templates(directory)


def language_of(locale: str | None) -> str:
    lang = (locale or "").split("-")[0].split("_")[0].lower()
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


# Values each kind cannot do without (None = missing), besides addressee and library_name.
REQUIRED = {
    "hold_received": ("title", "pickup_branch_name", "placed_at", "contact_label"),
    "hold_ready": ("title", "pickup_branch_name", "shelf_deadline"),
    "hold_cancelled": ("title", "pickup_branch_name", "cancelled_at", "reason_label", "channel_label"),
    "hold_changed": ("title", "pickup_branch_name", "contact_label"),
    "renewal_done": ("title", "due"),
    "loan_recalled": ("title", "due"),
    "loan_overdue": ("title", "due"),
    "renewal_refused": ("title", "due"),
    "password_registered": ("card_number", "notice_at"),
    "test_mail": ("email",),
}


def _label(table: dict, code, lang: str, fallback: str | None = None):
    if code is None:
        return fallback
    pair = table.get(code)
    if pair is None:
        return str(code)
    return pair[0] if lang == "ja" else pair[1]


def _reason_label(reason, lang: str) -> str:
    if not reason:
        return "—"
    if reason in CANCEL_REASONS:
        return _label(CANCEL_REASONS, reason, lang)
    if reason in REASONS:
        return REASONS[reason][0 if lang == "ja" else 1]
    return str(reason)


# --------------------------------------------------------------------------- rows → context

@dataclass
class _Loaded:
    """A notice with the rows its rendering and suppression need."""
    notice: Any
    patron: Any
    request: Any | None
    loan: Any | None
    data: dict
    library_name: str
    rules: NoticeRules
    visible_days: int
    branch_names: dict[str, str]
    loan_title: str | None
    zone: Any = None              # the service's time zone (aware values are shown in it)


async def _load(conn: AsyncConnection, circ, notice) -> _Loaded:
    patron = (await conn.execute(select(s.patrons).where(s.patrons.c.id == notice.patron_id))).first()
    if patron is None:
        raise NoticeError(f"notice {notice.id}: patron {notice.patron_id} not found")
    request = loan = None
    if notice.request_id is not None:
        request = (await conn.execute(select(s.requests).where(s.requests.c.id == notice.request_id))).first()
    if notice.loan_id is not None:
        loan = (await conn.execute(select(s.loans).where(s.loans.c.id == notice.loan_id))).first()
    try:
        data = json.loads(notice.data or "{}")
    except ValueError as e:
        raise NoticeError(f"notice {notice.id}: data is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise NoticeError(f"notice {notice.id}: data is not a JSON object")
    lib = (await conn.execute(select(s.libraries).where(s.libraries.c.code == patron.library))).first()
    library_name = lib.name if lib is not None else patron.library
    rules, visible_days = NoticeRules(), 30
    prof = circ.profiles.get(lib.profile if lib is not None and lib.profile else patron.library)
    if prof is not None:
        rules, visible_days = prof.notices, prof.cancel.visible_days
    codes = {c for c in (data.get("pickup_branch"), request.pickup_branch if request else None,
                         loan.branch if loan else None) if c}
    names = {}
    if codes:
        names = {r.code: r.name for r in (await conn.execute(
            select(s.branches.c.code, s.branches.c.name).where(s.branches.c.code.in_(codes)))).all()}
    loan_title = None
    if loan is not None:
        if loan.request_id is not None:
            loan_title = (await conn.execute(select(s.requests.c.title)
                                             .where(s.requests.c.id == loan.request_id))).scalar()
        if not loan_title:
            item = (await conn.execute(select(s.items).where(s.items.c.id == loan.item_id))).first()
            if item is not None:
                loan_title = (await conn.execute(select(s.title_queues.c.title).where(
                    s.title_queues.c.title_id == item.title_id))).scalar()
                loan_title = loan_title or " ".join(x for x in (item.call_number, item.barcode) if x)
    return _Loaded(notice, patron, request, loan, data, library_name, rules, visible_days, names,
                   loan_title, circ.clock.tz)


def _contact_method(ld: _Loaded) -> str:
    """The hold's current contact method for hold notices (the snapshot in ``data``
    when the request row is gone), the patron's default for the others."""
    if ld.notice.kind in REQUEST_NOTICE_KINDS:
        if ld.request is not None:
            return ld.request.contact_method
        if ld.data.get("contact_method"):
            return ld.data["contact_method"]
    return ld.patron.default_contact_method or "none"


def _context(ld: _Loaded, lang: str) -> dict[str, Any]:
    n, p, r, loan, data = ld.notice, ld.patron, ld.request, ld.loan, ld.data
    pickup = data.get("pickup_branch") or (r.pickup_branch if r is not None else None)
    cancel_channel = data.get("channel") or (r.cancel_channel if r is not None else None)
    reason = data.get("reason") or (r.cancel_reason if r is not None else None)
    ctx: dict[str, Any] = {
        "kind": n.kind, "zone": ld.zone,
        "addressee": p.name or (f"利用者番号 {p.card_number}" if lang == "ja"
                                else f"library user (card {p.card_number})"),
        "patron_name": p.name, "card_number": p.card_number, "email": p.email,
        "library_name": ld.library_name, "visible_days": ld.visible_days,
        "notice_at": n.created_at,
        "title": (r.title if r is not None and r.title else None) or ld.loan_title,
        "pickup_branch": pickup,
        "pickup_branch_name": ld.branch_names.get(pickup, pickup) if pickup else None,
        "placed_at": r.placed_at if r is not None else None,
        "shelf_deadline": r.shelf_deadline if r is not None else None,
        "cancelled_at": (r.cancelled_at if r is not None else None) or n.created_at,
        "reason": reason, "reason_label": _reason_label(reason, lang),
        "channel": cancel_channel, "channel_label": _label(CHANNEL_LABELS, cancel_channel, lang, "—"),
        "contact_method": _contact_method(ld),
        "due": loan.due if loan is not None else None,
        "renewals": loan.renewals if loan is not None else None,
        "loan_branch_name": ld.branch_names.get(loan.branch, loan.branch) if loan is not None else None,
        "data": data,
    }
    for k, v in data.items():                 # the notice's own snapshot wins
        if k not in ("data", "kind", "contact_method", "zone") and v is not None:
            ctx[k] = v
    ctx["contact_label"] = _label(CONTACT_LABELS, ctx["contact_method"], lang)
    request_kind = (r.kind if r is not None else data.get("kind")) or "reservation"
    ctx["hold_word"] = {"ja": ("予約", "リクエスト"), "en": ("hold", "request")}[lang][request_kind == "request"]
    missing = [k for k in REQUIRED[n.kind] if ctx.get(k) in (None, "")]
    if missing:
        raise NoticeError(f"notice {n.id} ({n.kind}): no value for {', '.join(missing)}")
    return ctx


def render_loaded(ld: _Loaded, tpl: Templates | None = None) -> Rendered:
    lang = language_of(ld.patron.locale)
    return (tpl or templates()).render(ld.notice.kind, lang, _context(ld, lang))


async def render_notice(circ, notice_id: int) -> Rendered:
    """The mail a notice would send (subject, body, language), without sending it."""
    async with circ.db.read() as conn:
        row = (await conn.execute(select(s.notices).where(s.notices.c.id == notice_id))).first()
        if row is None:
            raise NotFound(f"notice {notice_id}")
        return render_loaded(await _load(conn, circ, row))


def message_id_for(notice_id: int, domain: str) -> str:
    return f"<notice-{notice_id}@{domain}>"


# --------------------------------------------------------------------------- dispatch

@dataclass(frozen=True)
class DispatchCounts:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.retried + self.failed + self.suppressed

    def __add__(self, other: "DispatchCounts") -> "DispatchCounts":
        return DispatchCounts(self.sent + other.sent, self.retried + other.retried,
                              self.failed + other.failed, self.suppressed + other.suppressed)


@dataclass(frozen=True)
class _Outgoing:
    id: int
    to: str
    subject: str
    body: str
    message_id: str
    from_address: str | None
    attempts: int
    kind: str
    request_id: int | None
    composed_at: datetime          # the Date of the mail; for a hold-ready mail, the contact time


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failed tries: 1, 2, 4, ... minutes."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


async def _fail_stale(circ) -> int:
    """``sending`` rows whose lease expired become ``failed`` (never resent by us)."""
    async def work(conn):
        now = circ.now()
        stale = (await conn.execute(
            select(s.notices.c.id, s.notices.c.claimed_until)
            .where(s.notices.c.status == "sending", s.notices.c.claimed_until < now)
            .order_by(s.notices.c.id).with_for_update(skip_locked=True))).all()
        for row in stale:
            await conn.execute(update(s.notices).where(s.notices.c.id == row.id,
                                                      s.notices.c.status == "sending")
                               .values(status="failed", claimed_until=None,
                                       last_error=STALE_ERROR.format(until=row.claimed_until)))
            log.warning("notice %s: lease expired while sending; marked failed, not resent", row.id)
        return len(stale)
    return await circ.db.run(work)


async def _claim(circ, mailer, batch: int, lease: timedelta | None, tpl: Templates):
    async def work(conn):
        now = circ.now()
        rows = (await conn.execute(
            select(s.notices)
            .where(s.notices.c.status == "pending", s.notices.c.next_attempt_at <= now)
            .order_by(s.notices.c.created_at, s.notices.c.id)
            .limit(batch).with_for_update(skip_locked=True))).all()
        outgoing, suppressed, failed = [], 0, 0
        until = now + (lease if lease is not None
                       else LEASE_MARGIN + timedelta(seconds=len(rows) * (mailer.timeout + 5)))
        for n in rows:
            try:
                ld = await _load(conn, circ, n)
                why = notice_suppression(ld.rules, n.kind, _contact_method(ld), ld.patron.email)
                if why is not None:
                    await conn.execute(update(s.notices).where(s.notices.c.id == n.id).values(
                        status="suppressed", claimed_until=None, last_error=f"{why[0]}: {why[1]}"))
                    suppressed += 1
                    continue
                if n.kind == "hold_ready" and _waiting_on_shelf(ld.request):
                    # the deadline that holds once this mail has told the patron
                    ld.data = {**ld.data, "shelf_deadline": await _deadline_if_told(circ, conn, ld.request, now)}
                mail = render_loaded(ld, tpl)
            except NoticeError as e:
                await conn.execute(update(s.notices).where(s.notices.c.id == n.id).values(
                    status="failed", claimed_until=None, last_error=f"render: {e}"))
                log.error("notice %s not sent: %s", n.id, e)
                failed += 1
                continue
            mid = n.message_id or message_id_for(n.id, mailer.message_id_domain)
            await conn.execute(update(s.notices).where(s.notices.c.id == n.id).values(
                status="sending", claimed_until=until, message_id=mid))
            outgoing.append(_Outgoing(n.id, ld.patron.email, mail.subject, mail.body, mid,
                                      ld.rules.from_address, n.attempts, n.kind, n.request_id, now))
        return outgoing, suppressed, failed
    return await circ.db.run(work)


async def _record(circ, out: _Outgoing, error, max_attempts: int) -> str:
    """Write the outcome of one send; returns sent | retried | failed."""
    async def work(conn):
        now = circ.now()
        n = s.notices.c
        if error is None:
            # also over a concurrent "stale" verdict: we know it was delivered
            await conn.execute(update(s.notices).where(n.id == out.id, n.status != "sent").values(
                status="sent", sent_at=now, attempts=out.attempts + 1, claimed_until=None,
                last_error=None, message_id=out.message_id))
            if out.kind == "hold_ready" and out.request_id is not None:
                try:
                    await record_contact(circ, conn, out.request_id, out.composed_at,
                                         how=f"hold_ready mail {out.id} sent", actor_role="system",
                                         actor="notices")
                except NotFound as e:     # its branch left the profiles: the mail went out all the same
                    log.error("notice %s sent, but its contact was not recorded: %s", out.id, e)
            return "sent"
        attempts = out.attempts + 1
        text = str(error)[:2000]
        if error.transient and attempts < max_attempts:
            await conn.execute(update(s.notices).where(n.id == out.id, n.status == "sending").values(
                status="pending", attempts=attempts, claimed_until=None,
                next_attempt_at=now + backoff(attempts), last_error=f"attempt {attempts}: {text}"))
            return "retried"
        verdict = "permanent" if not error.transient else f"gave up after {attempts} attempts"
        await conn.execute(update(s.notices).where(n.id == out.id, n.status == "sending").values(
            status="failed", attempts=attempts, claimed_until=None,
            last_error=f"{verdict}: {text}"))
        return "failed"
    return await circ.db.run(work)


async def dispatch_due(circ, mailer, *, batch: int = 50, max_attempts: int = 6,
                       lease: timedelta | None = None) -> DispatchCounts:
    """Send the due notices (up to ``batch``), oldest first; see the module docstring.
    ``lease`` defaults to the worst case of sending the claimed batch (each send
    bounded by the mailer's timeout) plus a minute."""
    tpl = templates()
    stale = await _fail_stale(circ)
    outgoing, suppressed, failed = await _claim(circ, mailer, batch, lease, tpl)
    counts = {"sent": 0, "retried": 0, "failed": stale + failed}
    current = 0          # index of the notice in flight
    try:
        for current, out in enumerate(outgoing):  # noqa: B007 - read after the loop
            error = None
            try:
                await mailer.send(out.to, out.subject, out.body, message_id=out.message_id,
                                  date=circ.clock.aware(out.composed_at), from_address=out.from_address)
            except MailError as e:
                error = e
                log.info("notice %s: %s error: %s", out.id,
                         "transient" if e.transient else "permanent", e)
            counts[await _record(circ, out, error, max_attempts)] += 1
        current = len(outgoing)
    finally:
        # Interrupted (cancelled, or an unexpected error): the notice being sent stays
        # "sending" (it may have gone out); the ones not tried yet go back to pending.
        rest = [o.id for o in outgoing[current + 1:]]
        if rest:
            await asyncio.shield(_release(circ, rest))
    return DispatchCounts(counts["sent"], counts["retried"], counts["failed"], suppressed)


async def _release(circ, ids: list[int]) -> None:
    async def work(conn):
        await conn.execute(update(s.notices).where(s.notices.c.id.in_(ids),
                                                  s.notices.c.status == "sending")
                           .values(status="pending", claimed_until=None))
    await circ.db.run(work)


async def requeue(circ, notice_id: int) -> None:
    """Staff: send a ``failed`` or ``suppressed`` notice again (attempts start over;
    the Message-ID stays the same). Other states are refused with ValueError."""
    async def work(conn):
        row = (await conn.execute(select(s.notices).where(s.notices.c.id == notice_id)
                                  .with_for_update())).first()
        if row is None:
            raise NotFound(f"notice {notice_id}")
        if row.status not in ("failed", "suppressed"):
            raise ValueError(f"notice {notice_id} is {row.status}; only failed or suppressed "
                             "notices can be requeued")
        now = circ.now()
        await conn.execute(update(s.notices).where(s.notices.c.id == notice_id).values(
            status="pending", attempts=0, next_attempt_at=now, claimed_until=None,
            last_error=f"requeued at {now.isoformat()} (was {row.status}: {row.last_error})"[:2000]))
    await circ.db.run(work)


# --------------------------------------------------------------------------- call list

@dataclass(frozen=True)
class CallEntry:
    notice_id: int
    request_id: int
    patron_id: int
    card_number: str
    name: str
    contact_method: str
    number: str | None            # phone or fax number; None for postcards
    title: str
    shelf_deadline: date | None
    ready_at: datetime | None


async def call_list(circ, branch: str) -> list[CallEntry]:
    """Hold-ready notices of ``branch`` that staff must make by phone, fax or postcard
    (suppressed for mail), for holds still on the shelf whose patron has not been told
    yet (:func:`record_call` takes one off the list), in allocation order."""
    n, r, p = s.notices.c, s.requests.c, s.patrons.c
    q = (select(n.id, n.request_id, n.patron_id, p.card_number, p.name, p.phone, p.fax,
                r.contact_method, r.title, r.shelf_deadline, r.ready_at)
         .select_from(s.notices.join(s.requests, s.requests.c.id == n.request_id)
                      .join(s.patrons, s.patrons.c.id == n.patron_id))
         .where(n.kind == "hold_ready", n.status == "suppressed", r.pickup_branch == branch,
                r.state == "ON_HOLD_SHELF", r.contact_method.in_(("phone", "fax", "postcard")),
                r.contacted_at.is_(None))
         .order_by(n.created_at, n.id))
    async with circ.db.read() as conn:
        out = []
        for row in (await conn.execute(q)).all():
            number = {"phone": row.phone, "fax": row.fax}.get(row.contact_method)
            out.append(CallEntry(row.id, row.request_id, row.patron_id, row.card_number, row.name,
                                 row.contact_method, number, row.title, row.shelf_deadline,
                                 row.ready_at))
        return out
