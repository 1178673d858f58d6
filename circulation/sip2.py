"""Self-check kiosks (自動貸出機) on the circulation engine: each SIP2 request a
kiosk sends (:mod:`sip2`) answered by one call of the engine's public functions.

Kiosk accounts
--------------
A kiosk logs in (93) with the username and password of a staff account whose only role
is ``kiosk`` and which names a branch (``unioncat circ staff add hiroshima.kiosk1
--library hiroshima --branch central --roles kiosk``; the password with ``circ staff
passwd``). The login is :func:`circulation.auth.staff_login` without a session (the
connection is the session), so the staff lockout applies. The account's branch is where
the kiosk acts, whatever the message says: a location code (CP) that names *another*
branch of the network refuses the login (a kiosk set up with the wrong account); any
other CP text is only logged. An account with any other role is refused: a password kept
in a machine in the public area must not be a staff password.

What a kiosk does, it does with role ``patron`` and channel ``kiosk`` at its branch;
the audit trail's actor is the kiosk's username (the loan row names the patron).

=====================  ============================================================
93 Login               the kiosk account (above)
99 SC Status           98: on-line when the circulation database answers; check-in,
                       check-out and renewal offered; no offline transactions, no
                       patron status updates (Block Patron is not offered)
23 / 63 Patron         the card (AA) and password (AD): :func:`auth.patron_login` without
                       a session (the lockout applies); the patron status flags from the
                       policies (card usable here, loan limit, the overdue block); 63 adds
                       the counts and the lists asked for: 予約 ready for pickup (AS),
                       overdue (AT) and all loans (AU) by barcode, holds not yet
                       ready (CD) by title
11 Checkout            :func:`loans.check_out` with channel ``kiosk``: the kiosk rules
                       of the profile (``policies.can_use_kiosk``: Hiroshima has no
                       machine at 湯来河野閲覧室 and lends no magazines at one) apply
                       there, with every other rule of the counter
09 Checkin             :func:`loans.check_in` with return kind ``return_machine``; where
                       the copy goes next is the screen message, and ``alert`` is set
                       when it is not simply reshelved
29 Renew               :func:`loans.renew` of the patron's open loan of the item (AB)
17 Item Information    the copy: status, due date, queue length, hold shelf deadline
35 End Patron Session  ends the patron session (:class:`sip2.Session`)
=====================  ============================================================

Readings and choices
--------------------
* **Patron passwords.** Every patron message carries the card (AA) and may carry the
  password (AD). A card and password accepted by 23 or 63 open a patron session: the
  check-outs and renewals that follow for that card need no password again (the
  standard makes AD optional there). Otherwise a message that acts (11, 29) needs AD;
  without it the answer is "enter your password" and no failed login is counted. 23 and
  63 without AD tell whether the card exists (BL) and ask for the password (CQ N): only a
  logged-in kiosk can ask, and kiosks scan the card before they ask for the PIN.
* **Renewals** go through the renewal rules with channel ``counter``: the kiosk stands
  in the library, the patron has the item in hand (the lifecycle's channels have no
  ``kiosk`` for renewals; Komae's "a web renewal cannot be repeated at the counter"
  then applies at the kiosk too).
* **Check-out of an item the patron already has**: with the SC renewal policy Y (the
  standard's meaning), it is a renewal (12 with renewal ok Y); otherwise the engine's
  answer (``item_on_loan``).
* **Dates**: transaction dates are the engine's clock (naive local time, ZZZZ blank);
  due dates (AH) are the end of the due day, ``YYYYMMDD    235959``. The return date a
  kiosk sends with a check-in is not used: the kiosk checks in online, so the return is
  now (offline transactions are refused: 98 says offline N).
* **Language**: screen messages in the kiosk's configured language (Japanese by
  default); a patron's 23/63 in language 001 (English) switches that patron's session to
  English.
* **The database unavailable**: 98 off-line, every other request a refusal saying so;
  an unexpected error is logged with its traceback and answered as a refusal, never by
  dropping the connection.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select

from lifecycle import item_table as it
from lifecycle import policies
from lifecycle.model import Decision
from lifecycle.reasons import decide, register
from lifecycle.table import IllegalTransition, State
from sip2 import messages as M
from sip2.config import KioskOptions, Sip2Config
from sip2.messages import Message, date_of, make, refusal
from sip2.session import SUPPORTED, Session, language_of

from . import auth, lists, loans, routing
from . import schema as s
from .availability import unavailable
from .ill.titles import ItemTitles, Titles
from .reads import patron_snapshot
from .service import Circulation
from .store import NotFound, serving_system

log = logging.getLogger("unioncat.sip2")

KIOSK_ROLE = "kiosk"
CHANNEL = "kiosk"
RETURN_KIND = "return_machine"
RENEWAL_CHANNEL = "counter"

register({
    "sip2_checked_out": ("貸出しました。", "Checked out."),
    "sip2_renewed": ("貸出を延長しました。", "Renewed."),
    "sip2_checked_in": ("返却しました。", "Returned."),
    "sip2_goodbye": ("ご利用ありがとうございました。", "Thank you."),
    "sip2_password_needed": ("パスワードを入力してください。", "Please enter your password."),
    "sip2_unknown_item": ("この資料は登録されていません。カウンターへお持ちください。",
                          "This item is not known here: please take it to the counter."),
    "sip2_not_your_loan": ("この資料はお借りになっていません。", "This item is not on loan to you."),
    "sip2_counter_needed": ("この資料は自動貸出機では扱えません。カウンターへお持ちください。",
                            "This item cannot be handled here: please take it to the counter."),
    "sip2_unavailable": ("ただいま貸出・返却の処理ができません。"
                         "しばらくしてからお試しいただくか、カウンターへお越しください。",
                         "Loans and returns cannot be processed just now: try again shortly or go to the counter."),
    "sip2_failed": ("処理できませんでした。カウンターへお越しください。",
                    "This could not be processed: please go to the counter."),
    "sip2_to_hold_shelf": ("予約の資料です。係員にお渡しください。",
                           "Reserved for a patron: please hand it to the staff."),
    "sip2_to_other_branch": ("他の館へ送る資料です。係員にお渡しください。",
                             "It goes to another library: please hand it to the staff."),
    "sip2_holds_ready": ("貸出準備完了の予約があります。", "Reservations are ready for you to collect."),
}, allowed={"sip2_checked_out", "sip2_renewed", "sip2_checked_in", "sip2_goodbye"})

# SIP2 circulation status (18) of a copy's status
CIRCULATION_STATUS = {
    it.ItemStatus.AVAILABLE.value: "03", it.ItemStatus.ON_LOAN.value: "04",
    it.ItemStatus.ON_HOLD_SHELF.value: "08", it.ItemStatus.IN_TRANSIT.value: "10",
    it.ItemStatus.LOST.value: "12", it.ItemStatus.WITHDRAWN.value: "01",
}
# SIP2 media type (CK) of a material type: 001 book, 002 magazine, 006 CD/CD-ROM, 000 other
MEDIA_TYPE = {"book": "001", "manga": "001", "reference": "001", "kamishibai": "001", "oversized": "001",
              "textbook": "001", "rare": "001", "thesis": "001", "magazine": "002", "av": "006",
              "audiobook": "006"}
_PRINT = frozenset(k for k, v in MEDIA_TYPE.items() if v in ("001", "002"))
SECURITY_MARKER = "00"          # other: the copies carry IC (RFID) tags, not 3M tape
FEE_TYPE = "01"                 # other/unknown: no fees are charged


@dataclass(frozen=True)
class Kiosk:
    username: str
    staff_id: int
    library: str                 # the account's library system
    branch: str
    options: KioskOptions

    @property
    def institution(self) -> str:
        return self.options.institution_id or self.library


@dataclass
class Connection:
    """What the adapter knows of one connection: its session and the kiosk logged in."""
    session: Session
    kiosk: Kiosk | None = None


@dataclass(frozen=True)
class Answer:
    response: Message
    note: str | None = None      # for the log (why a login was refused, an SC's status code ...)


def _words(d: Decision, language: str) -> str:
    return d.message_en if language == "en" else d.message_ja


def _due_text(due: date, language: str) -> str:
    return f"Due {due:%Y-%m-%d}." if language == "en" else f"返却期限は{due.year}年{due.month}月{due.day}日です。"


def _flag(value: bool) -> str:
    return "Y" if value else "N"


class KioskService:
    """Answers the requests of logged-in kiosks (and their logins) on ``circ``.
    ``titles`` resolves title ids for the screens (the gateway passes the union
    catalog's; default: the circulation database's own)."""

    def __init__(self, circ: Circulation, config: Sip2Config | None = None, titles: Titles | None = None):
        self.circ = circ
        self.config = config or Sip2Config()
        self._own_titles = ItemTitles(circ)
        self.titles = titles or self._own_titles

    def session(self, **kw) -> Session:
        """A new connection's session, in the configured default encoding and language."""
        d = self.config.default
        return Session(clock=self.circ.now, encoding=d.encoding, language=d.language,
                       max_length=self.config.max_message, **kw)

    async def answer(self, conn: Connection, request: Message) -> Answer:
        """The response to one request the session handed over (never raises)."""
        handler = {M.LOGIN: self.login, M.SC_STATUS: self.sc_status, M.PATRON_STATUS: self.patron_status,
                   M.PATRON_INFORMATION: self.patron_status, M.CHECKOUT: self.checkout, M.CHECKIN: self.checkin,
                   M.RENEW: self.renew, M.ITEM_INFORMATION: self.item_information,
                   M.END_PATRON_SESSION: self.end_session}[request.code]
        lang = self._language(conn, request)
        try:
            return await handler(conn, request)
        except Exception as e:
            if unavailable(e):
                log.warning("sip2: the circulation database is unavailable: %r", e)
                return Answer(self._refused(conn, request, decide("sip2_unavailable"), lang),
                              "circulation database unavailable")
            log.exception("sip2: %s (%s) failed", M.SPECS[request.code].name, request.code)
            return Answer(self._refused(conn, request, decide("sip2_failed"), lang), "unexpected error (logged)")

    # ------------------------------------------------------------------ helpers
    def _language(self, conn: Connection, request: Message) -> str:
        return language_of(request.fixed.get("language", ""), conn.session.language)

    def _now(self) -> str:
        return date_of(self.circ.now())

    def _refused(self, conn: Connection, request: Message, d: Decision, lang: str) -> Message:
        return refusal(request.code, request, when=self._now(), screen=[_words(d, lang)],
                       language=M.LANGUAGE_CODES[lang], supported=SUPPORTED)

    def _institution(self, conn: Connection, request: Message) -> str:
        return conn.kiosk.institution if conn.kiosk is not None else (request.get("AO") or "")

    async def _title(self, title_id: str) -> str:
        """The title for the screen: the catalog's (``titles``), else the one the
        circulation keeps for the title's holds, else the title id."""
        for source in dict.fromkeys((self.titles, self._own_titles)):
            try:
                t = await source.describe(title_id)
            except Exception:
                log.warning("sip2: no title for %s", title_id, exc_info=True)
                continue
            if t is not None and t.title:
                return t.title
        return title_id

    async def _item(self, barcode: str):
        async with self.circ.db.read() as c:
            return (await c.execute(select(s.items).where(s.items.c.barcode == barcode))).first()

    async def _patron(self, card: str):
        async with self.circ.db.read() as c:
            return (await c.execute(select(s.patrons).where(s.patrons.c.card_number == card))).first()

    async def _check_patron(self, conn: Connection, card: str, password: str | None) -> Decision:
        """Whether the message's patron is proven: the patron session's card, or the card
        with its password (a wrong one counts for the lockout)."""
        if conn.session.patron_verified(card, password):
            return decide("ok")
        if not password:
            return decide("sip2_password_needed")
        res = await auth.patron_login(self.circ, card=card, password=password, open_session=False)
        return res.decision

    # ------------------------------------------------------------------ 93, 99
    async def login(self, conn: Connection, request: Message) -> Answer:
        user, password, location = request.get("CN") or "", request.get("CO") or "", request.get("CP") or ""
        conn.kiosk = None
        no = make(M.LOGIN_RESPONSE, ok="0")
        if request["uid_algorithm"] not in ("0", " ") or request["pwd_algorithm"] not in ("0", " "):
            return Answer(no, f"login {user!r}: encrypted user id or password (algorithms "
                              f"{request['uid_algorithm']}/{request['pwd_algorithm']}) not supported")
        res = await auth.staff_login(self.circ, username=user, password=password, open_session=False)
        if not res.decision.allowed or res.principal is None:
            return Answer(no, f"login {user!r} refused: {res.decision.code}")
        who = res.principal
        if set(who.roles) != {KIOSK_ROLE}:
            return Answer(no, f"login {user!r} refused: not a kiosk account (roles {' '.join(sorted(who.roles))}; "
                              f"a kiosk account has the role {KIOSK_ROLE} only)")
        if not who.branch:
            return Answer(no, f"login {user!r} refused: the kiosk account names no branch")
        other = location and location != who.branch and self._is_branch(location)
        if other:
            return Answer(no, f"login {user!r} refused: the kiosk says it is at {location!r}, "
                              f"its account is bound to {who.branch!r}")
        options = self.config.for_kiosk(user)
        conn.kiosk = Kiosk(user, who.id, who.library, who.branch, options)
        conn.session.use_encoding(options.encoding)
        conn.session.default_language = conn.session.language = options.language
        note = f"kiosk {user} logged in at {who.branch}" + (f" (location {location!r})" if location else "")
        return Answer(make(M.LOGIN_RESPONSE, ok="1"), note)

    def _is_branch(self, code: str) -> bool:
        try:
            self.circ.profile_of_branch(code)
        except NotFound:
            return False
        return True

    async def sc_status(self, conn: Connection, request: Message) -> Answer:
        lang = self._language(conn, request)
        status = request["status_code"]
        note = {"1": "the SC reports: out of paper", "2": "the SC reports: about to shut down"}.get(status)
        if conn.kiosk is None:
            return Answer(refusal(M.SC_STATUS, request, when=self._now(), supported=SUPPORTED,
                                  screen=[_words(decide("not_logged_in"), lang)]), note)
        async with self.circ.db.read() as c:
            await c.execute(select(1))
        k = conn.kiosk
        profile = self.circ.profile(k.library)
        return Answer(make(
            M.ACS_STATUS, online_status="Y", checkin_ok="Y", checkout_ok="Y", acs_renewal_policy="Y",
            status_update_ok="N", offline_ok="N", timeout_period="300", retries_allowed="003",
            date_time_sync=self._now(), protocol_version="2.00",
            fields=[("AO", k.institution), ("AM", profile.name), ("BX", SUPPORTED),
                    ("AN", self.circ.branch_name(k.branch))]), note)

    # ------------------------------------------------------------------ 23, 63
    async def patron_status(self, conn: Connection, request: Message) -> Answer:
        card, password = request.get("AA") or "", request.get("AD")
        lang = self._language(conn, request)
        row = await self._patron(card)
        screen: list[str] = []
        valid_password = False
        if row is not None:
            d = await self._check_patron(conn, card, password)
            valid_password = d.allowed
            if not d.allowed:
                screen.append(_words(d, lang))
        else:
            screen.append(_words(decide("unknown_card"), lang))
        now = self.circ.now()
        status = " " * 14
        snapshot = None
        if row is not None:
            async with self.circ.db.read() as c:
                snapshot = await patron_snapshot(c, row)
            status = self._patron_flags(conn.kiosk, row.library, snapshot, now)
        fields = [("AO", self._institution(conn, request)), ("AA", card), ("AE", row.name if row else ""),
                  ("BL", _flag(row is not None)), ("CQ", _flag(valid_password))]
        language = M.LANGUAGE_CODES[lang]
        if request.code == M.PATRON_STATUS:
            return Answer(make(M.PATRON_STATUS_RESPONSE, patron_status=status, language=language,
                               transaction_date=self._now(), fields=fields + [("AF", screen)]))
        counts = dict.fromkeys(("hold_items", "overdue_items", "charged_items", "fine_items", "recall_items",
                                "unavailable_holds"), 0)
        lists_: dict[str, list[str]] = {}
        if row is not None and valid_password:
            lists_, counts, limit = await self._patron_lists(row, request, now)
            if limit is not None:
                fields.append(("CB", f"{min(limit, 9999):04d}"))
            if counts["hold_items"]:
                screen.append(_words(decide("sip2_holds_ready"), lang))
        for fid in ("AS", "AT", "AU", "CD"):
            fields.append((fid, lists_.get(fid, [])))
        return Answer(make(M.PATRON_INFORMATION_RESPONSE, patron_status=status, language=language,
                           transaction_date=self._now(),
                           **{f"{k}_count": f"{min(v, 9999):04d}" for k, v in counts.items()},
                           fields=fields + [("AF", screen)]))

    def _patron_flags(self, kiosk: Kiosk | None, system: str, patron, now: datetime) -> str:
        """The 14 patron status flags, from the policies of the patron's system: charge
        privileges denied (the card is not usable at this branch, or has no loan rule,
        or is another system's), hold privileges denied (card expired, the overdue
        block of placing), too many items charged (the loan limit), too many items
        overdue (the overdue block)."""
        profile = self.circ.profile(system)
        flags = [" "] * 14
        here = kiosk.branch if kiosk is not None else None
        rule = profile.loans.get(patron.category)
        if (here is None or kiosk.library != system or rule is None
                or not policies.card_usable_at(profile, patron, here, now).allowed):
            flags[0] = "Y"
        block = profile.placing.overdue_block_days
        blocked = block is not None and any(policies.overdue_days(loan, now) > block for loan in patron.loans)
        if policies.card_expired(patron, now) or blocked:
            flags[3] = "Y"
        if rule is not None and rule.limit is not None and len(patron.loans) >= rule.limit:
            flags[5] = "Y"
        if blocked:
            flags[6] = "Y"
        return "".join(flags)

    async def _patron_lists(self, row, request: Message, now: datetime):
        """(the item lists the summary asks for, the counts, the loan limit)."""
        mine = await loans.patron_loans(self.circ, row.card_number)
        holds = await lists.patron_requests(self.circ, row.card_number)
        ready = [h for h in holds if h["state"] == State.ON_HOLD_SHELF.value]
        waiting = [h for h in holds if h["state"] != State.ON_HOLD_SHELF.value]
        overdue = [ln for ln in mine if ln["overdue"]]
        counts = {"hold_items": len(ready), "overdue_items": len(overdue), "charged_items": len(mine),
                  "fine_items": 0, "recall_items": 0, "unavailable_holds": len(waiting)}
        summary = request.fixed.get("summary", "")
        wanted = {i for i, ch in enumerate(summary) if ch == "Y"}
        start, end = _position(request.get("BP"), 1), _position(request.get("BQ"), None)
        page = lambda xs: xs[start - 1:end]  # noqa: E731
        out: dict[str, list[str]] = {}
        if 0 in wanted:
            out["AS"] = page([h["title"] or h["title_id"] for h in ready])
        if 1 in wanted:
            out["AT"] = page([ln["barcode"] for ln in overdue])
        if 2 in wanted:
            out["AU"] = page([ln["barcode"] for ln in mine])
        if 5 in wanted:
            out["CD"] = page([h["title"] or h["title_id"] for h in waiting])
        rule = self.circ.profile(row.library).loans.get(row.category)
        return out, counts, (rule.limit if rule is not None else None)

    # ------------------------------------------------------------------ 11, 29
    async def checkout(self, conn: Connection, request: Message) -> Answer:
        k, lang = conn.kiosk, self._language(conn, request)
        card, barcode = request.get("AA") or "", request.get("AB") or ""
        item = await self._patron_and_item(conn, request, card, barcode, lang)
        if isinstance(item, Answer):
            return item
        title = await self._title(item.title_id)
        try:
            res = await loans.check_out(self.circ, barcode=barcode, card=card, branch=k.branch, role="patron",
                                        actor=k.username, channel=CHANNEL)
        except (NotFound, IllegalTransition) as e:
            return Answer(self._refused(conn, request, decide("sip2_counter_needed"), lang), f"check-out: {e}")
        renewed = False
        decision, due, loan_id = res.decision, res.due, res.loan_id
        if not decision.allowed and decision.code == "item_on_loan" and request["sc_renewal_policy"] == "Y":
            mine = await self._open_loan_of(barcode, card)
            if mine is not None:
                r = await loans.renew(self.circ, loan_id=mine.id, role="patron", actor=k.username,
                                      channel=RENEWAL_CHANNEL, card=card)
                decision, due, loan_id, renewed = r.decision, r.due or mine.due, mine.id, r.decision.allowed
                if renewed:
                    decision = decide("sip2_renewed")
        if decision.allowed and not renewed:
            decision = decide("sip2_checked_out")
        screen = [_words(decision, lang)] + ([_due_text(due, lang)] if decision.allowed and due else [])
        return Answer(make(
            M.CHECKOUT_RESPONSE, ok="1" if decision.allowed else "0", renewal_ok=_flag(renewed),
            magnetic_media=_magnetic(item.material_type), desensitize=_flag(decision.allowed and not renewed),
            transaction_date=self._now(),
            fields=[("AO", k.institution), ("AA", card), ("AB", barcode), ("AJ", title),
                    ("AH", date_of(due) if decision.allowed and due else ""),
                    ("CK", MEDIA_TYPE.get(item.material_type, "000")),
                    ("BK", str(loan_id) if decision.allowed and loan_id else None), ("AF", screen)]),
            None if decision.allowed else f"check-out {barcode} for {card}: {decision.code}")

    async def _patron_and_item(self, conn: Connection, request: Message, card: str, barcode: str, lang: str):
        """The copy ``barcode`` once the patron is proven; else the refusal to answer with."""
        proven = await self._proven(conn, request, card, lang)
        if proven is not None:
            return Answer(proven)
        item = await self._item(barcode)
        if item is None:
            return Answer(self._refused(conn, request, decide("sip2_unknown_item"), lang))
        return item

    async def _proven(self, conn: Connection, request: Message, card: str, lang: str) -> Message | None:
        """None when the patron is proven, else the refusal to send."""
        if await self._patron(card) is None:
            return self._refused(conn, request, decide("unknown_card"), lang)
        d = await self._check_patron(conn, card, request.get("AD"))
        return None if d.allowed else self._refused(conn, request, d, lang)

    async def _open_loan_of(self, barcode: str, card: str | None = None):
        """The open loan of the copy (when ``card`` is given: only if it is that patron's)."""
        async with self.circ.db.read() as c:
            q = (select(s.loans.c.id, s.loans.c.due, s.patrons.c.card_number)
                 .join(s.items, s.items.c.id == s.loans.c.item_id)
                 .join(s.patrons, s.patrons.c.id == s.loans.c.patron_id)
                 .where(s.items.c.barcode == barcode, s.loans.c.returned_at.is_(None)))
            row = (await c.execute(q)).first()
        if row is None or (card is not None and row.card_number != card):
            return None
        return row

    async def renew(self, conn: Connection, request: Message) -> Answer:
        k, lang = conn.kiosk, self._language(conn, request)
        card, barcode = request.get("AA") or "", request.get("AB") or ""
        item = await self._patron_and_item(conn, request, card, barcode, lang)
        if isinstance(item, Answer):
            return item
        loan = await self._open_loan_of(barcode, card)
        if loan is None:
            return Answer(self._refused(conn, request, decide("sip2_not_your_loan"), lang))
        res = await loans.renew(self.circ, loan_id=loan.id, role="patron", actor=k.username,
                                channel=RENEWAL_CHANNEL, card=card)
        ok = res.decision.allowed
        d = decide("sip2_renewed") if ok else res.decision
        due = res.due if ok else loan.due
        screen = [_words(d, lang), _due_text(due, lang)]
        return Answer(make(
            M.RENEW_RESPONSE, ok="1" if ok else "0", renewal_ok=_flag(ok), magnetic_media=_magnetic(item.material_type),
            desensitize="U", transaction_date=self._now(),
            fields=[("AO", k.institution), ("AA", card), ("AB", barcode), ("AJ", await self._title(item.title_id)),
                    ("AH", date_of(due)), ("CK", MEDIA_TYPE.get(item.material_type, "000")),
                    ("BK", str(loan.id)), ("AF", screen)]),
            None if ok else f"renewal of {barcode} for {card}: {res.decision.code}")

    # ------------------------------------------------------------------ 09
    async def checkin(self, conn: Connection, request: Message) -> Answer:
        k, lang = conn.kiosk, self._language(conn, request)
        barcode = request.get("AB") or ""
        item = await self._item(barcode)
        if item is None:
            return Answer(self._refused(conn, request, decide("sip2_unknown_item"), lang))
        try:
            res = await loans.check_in(self.circ, barcode=barcode, branch=k.branch, role="patron",
                                       actor=k.username, return_kind=RETURN_KIND)
        except (NotFound, IllegalTransition) as e:
            return Answer(self._refused(conn, request, decide("sip2_counter_needed"), lang), f"check-in: {e}")
        returned = res.decision.allowed
        screen = [_words(decide("sip2_checked_in") if returned else res.decision, lang)]
        r = res.routing
        alert = not returned or (r is not None and r.kind not in (routing.RESHELVE, routing.WALK_IN))
        if r is not None and r.kind == routing.HOLD_SHELF:
            screen.append(_words(decide("sip2_to_hold_shelf"), lang))
        elif r is not None and r.to_branch and r.to_branch != k.branch:
            screen.append(_words(decide("sip2_to_other_branch"), lang)
                          + f" ({self.circ.branch_name(r.to_branch)})")
        return Answer(make(
            M.CHECKIN_RESPONSE, ok="1" if returned else "0", resensitize=_flag(returned),
            magnetic_media=_magnetic(item.material_type), alert=_flag(alert), transaction_date=self._now(),
            fields=[("AO", k.institution), ("AB", barcode), ("AQ", self.circ.branch_name(item.owning_branch)),
                    ("AJ", await self._title(item.title_id)), ("CK", MEDIA_TYPE.get(item.material_type, "000")),
                    ("AF", screen)]),
            None if returned else f"check-in {barcode}: {res.decision.code}")

    # ------------------------------------------------------------------ 17, 35
    async def item_information(self, conn: Connection, request: Message) -> Answer:
        lang = self._language(conn, request)
        barcode = request.get("AB") or ""
        item = await self._item(barcode)
        if item is None:
            return Answer(refusal(M.ITEM_INFORMATION, request, when=self._now(),
                                  screen=[_words(decide("sip2_unknown_item"), lang)]))
        loan = await self._open_loan_of(barcode)
        async with self.circ.db.read() as c:
            system = await serving_system(c, self.circ.profiles, item)
            waiting = (await c.execute(select(func.count()).select_from(s.requests).where(
                s.requests.c.title_id == item.title_id, s.requests.c.library == system,
                s.requests.c.state.in_(loans.WAITING_STATES)))).scalar_one()
            held = (await c.execute(select(s.requests.c.shelf_deadline).where(
                s.requests.c.item_id == item.id, s.requests.c.state == State.ON_HOLD_SHELF.value))).first()
        fields = [("CF", str(waiting)), ("AH", date_of(loan.due) if loan is not None else None),
                  ("CM", date_of(held.shelf_deadline) if held is not None and held.shelf_deadline else None),
                  ("AB", barcode), ("AJ", await self._title(item.title_id)), ("BG", item.library),
                  ("CK", MEDIA_TYPE.get(item.material_type, "000")),
                  ("AQ", self.circ.branch_name(item.owning_branch)),
                  ("AP", self.circ.branch_name(item.current_branch) if item.current_branch else None)]
        return Answer(make(M.ITEM_INFORMATION_RESPONSE, circulation_status=CIRCULATION_STATUS.get(item.status, "01"),
                           security_marker=SECURITY_MARKER, fee_type=FEE_TYPE, transaction_date=self._now(),
                           fields=fields))

    async def end_session(self, conn: Connection, request: Message) -> Answer:
        lang = self._language(conn, request)
        return Answer(make(M.END_SESSION_RESPONSE, end_session="Y", transaction_date=self._now(),
                           fields=[("AO", self._institution(conn, request)), ("AA", request.get("AA") or ""),
                                   ("AF", [_words(decide("sip2_goodbye"), lang)])]))


def _magnetic(material_type: str) -> str:
    return "N" if material_type in _PRINT else "U"


def _position(value: str | None, default: int | None) -> int | None:
    """A start/end item position (BP, BQ: 1-based); ``default`` when absent or not a number."""
    if value is None or not value.strip().isdigit():
        return default
    return max(1, int(value.strip()))


__all__ = ["Answer", "Connection", "Kiosk", "KioskService", "CIRCULATION_STATUS", "MEDIA_TYPE"]
