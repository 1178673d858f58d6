"""The SIP2 connection's state table (sip2/session.py), sans I/O: which requests reach
the application in which state, what each response does to the state, the patron
session, and every kind of bad input answered (96, a refusal, or Close with a reason),
never an exception."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip2 import codec
from sip2 import messages as M
from sip2 import session as S
from sip2.session import Close, ConnectionClosed, LocalProtocolError, Reply, Request, Session

NOW = datetime(2026, 11, 20, 10, 0)
WHEN = "20261120    100000"
ROOT = Path(__file__).resolve().parents[1]


def new() -> Session:
    return Session(clock=lambda: NOW)


def wire(m: M.Message, seq: int | None = 0, encoding: str = "utf-8") -> bytes:
    return codec.encode(m, encoding=encoding, sequence=seq)


def login(seq=0) -> bytes:
    return wire(M.make("93", uid_algorithm="0", pwd_algorithm="0", fields=[("CN", "k"), ("CO", "pw")]), seq)


def patron_info(card="7300000001", password="hana2026", language="014", seq=1) -> bytes:
    return wire(M.make("63", language=language, transaction_date=WHEN, summary=" " * 10,
                       fields=[("AO", "x"), ("AA", card), ("AD", password)]), seq)


def patron_ok(card="7300000001", valid="Y") -> M.Message:
    return M.make("64", patron_status=" " * 14, language="014", transaction_date=WHEN,
                  **{f"{n}_count": "0000" for n in ("hold_items", "overdue_items", "charged_items", "fine_items",
                                                    "recall_items", "unavailable_holds")},
                  fields=[("AO", "x"), ("AA", card), ("AE", "花子"), ("BL", "Y"), ("CQ", valid)])


def feed(s: Session, data: bytes):
    s.receive_data(data)
    return s.next_event()


def response_of(data: bytes) -> M.Message:
    return codec.decode(data[:-1]).message


def logged_in() -> Session:
    s = new()
    ev = feed(s, login())
    assert isinstance(ev, Request) and ev.message.code == "93"
    s.send(M.make("94", ok="1"))
    assert s.state == S.LOGGED_IN
    return s


def test_the_tables_are_in_the_docs():
    doc = (ROOT / "docs" / "sip2.md").read_text()
    assert S.as_markdown() in doc


def test_the_table_knows_every_response_a_state_can_send():
    possible = {"93": {S.LOGIN_ACCEPTED, S.LOGIN_REFUSED}, "23": {S.PATRON_ACCEPTED, S.PATRON_REFUSED},
                "63": {S.PATRON_ACCEPTED, S.PATRON_REFUSED}, "35": {S.SESSION_ENDED}}
    for state, codes in S.ACCEPTS.items():
        for code in codes:
            for event in possible.get(code, {S.OTHER}):
                assert (state, event) in S.TRANSITIONS, (state, code, event)
    assert set(S.TRANSITIONS.values()) <= set(S.STATES)


def test_before_login_only_login_and_status_reach_the_application():
    s = new()
    ev = feed(s, wire(M.make("99", status_code="0", max_print_width="080", protocol_version="2.00")))
    assert isinstance(ev, Request) and ev.message.code == "99"
    s.send(M.refusal("99", ev.message, when=WHEN, screen=["ログインしてください"]))
    assert s.state == S.AWAITING_LOGIN
    ev = feed(s, wire(M.make("17", transaction_date=WHEN, fields=[("AO", "x"), ("AB", "H0001")]), 4))
    assert isinstance(ev, Reply) and "in state awaiting-login" in ev.reason
    r = codec.decode(ev.data[:-1])
    assert r.sequence == 4 and r.message.code == "18" and r.message.get("AB") == "H0001"
    assert r.message.all("AF")[0].startswith("自動貸出機がログインしていません")
    assert "send Login (93) first" in r.message.all("AF")[1]
    ev = feed(s, login(5))
    assert isinstance(ev, Request)
    assert s.send(M.make("94", ok="0")) == codec.encode(M.make("94", ok="0"), sequence=5)
    assert s.state == S.AWAITING_LOGIN


def test_a_refused_login_on_a_logged_in_connection_logs_it_out():
    s = logged_in()
    assert isinstance(feed(s, login(3)), Request)
    s.send(M.make("94", ok="0"))
    assert s.state == S.AWAITING_LOGIN
    ev = feed(s, wire(M.make("17", transaction_date=WHEN, fields=[("AO", "x"), ("AB", "H0001")]), 4))
    assert isinstance(ev, Reply)


def test_the_patron_session_remembers_the_card_and_its_password():
    s = logged_in()
    assert not s.patron_verified("7300000001", None)
    ev = feed(s, patron_info())
    assert isinstance(ev, Request)
    s.send(patron_ok())
    assert s.state == S.PATRON_SESSION and s.patron == "7300000001"
    assert s.patron_verified("7300000001", None)
    assert s.patron_verified("7300000001", "hana2026")
    assert not s.patron_verified("7300000001", "wrong")
    assert not s.patron_verified("7300000002", None)
    # a wrong password for the next patron ends the session
    feed(s, patron_info(card="7300000002", password="x", seq=2))
    s.send(patron_ok(card="7300000002", valid="N"))
    assert s.state == S.LOGGED_IN and s.patron is None
    assert not s.patron_verified("7300000001", None)
    # again, then End Patron Session
    feed(s, patron_info(seq=3))
    s.send(patron_ok())
    ev = feed(s, wire(M.make("35", transaction_date=WHEN, fields=[("AO", "x"), ("AA", "7300000001")]), 4))
    assert isinstance(ev, Request)
    s.send(M.make("36", end_session="Y", transaction_date=WHEN, fields=[("AO", "x"), ("AA", "7300000001")]))
    assert s.state == S.LOGGED_IN and not s.patron_verified("7300000001", None)


def test_a_patron_asking_in_english_gets_the_sessions_own_messages_in_english():
    s = logged_in()
    feed(s, patron_info(language="001"))
    s.send(patron_ok())
    assert s.language == "en"
    ev = feed(s, wire(M.make("15", hold_mode="+", transaction_date=WHEN, fields=[("AO", "x"), ("AA", "1")]), 2))
    assert response_of(ev.data).all("AF") == ["This server does not offer Hold (15)."]
    feed(s, wire(M.make("35", transaction_date=WHEN, fields=[("AO", "x"), ("AA", "1")]), 3))
    s.send(M.make("36", end_session="Y", transaction_date=WHEN, fields=[("AO", "x"), ("AA", "1")]))
    assert s.language == "ja"


@pytest.mark.parametrize("code,fixed,response", [
    ("01", {"card_retained": "N", "transaction_date": WHEN}, "24"),
    ("15", {"hold_mode": "+", "transaction_date": WHEN}, "16"),
    ("19", {"transaction_date": WHEN}, "20"),
    ("25", {"transaction_date": WHEN}, "26"),
    ("37", {"transaction_date": WHEN, "fee_type": "01", "payment_type": "00", "currency_type": "JPY"}, "38"),
    ("65", {"transaction_date": WHEN}, "66"),
])
def test_requests_not_offered_get_a_well_formed_no(code, fixed, response):
    s = logged_in()
    ev = feed(s, wire(M.make(code, fixed, fields=[("AO", "x"), ("AA", "7300000001")] if code != "19"
                             else [("AO", "x"), ("AB", "H1"), ("CH", "")]), 6))
    assert isinstance(ev, Reply)
    r = codec.decode(ev.data[:-1])
    assert r.message.code == response and r.sequence == 6
    assert "カウンター" in r.message.all("AF")[0] and f"({code})" in r.message.all("AF")[1]
    assert s.state == S.LOGGED_IN


def test_the_checksum_and_unreadable_messages_are_answered_96_and_a_flood_is_closed():
    s = logged_in()
    good = login(2)
    bad = good[:-5] + (b"0000" if good[-5:-1] != b"0000" else b"0001") + b"\r"
    ev = feed(s, bad)
    assert ev == Reply(b"96AZFEF6\r", ev.reason) and "does not verify" in ev.reason
    for junk in (b"hello\r", b"94xx\r", b"\x00\xff\r", b"7\r"):
        ev = feed(s, junk)
        assert isinstance(ev, Reply) and ev.data == b"96AZFEF6\r", junk
    # a good message in between resets the count
    assert isinstance(feed(s, login(3)), Request)
    s.send(M.make("94", ok="1"))
    events = [feed(s, b"junk\r") for _ in range(s.max_unreadable)]
    assert all(isinstance(e, Reply) for e in events[:-1])
    assert isinstance(events[-1], Close) and "10 unreadable messages in a row" in events[-1].reason
    assert s.next_event() == ConnectionClosed() and s.state == S.CLOSED


def test_a_request_cut_short_or_without_its_item_is_refused_saying_why():
    s = logged_in()
    ev = feed(s, b"11NN2026AY1AZ" + codec.checksum(b"11NN2026AY1AZ").encode() + b"\r")
    r = codec.decode(ev.data[:-1])
    assert r.sequence == 1 and r.message.code == "12" and r.message["ok"] == "0"
    assert r.message.all("AF")[0].startswith("自動貸出機からの電文を読めませんでした")
    assert "Checkout (11) needs 38 characters" in r.message.all("AF")[1]
    body = b"11NN" + WHEN.encode() + b" " * 18 + b"AOx|AA7300000001|AY2AZ"
    ev = feed(s, body + codec.checksum(body).encode() + b"\r")
    r = codec.decode(ev.data[:-1]).message
    assert r.get("AA") == "7300000001" and "AB (item identifier)" in r.all("AF")[1]


def test_97_and_a_repeated_message_get_the_last_response_without_doing_anything_twice():
    s = new()
    ev = feed(s, b"97AZFEF5\r")
    assert ev.data == b"96AZFEF6\r"
    s = logged_in()
    last = codec.encode(M.make("94", ok="1"), sequence=0)
    assert feed(s, b"97AZFEF5\r") == Reply(last)
    # the kiosk did not get the answer and sends the same login again: answered from memory
    ev = feed(s, login(0))
    assert isinstance(ev, Reply) and ev.data == last and "nothing done twice" in ev.reason
    # without a sequence number the same bytes are a new request (a status poll)
    status = wire(M.make("99", status_code="0", max_print_width="080", protocol_version="2.00"), None)
    assert isinstance(feed(s, status), Request)
    s.send(M.make("98", online_status="Y", checkin_ok="Y", checkout_ok="Y", acs_renewal_policy="Y",
                  status_update_ok="N", offline_ok="N", timeout_period="300", retries_allowed="003",
                  date_time_sync=WHEN, protocol_version="2.00", fields=[("AO", "x"), ("BX", S.SUPPORTED)]))
    assert isinstance(feed(s, status), Request)


def test_the_response_follows_the_requests_error_detection():
    s = new()
    ev = feed(s, codec.encode(M.make("93", uid_algorithm="0", pwd_algorithm="0",
                                     fields=[("CN", "k"), ("CO", "p")])))
    assert s.send(M.make("94", ok="1")) == b"941\r"
    ev = feed(s, codec.encode(M.make("17", transaction_date=WHEN, fields=[("AO", "x"), ("AB", "B")]),
                              with_checksum=True))
    assert isinstance(ev, Request) and ev.sequence is None
    out = s.send(M.make("18", circulation_status="03", security_marker="00", fee_type="01", transaction_date=WHEN,
                        fields=[("AB", "B"), ("AJ", "t")]))
    assert b"AY" not in out and codec.decode(out[:-1]).checksummed


@pytest.mark.parametrize("first,why", [
    (bytes.fromhex("160301020001000100") + b"\x03\x03" + b"\x00" * 40, "TLS handshake"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP request"),
])
def test_another_protocol_on_the_port_closes_the_connection_with_a_reason(first, why):
    s = new()
    ev = feed(s, first)
    assert isinstance(ev, Close) and why in ev.reason
    s.receive_data(b"9900802.00\r")
    assert s.next_event() == ConnectionClosed()


def test_an_overlong_message_is_answered_96_and_the_next_one_read():
    s = Session(clock=lambda: NOW, max_length=256)
    s.receive_data(b"17" + b"x" * 5000)
    assert s.next_event() == S.NEED_DATA
    ev = feed(s, b"yyy\r" + login(1))
    assert isinstance(ev, Reply) and ev.data == b"96AZFEF6\r" and "5005 bytes" in ev.reason
    assert isinstance(s.next_event(), Request)


def test_the_application_must_follow_the_rules():
    s = new()
    with pytest.raises(LocalProtocolError):
        s.send(M.make("94", ok="1"))
    ev = feed(s, login())
    with pytest.raises(LocalProtocolError, match="answer the pending request"):
        s.next_event()
    with pytest.raises(LocalProtocolError, match="93 is answered with 94"):
        s.send(M.make("96"))
    assert isinstance(ev, Request)
    with pytest.raises(LookupError):
        s.use_encoding("no-such-codec")


def test_a_kiosk_in_shift_jis():
    s = logged_in()
    s.use_encoding("cp932")
    m = M.make("09", no_block="N", transaction_date=WHEN, return_date=WHEN,
               fields=[("AP", "ポートタウン"), ("AO", "x"), ("AB", "H0001"), ("AC", "")])
    ev = feed(s, wire(m, 1, "cp932"))
    assert isinstance(ev, Request) and ev.message.get("AP") == "ポートタウン"
    out = s.send(M.make("10", ok="1", resensitize="Y", magnetic_media="N", alert="N", transaction_date=WHEN,
                        fields=[("AO", "x"), ("AB", "H0001"), ("AQ", "中央図書館"), ("AF", "返却しました。")]))
    assert "返却しました。".encode("cp932") in out
    assert codec.decode(out[:-1], "cp932").message.get("AQ") == "中央図書館"
    # UTF-8 sent to a cp932 kiosk's session (0x96 0x20 is no cp932 character): refused, saying so
    ev = feed(s, wire(M.make("17", transaction_date=WHEN, fields=[("AO", "x"), ("AB", "外 1")]), 2, "utf-8"))
    assert isinstance(ev, Reply) and "is not cp932" in ev.reason


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), st.sampled_from([login(1), patron_info(), b"\r", b"\n",
                                                                    b"97AZFEF5\r"])), max_size=12))
def test_whatever_arrives_the_session_answers_and_never_raises(chunks):
    s = Session(clock=lambda: NOW, max_length=512)
    for chunk in chunks:
        s.receive_data(chunk)
        while True:
            ev = s.next_event()
            if isinstance(ev, Request):
                s.send(M.refusal(ev.message.code, ev.message, when=WHEN, screen=["no"]) if ev.message.code != "93"
                       else M.make("94", ok="1"))
                continue
            if isinstance(ev, Reply):
                assert ev.data.endswith(b"\r")
                assert codec.decode(ev.data[:-1]).message.code in M.RESPONSES
                continue
            assert isinstance(ev, (S.NeedData, Close, ConnectionClosed))
            break
    s.receive_data(b"")
    assert s.next_event() == ConnectionClosed()


def test_the_protocol_room_imports_no_io_no_engine_no_gateway():
    import ast
    import sys

    allowed = {"__future__", "codecs", "collections", "dataclasses", "datetime", "hashlib", "hmac", "re",
               "secrets", "typing"}
    for path in sorted((ROOT / "sip2").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                assert top in allowed and top in sys.stdlib_module_names | {"__future__"}, (path.name, name)
