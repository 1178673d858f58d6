"""The SIP2 server over real TCP on 127.0.0.1, against the circulation database (SQLite
and PostgreSQL): kiosk logins, patrons with their passwords and the lockout, loans,
returns, renewals and item information through the engine, Hiroshima's kiosk rules
through the protocol, and bad, truncated and foreign input answered on a connection
that stays usable. The requests are written with sip2/'s own codec here;
tests/test_sip2_interop.py drives the server with clients others wrote."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, timedelta

import pytest

from circ_helpers import add_item, one_row, rows
from circulation import holds, loans
from circulation import schema as s
from circulation.store import Database
from sip2 import codec
from sip2 import messages as M
from sip2.config import KioskOptions, Sip2Config
from sip2_helpers import (
    BOOK,
    BOOK2,
    BOOK_AT_NAKA,
    COUNTER,
    KIOSK,
    KIOSK_PASSWORD,
    MAGAZINE,
    OTHER,
    OTHER_PASSWORD,
    PATRON,
    PATRON_NAME,
    PATRON_PASSWORD,
    TITLE,
    WHEN,
    YUKI_KIOSK,
    RawKiosk,
    hiroshima,
    sip2_server,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
async def kiosk_db(circ):
    await hiroshima(circ)
    return circ


@pytest.fixture
async def served(kiosk_db):
    async with sip2_server(kiosk_db) as server:
        yield server


@pytest.fixture
async def kiosk(served):
    k = await RawKiosk.connect(served.port)
    assert await k.login() == "1"
    yield k
    await k.close()


def af(m: M.Message) -> list[str]:
    return m.all("AF")


# ------------------------------------------------------------------ logins

async def test_a_kiosk_logs_in_with_its_account_and_sees_its_library(served, caplog):
    caplog.set_level(logging.INFO, "unioncat.sip2")
    k = await RawKiosk.connect(served.port)
    before = await k.status()
    assert before["online_status"] == "N" and af(before) == ["ログインしてください。"]
    assert await k.login(location="自動貸出機 1号機") == "1"
    st = await k.status()
    assert (st["online_status"], st["checkin_ok"], st["checkout_ok"], st["acs_renewal_policy"],
            st["offline_ok"], st["protocol_version"]) == ("Y", "Y", "Y", "Y", "N", "2.00")
    assert st.get("AO") == "hiroshima" and st.get("AM") == "広島市立図書館" and st.get("AN") == "中央図書館"
    assert st.get("BX") == "YYYNYYYYYNYNNNYN"
    assert "kiosk hiroshima.kiosk1 logged in at central (location '自動貸出機 1号機')" in caplog.text
    await k.close()


@pytest.mark.parametrize("user,password,location,why", [
    (KIOSK, "wrong-password", None, "refused: staff_login_failed"),
    (COUNTER, KIOSK_PASSWORD, None, "not a kiosk account (roles circulation"),
    (KIOSK, KIOSK_PASSWORD, "naka", "the kiosk says it is at 'naka', its account is bound to 'central'"),
    ("nobody", "whatever-pw", None, "refused: staff_login_failed"),
])
async def test_a_login_that_is_refused_says_why_in_the_log(served, caplog, user, password, location, why):
    caplog.set_level(logging.INFO, "unioncat.sip2")
    k = await RawKiosk.connect(served.port)
    assert await k.login(user, password, location) == "0"
    assert why in caplog.text
    # still not logged in: a check-out is refused, saying so
    r = await k.checkout(BOOK, password=PATRON_PASSWORD)
    assert r["ok"] == "0" and af(r)[0].startswith("自動貸出機がログインしていません")
    await k.close()


async def test_wrong_kiosk_passwords_lock_the_account(served, kiosk_db):
    k = await RawKiosk.connect(served.port)
    for _ in range(5):                                 # Hiroshima: 5 wrong passwords, 30 minutes
        assert await k.login(password="wrong-password") == "0"
    assert await k.login() == "0"                      # locked: even the right password
    kiosk_db.clock.fixed += timedelta(minutes=31)
    assert await k.login() == "1"
    await k.close()


async def test_encrypted_login_algorithms_are_refused(served, caplog):
    caplog.set_level(logging.INFO, "unioncat.sip2")
    k = await RawKiosk.connect(served.port)
    r = await k.ask("93", uid_algorithm="1", pwd_algorithm="1", fields=[("CN", KIOSK), ("CO", KIOSK_PASSWORD)])
    assert r["ok"] == "0" and "encrypted user id or password" in caplog.text
    await k.close()


# ------------------------------------------------------------------ patrons

async def test_a_patron_is_checked_with_card_and_password(kiosk, kiosk_db):
    r = await kiosk.patron_status(password=None)
    assert (r.get("BL"), r.get("CQ"), r.get("AE")) == ("Y", "N", PATRON_NAME)
    assert af(r) == ["パスワードを入力してください。"]
    r = await kiosk.patron_status(password="wrong")
    assert (r.get("BL"), r.get("CQ")) == ("Y", "N") and af(r) == ["利用者番号またはパスワードが正しくありません。"]
    assert len(await rows(kiosk_db, s.login_failures)) == 1            # it counts for the lockout
    r = await kiosk.patron_status()
    assert (r.get("BL"), r.get("CQ"), af(r)) == ("Y", "Y", [])
    assert r["patron_status"] == " " * 14 and r["language"] == "014"
    r = await kiosk.patron_status(card="0000000000")
    assert (r.get("BL"), r.get("CQ"), r.get("AE")) == ("N", "N", "")
    assert af(r) == ["その利用者番号は登録されていません。"]
    # the right password cleared the count; no session row was made
    assert await rows(kiosk_db, s.login_failures) == []
    assert await rows(kiosk_db, s.sessions) == []


async def test_a_patron_locked_out_is_told_until_when(kiosk):
    for _ in range(4):
        await kiosk.patron_status(password="wrong")
    r = await kiosk.patron_status(password="wrong")
    assert r.get("CQ") == "N" and "10:30までログインできません" in af(r)[0]
    r = await kiosk.patron_status()                    # the right password while locked
    assert r.get("CQ") == "N" and "までログインできません" in af(r)[0]
    r = await kiosk.checkout(BOOK, password=PATRON_PASSWORD)
    assert r["ok"] == "0" and "までログインできません" in af(r)[0]


async def test_the_patron_session_carries_the_password_until_it_ends(kiosk, kiosk_db):
    r = await kiosk.checkout(BOOK)                               # no AD, no patron session
    assert r["ok"] == "0" and af(r) == ["パスワードを入力してください。"]
    assert (await kiosk.patron_info())["language"] == "014"      # card and password accepted
    r = await kiosk.checkout(BOOK)
    assert r["ok"] == "1" and r.get("AH") == M.date_of(date(2026, 12, 4))
    r = await kiosk.checkout(BOOK2, card=OTHER)                  # another card: its own password
    assert r["ok"] == "0" and af(r) == ["パスワードを入力してください。"]
    assert (await kiosk.end_session()).get("AF") == "ご利用ありがとうございました。"
    r = await kiosk.checkout(BOOK2)
    assert r["ok"] == "0" and af(r) == ["パスワードを入力してください。"]
    r = await kiosk.checkout(BOOK2, password=PATRON_PASSWORD)
    assert r["ok"] == "1"
    assert len(await rows(kiosk_db, s.loans)) == 2


async def test_patron_information_lists_what_the_summary_asks_for(kiosk, kiosk_db):
    await kiosk.checkout(BOOK, password=PATRON_PASSWORD)
    await kiosk.checkout(BOOK2, password=PATRON_PASSWORD)
    d = await holds.place(kiosk_db, card=PATRON, title_id="isbn:9784000000035", pickup_branch="central",
                          channel="web", role="patron", actor=PATRON, contact_method="phone", title="中区の本")
    assert d.decision.allowed, d.decision
    r = await kiosk.patron_info(summary="  Y       ")
    assert r["charged_items_count"] == "0002" and r["unavailable_holds_count"] == "0001"
    assert r["hold_items_count"] == "0000" and r["overdue_items_count"] == "0000"
    assert r.all("AU") == [BOOK, BOOK2] and r.get("CB") == "0010"
    r = await kiosk.patron_info(summary="  Y       ", BP="2", BQ="2")
    assert r.all("AU") == [BOOK2]
    r = await kiosk.patron_info(summary="     Y    ")
    assert r.all("CD") == ["中区の本"] and r.all("AU") == []
    # three weeks on, both loans are overdue
    kiosk_db.clock.fixed += timedelta(days=21)
    r = await kiosk.patron_info(summary=" Y        ")
    assert r["overdue_items_count"] == "0002" and r.all("AT") == [BOOK, BOOK2]
    # without the password: no lists, no counts
    r = await kiosk.patron_info(password="wrong", summary="  Y       ")
    assert r.all("AU") == [] and r["charged_items_count"] == "0000"


async def test_the_patron_status_flags_come_from_the_policies(kiosk, kiosk_db):
    from sqlalchemy import update
    async with kiosk_db.db.transaction() as c:
        await c.execute(update(s.patrons).where(s.patrons.c.card_number == OTHER)
                        .values(card_expires=date(2026, 11, 1)))
    r = await kiosk.patron_status(card=OTHER, password=OTHER_PASSWORD)
    assert r["patron_status"][0] == "Y" and r["patron_status"][3] == "Y"      # card expired: no loans, no holds
    for n in range(10):
        await add_item(kiosk_db, f"L{n}", f"isbn:97840000010{n:02d}", "hiroshima", "central")
        assert (await kiosk.checkout(f"L{n}", password=PATRON_PASSWORD))["ok"] == "1"
    r = await kiosk.patron_status()
    assert r["patron_status"][5] == "Y"                                        # the loan limit (10)
    r = await kiosk.checkout(BOOK)
    assert r["ok"] == "0" and af(r) == ["貸出点数の上限に達しています。"]


async def test_an_english_patron_reads_english(kiosk):
    r = await kiosk.patron_info(language="001", password="wrong")
    assert r["language"] == "001" and af(r) == ["The card number or the password is wrong."]
    await kiosk.patron_info(language="001")
    r = await kiosk.checkout(MAGAZINE)
    assert af(r) == ["This item cannot be borrowed at the self-checkout machine: take it to the counter."]


# ------------------------------------------------------------------ Hiroshima's kiosk rules

async def test_hiroshima_kiosk_rules_come_through_the_protocol(served, kiosk_db):
    central = await RawKiosk.connect(served.port)
    assert await central.login() == "1"
    r = await central.checkout(MAGAZINE, password=PATRON_PASSWORD)              # 雑誌等: not at a machine
    assert r["ok"] == "0" and r["desensitize"] == "N" and r.get("AH") == ""
    assert af(r) == ["この資料は自動貸出機では貸出できません。カウンターへお持ちください。"]
    assert r.get("CK") == "002"
    yuki = await RawKiosk.connect(served.port)
    assert await yuki.login(YUKI_KIOSK) == "1"                                 # an account can exist there,
    r = await yuki.checkout(BOOK, password=PATRON_PASSWORD)                     # but 湯来河野閲覧室 has no machine
    assert r["ok"] == "0" and af(r) == ["この館には自動貸出機がありません。カウンターで貸出します。"]
    assert await rows(kiosk_db, s.loans) == []
    r = await central.checkout(BOOK, password=PATRON_PASSWORD)                  # a book at central: lent
    assert (r["ok"], r["desensitize"], r.get("CK"), r.get("AB")) == ("1", "Y", "001", BOOK)
    assert af(r) == ["貸出しました。", "返却期限は2026年12月4日です。"]
    loan = await one_row(kiosk_db, s.loans)
    assert (loan.channel, loan.branch, loan.due) == ("kiosk", "central", date(2026, 12, 4))
    ev = (await rows(kiosk_db, s.events, s.events.c.loan_id == loan.id))[0]
    assert (ev.actor_role, ev.actor, ev.channel) == ("patron", KIOSK, "kiosk")
    assert r.get("BK") == str(loan.id)
    await central.close()
    await yuki.close()


# ------------------------------------------------------------------ returns, renewals, items

async def test_a_return_at_the_machine_and_where_the_copy_goes(kiosk, kiosk_db):
    assert (await kiosk.checkout(BOOK, password=PATRON_PASSWORD))["ok"] == "1"
    r = await kiosk.checkin(BOOK)
    assert (r["ok"], r["resensitize"], r["alert"]) == ("1", "Y", "N")
    assert af(r) == ["返却しました。"] and r.get("AQ") == "中央図書館"
    loan = await one_row(kiosk_db, s.loans)
    assert (loan.return_kind, loan.return_branch) == ("return_machine", "central")
    # the same copy again: not on loan, staff look at it
    r = await kiosk.checkin(BOOK)
    assert (r["ok"], r["alert"]) == ("0", "Y") and af(r) == ["この資料は貸出中ではありません。"]
    # someone reserved the title meanwhile: the returned copy goes to the hold shelf
    assert (await kiosk.checkout(BOOK, password=PATRON_PASSWORD))["ok"] == "1"
    d = await holds.place(kiosk_db, card=OTHER, title_id=TITLE, pickup_branch="central", channel="web",
                          role="patron", actor=OTHER, contact_method="phone")
    assert d.decision.allowed, d.decision
    r = await kiosk.checkin(BOOK)
    assert (r["ok"], r["alert"]) == ("1", "Y")
    assert af(r) == ["返却しました。", "予約の資料です。係員にお渡しください。"]
    req = await one_row(kiosk_db, s.requests)
    assert req.state == "ON_HOLD_SHELF"
    # a copy of 中区図書館 returned at central goes home
    assert (await kiosk.checkout(BOOK_AT_NAKA, password=PATRON_PASSWORD))["ok"] == "1"
    r = await kiosk.checkin(BOOK_AT_NAKA)
    assert (r["ok"], r["alert"]) == ("1", "Y") and af(r)[1].startswith("他の館へ送る資料です")
    assert "中区図書館" in af(r)[1] and r.get("AQ") == "中区図書館"


async def test_a_copy_in_transit_put_into_the_machine_is_left_to_the_staff(kiosk, kiosk_db):
    d = await holds.place(kiosk_db, card=OTHER, title_id="isbn:9784000000035", pickup_branch="central",
                          channel="web", role="patron", actor=OTHER, contact_method="phone")
    assert d.decision.allowed
    res = await loans.check_in(kiosk_db, barcode=BOOK_AT_NAKA, branch="naka", role="staff", actor="naka")
    assert res.routing.kind == "transit_hold"                  # on its way to central for the hold
    r = await kiosk.checkin(BOOK_AT_NAKA)                      # arrivals are the staff's (ARRIVE_AT_PICKUP)
    assert (r["ok"], r["alert"]) == ("0", "Y")
    assert af(r) == ["この資料は自動貸出機では扱えません。カウンターへお持ちください。"]
    assert (await kiosk.item(BOOK_AT_NAKA))["circulation_status"] == "10"       # nothing changed
    assert (await one_row(kiosk_db, s.requests)).state == "IN_TRANSIT"


async def test_renewals_at_the_kiosk(kiosk, kiosk_db):
    assert (await kiosk.checkout(BOOK, password=PATRON_PASSWORD))["ok"] == "1"
    kiosk_db.clock.fixed += timedelta(days=7)                        # 2026-11-27
    r = await kiosk.renew(BOOK, password=PATRON_PASSWORD)
    assert (r["ok"], r["renewal_ok"]) == ("1", "Y")
    assert r.get("AH") == M.date_of(date(2026, 12, 11))               # 2 weeks from the earlier of today and due
    assert af(r) == ["貸出を延長しました。", "返却期限は2026年12月11日です。"]
    r = await kiosk.renew(BOOK, password=PATRON_PASSWORD)             # Hiroshima: once
    assert (r["ok"], r["renewal_ok"]) == ("0", "N") and r.get("AH") == M.date_of(date(2026, 12, 11))
    assert af(r) == ["延長できる回数を超えています。", "返却期限は2026年12月11日です。"]
    r = await kiosk.renew(BOOK, card=OTHER, password=OTHER_PASSWORD)  # not theirs
    assert r["ok"] == "0" and af(r) == ["この資料はお借りになっていません。"]
    # check-out of a copy the patron has, with the SC renewal policy Y: a renewal
    assert (await kiosk.checkout(BOOK2, password=PATRON_PASSWORD))["ok"] == "1"
    kiosk_db.clock.fixed += timedelta(days=3)
    r = await kiosk.checkout(BOOK2, password=PATRON_PASSWORD, renewal_policy="Y")
    assert (r["ok"], r["renewal_ok"], r["desensitize"]) == ("1", "Y", "N")
    loan = await one_row(kiosk_db, s.loans, s.loans.c.item_id == (await one_row(
        kiosk_db, s.items, s.items.c.barcode == BOOK2)).id)
    assert loan.renewals == 1 and r.get("AH") == M.date_of(loan.due)
    r = await kiosk.checkout(BOOK2, password=PATRON_PASSWORD)          # policy N: the engine's answer
    assert r["ok"] == "0" and af(r) == ["この資料は貸出中です。"]


async def test_item_information(kiosk, kiosk_db):
    r = await kiosk.item(BOOK)
    assert (r["circulation_status"], r.get("AJ"), r.get("AQ"), r.get("BG"), r.get("CF")) == \
        ("03", TITLE, "中央図書館", "hiroshima", "0")
    await kiosk.checkout(BOOK, password=PATRON_PASSWORD)
    await holds.place(kiosk_db, card=OTHER, title_id=TITLE, pickup_branch="central", channel="web",
                      role="patron", actor=OTHER, contact_method="phone", title="ひろしまの図書館")
    r = await kiosk.item(BOOK)
    assert (r["circulation_status"], r.get("AH"), r.get("CF")) == ("04", M.date_of(date(2026, 12, 4)), "1")
    assert r.get("AJ") == "ひろしまの図書館"             # the title, once the circulation knows it
    await kiosk.checkin(BOOK)
    r = await kiosk.item(BOOK)
    req = await one_row(kiosk_db, s.requests)
    assert r["circulation_status"] == "08" and r.get("CM") == M.date_of(req.shelf_deadline)
    r = await kiosk.item("NO-SUCH-ITEM")
    assert r["circulation_status"] == "01" and af(r) == ["この資料は登録されていません。カウンターへお持ちください。"]


# ------------------------------------------------------------------ bad input on the wire

async def test_bad_truncated_and_wrong_checksum_messages_get_answers_and_the_line_stays(kiosk, caplog):
    caplog.set_level(logging.INFO, "unioncat.sip2")
    good = codec.encode(M.make("17", transaction_date=WHEN, fields=[("AO", "x"), ("AB", BOOK)]), sequence=5)
    bad = good[:-5] + (b"0000" if good[-5:-1] != b"0000" else b"0001") + b"\r"
    await kiosk.write(bad)
    assert await kiosk.read() == b"96AZFEF6\r"
    await kiosk.write(b"hello, kiosk\r")
    assert await kiosk.read() == b"96AZFEF6\r"
    # a check-out cut short: its own response, ok 0, saying why
    await kiosk.write(b"11NN2026\r")
    r = codec.decode((await kiosk.read())[:-1]).message
    assert r.code == "12" and r["ok"] == "0" and "Checkout (11) needs 38 characters" in af(r)[1]
    # a check-in without its item
    await kiosk.write(b"09N" + WHEN.encode() * 2 + b"APcentral|AOx|\r")
    r = codec.decode((await kiosk.read())[:-1]).message
    assert r.code == "10" and r["ok"] == "0" and "AB (item identifier)" in af(r)[1]
    # 97: the last response again
    await kiosk.write(b"97AZFEF5\r")
    assert codec.decode((await kiosk.read())[:-1]).message == r
    # half a message, then the rest
    await kiosk.write(good[:10])
    await kiosk.write(good[10:])
    assert codec.decode((await kiosk.read())[:-1]).message["circulation_status"] == "03"
    # and a request not offered
    r = await kiosk.ask("15", hold_mode="+", transaction_date=WHEN, fields=[("AO", "x"), ("AA", PATRON)])
    assert r.code == "16" and r["ok"] == "0" and "Hold (15)" in af(r)[1]
    assert (await kiosk.item(BOOK))["circulation_status"] == "03"
    assert "does not verify" in caplog.text and "not a SIP2 message" in caplog.text


async def test_a_tls_client_on_the_plain_port_is_told_by_the_end_of_the_stream(served, caplog):
    caplog.set_level(logging.INFO, "unioncat.sip2")
    k = await RawKiosk.connect(served.port)
    await k.write(bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x00\x02\x00\x2f\x01\x00")
    assert await k.at_eof()
    assert "TLS handshake on the plain SIP2 port" in caplog.text
    await k.close()


async def test_a_flood_of_garbage_is_closed_with_a_reason(served, caplog):
    caplog.set_level(logging.INFO, "unioncat.sip2")
    k = await RawKiosk.connect(served.port)
    await k.write(b"nonsense\r" * 9)
    for _ in range(9):
        assert await k.read() == b"96AZFEF6\r"
    await k.write(b"more\r")
    assert await k.at_eof()
    assert "10 unreadable messages in a row" in caplog.text
    await k.close()


async def test_random_bytes_never_break_the_server(served, caplog):
    import random
    caplog.set_level(logging.INFO, "unioncat.sip2")
    rnd = random.Random(13)
    for round_ in range(6):
        k = await RawKiosk.connect(served.port)
        if round_ % 2:
            assert await k.login() == "1"
        answers = 0
        for _ in range(20):
            chunk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
            if rnd.random() < 0.5:
                chunk += b"\r"
            try:
                await k.write(chunk)
            except ConnectionError:
                break
        with contextlib.suppress(ConnectionError):
            await k.write(b"\r")
            k.writer.write_eof()                              # the end of our input: the server ends too
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                raw = await k.read()
                assert codec.decode(raw[:-1], "utf-8").message.code in M.RESPONSES
                answers += 1
        assert answers > 0
        await k.close()
    assert "Traceback" not in caplog.text and "failed" not in caplog.text
    k = await RawKiosk.connect(served.port)                   # and the server still serves
    assert await k.login() == "1" and (await k.item(BOOK))["circulation_status"] == "03"
    await k.close()


async def test_a_kiosk_speaking_shift_jis(kiosk_db):
    cfg = Sip2Config(kiosks={KIOSK: KioskOptions(encoding="cp932", institution_id="広島市立図書館")})
    await holds.place(kiosk_db, card=OTHER, title_id=TITLE, pickup_branch="central", channel="web",
                      role="patron", actor=OTHER, contact_method="phone", title="ポケットの図書館")
    async with sip2_server(kiosk_db, cfg) as server:
        k = await RawKiosk.connect(server.port)
        assert await k.login() == "1"                       # the login is read as UTF-8 (ASCII)
        k.encoding = "cp932"
        r = await k.item(BOOK)
        assert r.get("AJ") == "ポケットの図書館" and r.get("AQ") == "中央図書館"
        r = await k.checkin(BOOK)              # not on loan, but wanted: trapped for the hold
        assert af(r) == ["この資料は貸出中ではありません。", "予約の資料です。係員にお渡しください。"]
        await k.write(codec.encode(M.make("17", transaction_date=WHEN, fields=[("AO", "ポ"), ("AB", BOOK)]),
                                   encoding="cp932", sequence=3))
        raw = await k.read()
        assert "ポケットの図書館".encode("cp932") in raw
        assert codec.decode(raw[:-1], "cp932").message.get("AJ") == "ポケットの図書館"
        st = await k.status()
        assert st.get("AO") == "広島市立図書館"
        await k.close()


async def test_limits_on_connections_and_logins(kiosk_db, caplog):
    caplog.set_level(logging.INFO, "unioncat.sip2")
    cfg = Sip2Config(max_connections=1, login_timeout=1)
    async with sip2_server(kiosk_db, cfg) as server:
        first = await RawKiosk.connect(server.port)
        assert await first.login() == "1"
        second = await RawKiosk.connect(server.port)
        assert await second.at_eof()
        assert "refused, 1 connections open" in caplog.text
        await second.close()
        await first.close()
        await _until(lambda: server.connections == 0)
        idle = await RawKiosk.connect(server.port)           # never logs in
        assert await idle.at_eof()
        assert "closing: no login for 1" in caplog.text
        await idle.close()


async def test_the_database_unavailable_is_said_not_crashed(kiosk, kiosk_db, tmp_path, db_url, caplog):
    if not db_url.startswith("sqlite"):
        pytest.skip("the outage is made by pointing at a database file that cannot be opened")
    caplog.set_level(logging.INFO, "unioncat.sip2")
    real = kiosk_db.db
    kiosk_db.db = Database(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/circ.db")
    try:
        st = await kiosk.status()
        assert st["online_status"] == "N" and "しばらくしてから" in af(st)[0]
        r = await kiosk.checkout(BOOK, password=PATRON_PASSWORD)
        assert r["ok"] == "0" and "しばらくしてから" in af(r)[0]
    finally:
        await kiosk_db.db.dispose()
        kiosk_db.db = real
    assert (await kiosk.status())["online_status"] == "Y"
    assert "Traceback" not in caplog.text


async def _until(cond, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)
