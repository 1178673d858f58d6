"""One SIP2 connection of the ACS (the circulation side) as a state table, sans I/O.

Bytes in, events out; the application answers each :class:`Request` with
:meth:`Session.send`, which gives the bytes to write. The caller owns the socket and
the clock (``clock`` is injected: it dates the refusals the session writes itself).

States and the table
--------------------
``AWAITING_LOGIN`` → ``LOGGED_IN`` (a kiosk account logged in with 93) →
``PATRON_SESSION`` (a patron's card and password were accepted by a Patron Status or
Patron Information response) → back to ``LOGGED_IN`` with End Patron Session (35).
``ACCEPTS`` says which requests each state hands to the application; ``TRANSITIONS``
says what each response does to the state (``as_markdown()`` renders both, as in
docs/sip2.md). Any request the table does not let through is answered by the session
itself, never dropped.

The patron session remembers whose card was accepted and a salted digest of the
password that proved it, so that the check-out or renewal that follows (which the
standard lets carry AD or not) needs no second password check: see
:meth:`Session.patron_verified`. A different card is a new patron; the application
checks it afresh.

What is answered how (SIP2 has no generic error message)
----------------------------------------------------------
=========================================  ==================================================
input                                      answer
=========================================  ==================================================
checksum (AZ) that does not verify          96 Request SC Resend, as the standard says
not a SIP2 message (garbage, an unknown     96: there is no response of its own to send; the
code, a response code, no code at all)      SC's retry limit (98: ``retries allowed``) ends a loop
longer than ``max_length`` without CR       96 (the bytes up to the next CR are dropped)
known request, cut short / a field the      its own response with every ok/valid flag false
server needs missing / bytes that are not   and a screen message (AF) saying why, in the
the connection's encoding                   session's language, then the detail in English
a request the server does not offer         the same, "not offered" (Block Patron, Hold, Item
(01, 15, 19, 25, 37, 65)                    Status Update, Patron Enable, Fee Paid, Renew All)
a request before login                      the same, "log in first" (SC Status is answered
                                            before login too, by the application)
97 Request ACS Resend                       the last response again (96 if there was none)
the same message again, same sequence no.   the last response again, not executed twice (a
                                            kiosk that did not get the answer to a check-out)
``max_unreadable`` unreadable in a row      :class:`Close` with the reason (the caller logs it)
a TLS or HTTP request on the port           :class:`Close` with the reason
=========================================  ==================================================

A refused Login is ``940``: the Login Response has no field to say why in, so the reason
goes to the log only (:class:`Reply.reason`).

Sequence numbers and checksums follow the SC: a response carries the request's AY and
an AZ when the request had them, none when it had none; 96 always carries AZ and never
AY (the standard's rule for resend requests).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from . import codec
from . import messages as M
from .messages import Message

# states
AWAITING_LOGIN = "awaiting-login"
LOGGED_IN = "logged-in"
PATRON_SESSION = "patron-session"
CLOSED = "closed"
STATES = (AWAITING_LOGIN, LOGGED_IN, PATRON_SESSION, CLOSED)

# what a response does (the events of TRANSITIONS)
LOGIN_ACCEPTED, LOGIN_REFUSED = "login accepted (941)", "login refused (940)"
PATRON_ACCEPTED = "patron accepted (24/64 with BL=Y, CQ=Y)"
PATRON_REFUSED = "patron refused (24/64 otherwise)"
SESSION_ENDED = "patron session ended (36)"
OTHER = "any other response"
EVENTS = (LOGIN_ACCEPTED, LOGIN_REFUSED, PATRON_ACCEPTED, PATRON_REFUSED, SESSION_ENDED, OTHER)

HANDLED = frozenset({M.LOGIN, M.SC_STATUS, M.PATRON_STATUS, M.PATRON_INFORMATION, M.CHECKOUT, M.CHECKIN,
                     M.RENEW, M.ITEM_INFORMATION, M.END_PATRON_SESSION})
NOT_OFFERED = frozenset({"01", "15", "19", "25", "37", "65"})
SUPPORTED = M.supported_messages(HANDLED | {M.ACS_RESEND})

# which requests each state hands to the application
ACCEPTS: dict[str, frozenset[str]] = {
    AWAITING_LOGIN: frozenset({M.LOGIN, M.SC_STATUS}),
    LOGGED_IN: HANDLED,
    PATRON_SESSION: HANDLED,
    CLOSED: frozenset(),
}

TRANSITIONS: dict[tuple[str, str], str] = {
    (AWAITING_LOGIN, LOGIN_ACCEPTED): LOGGED_IN,
    (AWAITING_LOGIN, LOGIN_REFUSED): AWAITING_LOGIN,
    (AWAITING_LOGIN, OTHER): AWAITING_LOGIN,
    # a Login on a logged-in connection starts afresh; refused, it logs the kiosk out
    (LOGGED_IN, LOGIN_ACCEPTED): LOGGED_IN,
    (LOGGED_IN, LOGIN_REFUSED): AWAITING_LOGIN,
    (LOGGED_IN, PATRON_ACCEPTED): PATRON_SESSION,
    (LOGGED_IN, PATRON_REFUSED): LOGGED_IN,
    (LOGGED_IN, SESSION_ENDED): LOGGED_IN,
    (LOGGED_IN, OTHER): LOGGED_IN,
    (PATRON_SESSION, LOGIN_ACCEPTED): LOGGED_IN,
    (PATRON_SESSION, LOGIN_REFUSED): AWAITING_LOGIN,
    (PATRON_SESSION, PATRON_ACCEPTED): PATRON_SESSION,    # the same patron again, or the next one
    (PATRON_SESSION, PATRON_REFUSED): LOGGED_IN,          # a failed check ends the patron's session
    (PATRON_SESSION, SESSION_ENDED): LOGGED_IN,
    (PATRON_SESSION, OTHER): PATRON_SESSION,
}


def event_of(response: Message) -> str:
    """The TRANSITIONS event a response is."""
    if response.code == M.LOGIN_RESPONSE:
        return LOGIN_ACCEPTED if response["ok"] == "1" else LOGIN_REFUSED
    if response.code in (M.PATRON_STATUS_RESPONSE, M.PATRON_INFORMATION_RESPONSE):
        ok = response.get("BL") == "Y" and response.get("CQ") == "Y"
        return PATRON_ACCEPTED if ok else PATRON_REFUSED
    if response.code == M.END_SESSION_RESPONSE:
        return SESSION_ENDED
    return OTHER


def as_markdown() -> str:
    """The two tables as Markdown (docs/sip2.md shows this output)."""
    names = lambda codes: ", ".join(f"{c} {M.SPECS[c].name}" for c in sorted(codes))  # noqa: E731
    lines = ["| state | requests handed to the application |", "|---|---|"]
    lines += [f"| {s} | {names(ACCEPTS[s]) or '—'} |" for s in STATES]
    lines += ["", "| state | response | new state |", "|---|---|---|"]
    lines += [f"| {s} | {e} | {TRANSITIONS[s, e]} |" for s in STATES for e in EVENTS if (s, e) in TRANSITIONS]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- texts

# The session's own screen messages (Japanese, English); the detail follows in English.
TEXTS = {
    "not_logged_in": ("自動貸出機がログインしていません。係員にお知らせください。",
                      "This terminal is not logged in: send Login (93) first."),
    "not_offered": ("この機能は自動貸出機ではご利用いただけません。カウンターへお越しください。",
                    "This server does not offer {name} ({code})."),
    "malformed": ("自動貸出機からの電文を読めませんでした。係員にお知らせください。",
                  "The message could not be read."),
}


def text(key: str, language: str, **values) -> str:
    ja, en = TEXTS[key]
    return (en if language == "en" else ja).format(**values)


# --------------------------------------------------------------------------- events

@dataclass(frozen=True)
class NeedData:
    """No complete message buffered: feed more bytes."""


@dataclass(frozen=True)
class Request:
    """A request for the application, allowed in the current state; answer it with
    :meth:`Session.send` before asking for the next event."""
    message: Message
    sequence: int | None


@dataclass(frozen=True)
class Reply:
    """The session answered by itself: write ``data``. ``reason`` (for the log) says
    why, when it was not a plain resend."""
    data: bytes
    reason: str | None = None


@dataclass(frozen=True)
class Close:
    """End the connection: ``reason`` for the log. Nothing more is read."""
    reason: str


@dataclass(frozen=True)
class ConnectionClosed:
    """The SC closed the connection."""


NEED_DATA = NeedData()


class LocalProtocolError(Exception):
    """The application broke the session's rules (a bug of the caller)."""


@dataclass(frozen=True)
class _Pending:
    request: Message
    sequence: int | None
    checksummed: bool
    frame: bytes


class Session:
    """The ACS side of one connection.

    ``encoding``: of the SC's bytes (``use_encoding`` changes it after a login, for
    kiosks configured with another); ``clock``: now, for the refusals the session writes
    (naive local time); ``language``: "ja" or "en", the screen messages' default;
    ``max_length``: bytes of one message; ``max_unreadable``: unreadable messages in a
    row before the connection is closed."""

    def __init__(self, *, clock: Callable[[], datetime], encoding: str = "utf-8", language: str = "ja",
                 max_length: int = 8192, max_unreadable: int = 10):
        self.clock = clock
        self.encoding = encoding
        self.default_language = self.language = language
        self.state = AWAITING_LOGIN
        self.max_unreadable = max_unreadable
        self.patron: str | None = None             # the card of the patron session
        self._patron_digest: bytes | None = None
        self._salt = secrets.token_bytes(16)
        self._framer = codec.Framer(max_length)
        self._frames: deque = deque()
        self._received = 0
        self._eof = False
        self._close: str | None = None
        self._pending: _Pending | None = None
        self._unreadable = 0
        self._last_frame: bytes | None = None       # the last request handled, as received
        self._last_response: bytes | None = None

    # ------------------------------------------------------------------ input
    def receive_data(self, data: bytes) -> None:
        """Bytes from the SC; b"" for the end of the stream."""
        if not data:
            self._eof = True
            return
        if self._close is not None or self.state == CLOSED:
            return
        if self._received == 0:
            self._close = _foreign_protocol(data)
            if self._close is not None:
                return
        self._received += len(data)
        self._frames.extend(self._framer.feed(data))

    def use_encoding(self, encoding: str) -> None:
        """Read the SC's next messages (and write the responses) in ``encoding``."""
        "".encode(encoding)                              # LookupError for an unknown codec
        self.encoding = encoding

    def next_event(self):
        """The next :class:`Request`, or a :class:`Reply` the session made itself, a
        :class:`Close`, :data:`NEED_DATA` or :class:`ConnectionClosed`."""
        if self._pending is not None:
            raise LocalProtocolError("answer the pending request with send() first")
        while True:
            if self.state == CLOSED:
                return ConnectionClosed()
            if self._close is not None:
                self.state = CLOSED
                return Close(self._close)
            if not self._frames:
                if self._eof:
                    self.state = CLOSED
                    return ConnectionClosed()
                return NEED_DATA
            event = self._event_for(self._frames.popleft())
            if event is not None:
                return event

    def _event_for(self, frame):
        if isinstance(frame, codec.TooLong):
            return self._unreadable_reply(f"a message of {frame.length} bytes without CR (the limit is "
                                          f"{self._framer.max_length})")
        if frame == self._last_frame and self._last_response is not None and codec.has_sequence(frame):
            return Reply(self._last_response, "the same message again: the last response resent, "
                                              "nothing done twice")
        try:
            d = codec.decode(frame, self.encoding)
        except codec.Malformed as e:
            if e.kind in codec.RESEND_KINDS or e.code not in M.REQUESTS or e.code == M.ACS_RESEND:
                return self._unreadable_reply(e.detail)
            self._unreadable = 0
            why = text("malformed", self.language)
            return self._refuse(e.code, e.message, e.sequence, True, [why, e.detail], e.detail)
        code = d.message.code
        if code not in M.REQUESTS:
            return self._unreadable_reply(f"{code} ({M.SPECS[code].name}) is a response, not a request")
        self._unreadable = 0
        if code == M.ACS_RESEND:
            if self._last_response is None:
                return Reply(codec.encode(Message(M.SC_RESEND), with_checksum=True), "97 with nothing sent yet")
            return Reply(self._last_response)
        if code in NOT_OFFERED:
            spec = M.SPECS[code]
            en = text("not_offered", "en", name=spec.name, code=code)
            return self._refuse(code, d.message, d.sequence, d.checksummed,
                                [text("not_offered", self.language, name=spec.name, code=code)]
                                + ([en] if self.language != "en" else []), en)
        if code not in ACCEPTS[self.state]:
            en = text("not_logged_in", "en")
            return self._refuse(code, d.message, d.sequence, d.checksummed,
                                [text("not_logged_in", self.language)] + ([en] if self.language != "en" else []),
                                f"{M.SPECS[code].name} ({code}) in state {self.state}")
        self._pending = _Pending(d.message, d.sequence, d.checksummed, frame)
        return Request(d.message, d.sequence)

    def _unreadable_reply(self, reason: str):
        self._unreadable += 1
        if self._unreadable >= self.max_unreadable:
            self._close = f"{self._unreadable} unreadable messages in a row (the last: {reason})"
            self.state = CLOSED
            return Close(self._close)
        return Reply(codec.encode(Message(M.SC_RESEND), with_checksum=True), reason)

    def _refuse(self, code: str, request: Message | None, sequence, checksummed, screen, reason) -> Reply:
        response = M.refusal(code, request, when=M.date_of(self.clock()), screen=screen,
                             language=M.LANGUAGE_CODES.get(self.language, "000"), supported=SUPPORTED)
        data = codec.encode(response, encoding=self.encoding, sequence=sequence, with_checksum=checksummed)
        self._last_response = data
        return Reply(data, reason)

    # ------------------------------------------------------------------ output
    def send(self, response: Message) -> bytes:
        """The bytes of the application's response to the pending request; applies the
        state table."""
        p = self._pending
        if p is None:
            raise LocalProtocolError("no request to answer")
        expected = M.SPECS[p.request.code].response
        if response.code != expected:
            raise LocalProtocolError(f"{p.request.code} is answered with {expected}, not {response.code}")
        data = codec.encode(response, encoding=self.encoding, sequence=p.sequence, with_checksum=p.checksummed)
        event = event_of(response)
        self.state = TRANSITIONS[self.state, event]
        if event == PATRON_ACCEPTED:
            card = response.get("AA") or ""
            password = p.request.get("AD") or ""
            if password or card != self.patron:
                self._patron_digest = self._digest(password)
            self.patron = card
            self.language = language_of(p.request.fixed.get("language", ""), self.default_language)
        elif self.state != PATRON_SESSION:
            self.patron, self._patron_digest = None, None
            self.language = self.default_language
        self._pending = None
        self._last_frame, self._last_response = p.frame, data
        return data

    @property
    def pending(self) -> Message | None:
        return self._pending.request if self._pending is not None else None

    # ------------------------------------------------------------------ the patron session
    def _digest(self, password: str) -> bytes:
        return hashlib.sha256(self._salt + password.encode("utf-8")).digest()

    def patron_verified(self, card: str | None, password: str | None) -> bool:
        """Whether ``card`` is the patron of the patron session, and ``password`` (when
        the message carries one) the one that was accepted for it."""
        if self.state != PATRON_SESSION or not card or card != self.patron or self._patron_digest is None:
            return False
        if not password:
            return True
        return hmac.compare_digest(self._digest(password), self._patron_digest)


def language_of(code: str, default: str) -> str:
    """The session language for a SIP2 language code: English for 001 (and 024, United
    Kingdom), Japanese for 014, else ``default``."""
    return {"001": "en", "024": "en", "014": "ja"}.get(code, default)


def _foreign_protocol(first: bytes) -> str | None:
    """Why the first bytes of a connection are not SIP2 at all, or None."""
    if first[:1] == b"\x16" and first[1:2] in (b"\x03", b""):
        return "a TLS handshake on the plain SIP2 port (put a TLS proxy such as stunnel in front of it)"
    for verb in (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS "):
        if first.startswith(verb):
            return "an HTTP request on the SIP2 port"
    return None
