"""The Z39.50 association as a state machine, sans I/O (in the manner of h11).

The rules are one table, ``TRANSITIONS``: (role, state, direction, kind) -> next
state.  ``Session`` applies it to every APDU that is sent or received; anything
the table does not allow is a protocol error, which ends the association with a
Close (reason protocolError).  Bytes in, PDUs out; PDUs in, bytes out; the
caller owns the socket and the clock.

Kinds of APDU: an Init request, an Init response accepting or rejecting, an
operation request (Search, Present, DeleteResultSet, Scan, Sort) or its
response, and Close.  Operations are not concurrent (the gateway never offers
the concurrentOperations option): one request is outstanding at a time, so a
client that pipelines gets its requests answered in order, one after another.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import pdu as P
from .ber import BERError

ORIGIN, TARGET = "origin", "target"            # client, server
SEND, RECV = "send", "recv"

# states
AWAIT_INIT = "awaiting-init"        # connected, no Init yet
INIT_PENDING = "init-pending"       # Init request sent/received, response outstanding
OPEN = "open"                       # initialised, idle
OPERATION = "operation"             # one operation request outstanding
PEER_CLOSED = "peer-closed"         # peer sent Close; we owe our Close in reply
CLOSING = "closing"                 # we sent Close; waiting for the peer's Close (or the socket's end)
CLOSED = "closed"

INIT_REQUEST, INIT_ACCEPT, INIT_REJECT = "init-request", "init-accept", "init-reject"
REQUEST, RESPONSE, CLOSE = "request", "response", "close"

_LIVE = (AWAIT_INIT, INIT_PENDING, OPEN, OPERATION)

TRANSITIONS: dict[tuple[str, str, str, str], str] = {}


def _rule(role: str, states, direction: str, kind: str, to: str) -> None:
    for state in (states if isinstance(states, tuple) else (states,)):
        TRANSITIONS[(role, state, direction, kind)] = to


for _role, _mine, _theirs in ((TARGET, SEND, RECV), (ORIGIN, RECV, SEND)):
    # the origin initialises; the target answers
    _rule(_role, AWAIT_INIT, _theirs, INIT_REQUEST, INIT_PENDING)
    _rule(_role, INIT_PENDING, _mine, INIT_ACCEPT, OPEN)
    _rule(_role, INIT_PENDING, _mine, INIT_REJECT, CLOSED)
    # re-initialisation: a new Init on an idle association (yaz-client's `init`;
    # Zebra and yaz-ztest accept it); rejected, it ends the association like a first one
    _rule(_role, OPEN, _theirs, INIT_REQUEST, INIT_PENDING)
    # one operation at a time
    _rule(_role, OPEN, _theirs, REQUEST, OPERATION)
    _rule(_role, OPERATION, _mine, RESPONSE, OPEN)
    # either side may close at any time; the other answers with Close
    _rule(_role, _LIVE, SEND, CLOSE, CLOSING)
    _rule(_role, _LIVE, RECV, CLOSE, PEER_CLOSED)
    _rule(_role, PEER_CLOSED, SEND, CLOSE, CLOSED)
    _rule(_role, CLOSING, RECV, CLOSE, CLOSED)

RESPONSE_FOR = {
    P.SearchRequest: P.SearchResponse, P.PresentRequest: P.PresentResponse,
    P.DeleteResultSetRequest: P.DeleteResultSetResponse, P.ScanRequest: P.ScanResponse,
    P.SortRequest: P.SortResponse,
}
_RESPONSES = frozenset(RESPONSE_FOR.values())


def kind_of(pdu) -> str:
    if isinstance(pdu, P.InitializeRequest):
        return INIT_REQUEST
    if isinstance(pdu, P.InitializeResponse):
        return INIT_ACCEPT if pdu.result else INIT_REJECT
    if isinstance(pdu, P.Close):
        return CLOSE
    if type(pdu) in RESPONSE_FOR:
        return REQUEST
    if type(pdu) in _RESPONSES:
        return RESPONSE
    raise TypeError(f"not an APDU: {pdu!r}")


class LocalProtocolError(Exception):
    """This side tried to send something the state table forbids (a bug in the caller)."""


@dataclass(frozen=True)
class NeedData:
    """No complete APDU buffered: feed more bytes."""


@dataclass(frozen=True)
class ProtocolViolation:
    """The peer broke the protocol (malformed or oversized BER, an APDU not
    allowed now, one this gateway does not support).  The caller sends
    ``Session.close_for(violation)`` and ends the connection."""
    reason: str
    close_reason: int = 6              # protocolError (4 resources for oversized input)


@dataclass(frozen=True)
class ConnectionClosed:
    """The association is over (Close exchanged, or rejected Init)."""


NEED_DATA = NeedData()


class Session:
    """One association, as ``role`` (TARGET for the server, ORIGIN for the client)."""

    def __init__(self, role: str, *, max_apdu: int = 1024 * 1024, encoding: str = "utf-8"):
        if role not in (ORIGIN, TARGET):
            raise ValueError(role)
        self.role = role
        self.state = AWAIT_INIT
        self.encoding = encoding
        self.max_apdu = max_apdu
        self.pending: type | None = None           # type of the outstanding operation request
        self._framer = P.apdu_framer(max_length=max_apdu)
        self._queue: list[bytes] = []
        self._violation: ProtocolViolation | None = None
        self._eof = False

    # -- input
    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer (b"" for end of stream)."""
        if not data:
            self._eof = True
            return
        if self._violation is not None:
            return
        try:
            self._queue.extend(self._framer.feed(data))
        except BERError as exc:
            oversized = "max_length" in exc.reason or "exceeds" in exc.reason
            self._violation = ProtocolViolation(f"bad BER from peer: {exc}", 4 if oversized else 6)

    def next_event(self):
        """The next APDU from the peer, or NEED_DATA, a ProtocolViolation, or
        ConnectionClosed.  Each APDU is checked against the state table here."""
        if self.state == CLOSED:
            return ConnectionClosed()
        if not self._queue:
            if self._violation is not None:
                violation, self._violation = self._violation, None
                self._queue.clear()
                return violation
            if self._eof:
                self.state = CLOSED
                return ConnectionClosed()
            return NEED_DATA
        data = self._queue.pop(0)
        try:
            pdu = P.decode_pdu(data, encoding=self.encoding, max_length=self.max_apdu)
        except P.UnsupportedAPDU as exc:
            return self._violate(f"unsupported APDU [{exc.tag}]")
        except BERError as exc:
            return self._violate(f"malformed APDU: {exc}")
        kind = kind_of(pdu)
        new = TRANSITIONS.get((self.role, self.state, RECV, kind))
        if new is None:
            if self.state == CLOSING:
                return self.next_event()           # late traffic after our Close: discarded
            return self._violate(f"{type(pdu).__name__} not allowed in state {self.state}")
        if kind == RESPONSE and (self.pending is None or RESPONSE_FOR.get(self.pending) is not type(pdu)):
            return self._violate(f"{type(pdu).__name__} does not answer {getattr(self.pending, '__name__', None)}")
        self._advance(new, pdu, kind)
        return pdu

    def _violate(self, reason: str, close_reason: int = 6) -> ProtocolViolation:
        self._queue.clear()
        return ProtocolViolation(reason, close_reason)

    # -- output
    def send(self, pdu) -> bytes:
        """Encode ``pdu`` after checking the table allows it now."""
        kind = kind_of(pdu)
        new = TRANSITIONS.get((self.role, self.state, SEND, kind))
        if new is None:
            raise LocalProtocolError(f"cannot send {type(pdu).__name__} in state {self.state}")
        if kind == RESPONSE and (self.pending is None or RESPONSE_FOR.get(self.pending) is not type(pdu)):
            raise LocalProtocolError(f"{type(pdu).__name__} does not answer {getattr(self.pending, '__name__', None)}")
        data = P.encode_pdu(pdu, encoding=self.encoding)
        self._advance(new, pdu, kind)
        return data

    def close_for(self, violation: ProtocolViolation) -> bytes:
        """The Close to send for a violation (allowed from any live state)."""
        if self.state in (PEER_CLOSED, CLOSING, CLOSED):
            self.state = CLOSED
            return P.encode_pdu(P.Close(violation.close_reason, diagnostic_information=violation.reason[:200]))
        return self.send(P.Close(violation.close_reason, diagnostic_information=violation.reason[:200]))

    def _advance(self, new: str, pdu, kind: str) -> None:
        if kind == REQUEST:
            self.pending = type(pdu)
        elif kind == RESPONSE:
            self.pending = None
        self.state = new

    @property
    def buffered(self) -> int:
        """Bytes held for a partial APDU (for idle/slow-peer policies)."""
        return self._framer.pending
