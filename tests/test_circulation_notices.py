"""Notices (circulation/notices.py, connectors/smtp.py, config/notices/) on SQLite and
PostgreSQL, delivered to a real SMTP server on loopback (aiosmtpd).

Seeds: 000 Iizuka (the mails it sends; 連絡不要 suppresses some; @hotmail does not
receive them; the library's address), 001 Komae (ready notices by phone or e-mail,
e-mails in allocation order)."""
from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from circ_helpers import NOW, add_item, add_patron, loopback_mailer, rows, smtp_server, until
from circulation import notices
from circulation import schema as s
from circulation.notices import DispatchCounts, NoticeError, Templates, dispatch_due
from circulation.service import Circulation
from circulation.store import Database
from config import locate
from connectors.smtp import Mailer, MailError
from lifecycle.profiles import load_profile, notice_suppression
from live_server import free_port

DOMAIN = "notices.unioncat.test"


# --------------------------------------------------------------------------- SMTP server

class Inbox:
    """aiosmtpd handler: keeps every accepted message; ``answers[address]`` are RCPT
    replies used up in order before the address is accepted; ``always[address]`` is
    the reply every time."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.answers: dict[str, list[str]] = {}
        self.always: dict[str, str] = {}
        self.rcpt_attempts = 0
        self.delay = 0.0
        self.port = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_attempts += 1
        if address in self.always:
            return self.always[address]
        if self.answers.get(address):
            return self.answers[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m, (_, rcpt) in zip(self.messages, self.envelopes) if address in rcpt]


@pytest.fixture
def smtp():
    inbox = Inbox()
    with smtp_server(inbox) as inbox.port:
        yield inbox


@pytest.fixture
def mailer(smtp):
    return loopback_mailer(smtp.port, message_id_domain=DOMAIN)


# --------------------------------------------------------------------------- data

async def patron(circ, card, library="iizuka", **kw):
    kw.setdefault("email", f"{card.lower()}@example.jp")
    kw.setdefault("name", "図書 太郎")
    kw.setdefault("default_contact_method", "email")
    return await add_patron(circ, card, library, **kw)


async def hold(circ, patron_id, *, library="iizuka", pickup="iizuka", contact="email",
               title="吾輩は猫である", state="ON_HOLD_SHELF", **kw) -> int:
    values = dict(patron_id=patron_id, library=library, title_id=f"t-{title}", pickup_branch=pickup,
                  contact_method=contact, channel="web", state=state, placed_at=NOW - timedelta(days=3),
                  title=title, updated_at=NOW)
    if state == "ON_HOLD_SHELF":
        values.update(ready_at=NOW, shelf_deadline=date(2026, 11, 27))
    values.update(kw)
    async with circ.db.transaction() as conn:
        return (await conn.execute(s.requests.insert().values(**values))).inserted_primary_key[0]


async def queue(circ, kind, patron_id, *, key=None, at=None, **kw) -> int:
    key = key or f"{kind}:{patron_id}:{kw.get('request_id')}:{kw.get('loan_id')}"
    async with circ.db.transaction() as conn:
        await notices.enqueue(conn, kind=kind, patron_id=patron_id, dedupe_key=key,
                              at=at or circ.now(), **kw)
        return (await conn.execute(select(s.notices.c.id).where(s.notices.c.dedupe_key == key))).scalar()


async def notice(circ, notice_id):
    (row,) = await rows(circ, s.notices, s.notices.c.id == notice_id)
    return row


def body(msg) -> str:
    """The decoded text body (text/plain lines travel as CRLF)."""
    return msg.get_content().replace("\r\n", "\n")


# --------------------------------------------------------------------------- delivery and templates

async def test_hold_ready_mail_arrives_in_japanese_with_pickup_branch_and_shelf_deadline(circ, smtp, mailer):
    pid = await patron(circ, "0000000001")
    rid = await hold(circ, pid, pickup="honami")
    nid = await queue(circ, "hold_ready", pid, request_id=rid)

    assert await dispatch_due(circ, mailer) == DispatchCounts(sent=1)

    (msg,) = smtp.messages
    assert smtp.envelopes == [("info@iizuka-library.jp", ["0000000001@example.jp"])]
    assert msg["To"] == "0000000001@example.jp"
    assert msg["From"] == "info@iizuka-library.jp"          # the library's address (seed)
    assert msg["Subject"] == "【飯塚市立図書館】予約資料のご用意ができました"
    assert msg["Message-ID"] == f"<notice-{nid}@{DOMAIN}>"
    assert email.utils.parsedate_to_datetime(msg["Date"]).utcoffset() == timedelta(hours=9)
    text = body(msg)
    assert "図書 太郎 様" in text
    assert "吾輩は猫である" in text and "穂波図書館" in text
    assert "取置期限日：2026年11月27日(金)" in text
    row = await notice(circ, nid)
    assert (row.status, row.attempts, row.sent_at, row.message_id) == ("sent", 1, NOW, f"<notice-{nid}@{DOMAIN}>")


async def test_patron_with_locale_en_gets_the_english_renewal_notice(circ, smtp, mailer):
    pid = await patron(circ, "0000000002", locale="en", name="Alice Smith")
    item = await add_item(circ, "B-1", "t-cat", "iizuka", "iizuka")
    async with circ.db.transaction() as conn:
        loan = (await conn.execute(s.loans.insert().values(
            item_id=item, patron_id=pid, branch="iizuka", lent_at=NOW - timedelta(days=10),
            due=date(2026, 12, 18), renewals=1))).inserted_primary_key[0]
    await queue(circ, "renewal_done", pid, loan_id=loan, data={"title": "I Am a Cat"})

    assert (await dispatch_due(circ, mailer)).sent == 1
    (msg,) = smtp.messages
    assert msg["Subject"] == "[飯塚市立図書館] Your loan has been renewed"
    assert "Dear Alice Smith," in body(msg)
    assert "I Am a Cat" in body(msg) and "New due date: Fri 18 Dec 2026" in body(msg)


async def test_unknown_locale_falls_back_to_japanese(circ, smtp, mailer):
    pid = await patron(circ, "0000000003", locale="zh-TW")
    await queue(circ, "test_mail", pid)
    await dispatch_due(circ, mailer)
    (msg,) = smtp.messages
    assert msg["Subject"] == "【飯塚市立図書館】メール送信テスト"
    assert "0000000003@example.jp 宛のメール送信テスト" in body(msg)


LOAN_KINDS = ("loan_recalled", "loan_overdue", "renewal_refused")


async def test_every_kind_renders_in_japanese_and_english_from_real_rows(circ, smtp, mailer):
    ja = await patron(circ, "0000000010")
    en = await patron(circ, "0000000011", locale="en")
    for pid in (ja, en):
        rid = await hold(circ, pid, title=f"本{pid}", cancelled_at=NOW, cancel_reason="WEBキャンセル",
                         cancel_channel="web")
        item = await add_item(circ, f"B{pid}", f"t{pid}", "iizuka", "iizuka")
        async with circ.db.transaction() as conn:
            loan = (await conn.execute(s.loans.insert().values(
                item_id=item, patron_id=pid, branch="iizuka", lent_at=NOW, due=date(2026, 12, 4)))
            ).inserted_primary_key[0]
        for kind in notices.KINDS:
            link = {"loan_id": loan} if kind in ("renewal_done", *LOAN_KINDS) else \
                   {"request_id": rid} if kind.startswith("hold_") else {}
            await queue(circ, kind, pid, **link)
    counts = await dispatch_due(circ, mailer)
    assert counts == DispatchCounts(sent=14 + 2 * len(LOAN_KINDS))
    subjects = {m["Subject"] for m in smtp.messages}
    assert {"【飯塚市立図書館】予約受付通知", "【飯塚市立図書館】予約取消通知", "【飯塚市立図書館】予約変更通知",
            "【飯塚市立図書館】貸出延長通知", "【飯塚市立図書館】新規パスワード登録通知",
            "[飯塚市立図書館] Your hold has been cancelled"} <= subjects
    # the notices about a partner library's copy on loan (ISO 18626)
    assert {"【飯塚市立図書館】返却のお願い（貸出館からの返却請求）", "【飯塚市立図書館】貸出延長ができませんでした",
            "[飯塚市立図書館] Overdue: an item borrowed from another library"} <= subjects
    for m in smtp.messages:
        assert "{{" not in body(m) and "None" not in body(m), body(m)
    cancelled_en = next(m for m in smtp.messages if m["Subject"] == "[飯塚市立図書館] Your hold has been cancelled")
    assert "Reason:       cancelled on the web" in body(cancelled_en)
    assert "Cancelled by: web" in body(cancelled_en)
    assert "listed in My account for 30 days" in body(cancelled_en)


def test_a_missing_template_file_is_an_error_when_the_templates_load(tmp_path):
    for f in locate("notices").iterdir():
        if f.name != "hold_ready.en.txt":
            (tmp_path / f.name).write_text(f.read_text())
    with pytest.raises(NoticeError, match="missing template .*hold_ready.en.txt"):
        Templates(tmp_path)


def test_a_template_variable_without_a_value_is_an_error_not_a_blank(tmp_path):
    for f in locate("notices").iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "test_mail.ja.txt").write_text("Subject: テスト\n\n{{ adressee }} 様\n")
    tpl = Templates(tmp_path)
    with pytest.raises(NoticeError, match="'adressee' is undefined"):
        tpl.render("test_mail", "ja", {"library_name": "x", "email": "a@b.jp", "addressee": "A"})
    (tmp_path / "test_mail.en.txt").write_text("no subject line\n")
    with pytest.raises(NoticeError, match="Subject"):
        Templates(tmp_path).render("test_mail", "en", {})


async def test_a_notice_whose_template_cannot_be_filled_fails_with_the_reason_and_sends_nothing(circ, smtp, mailer):
    pid = await patron(circ, "0000000004")
    rid = await hold(circ, pid, state="QUEUED")                # no shelf deadline yet
    nid = await queue(circ, "hold_ready", pid, request_id=rid)
    assert await dispatch_due(circ, mailer) == DispatchCounts(failed=1)
    row = await notice(circ, nid)
    assert row.status == "failed" and "no value for shelf_deadline" in row.last_error
    assert smtp.messages == []


def test_every_cancel_reason_the_hold_code_records_has_an_english_label():
    from circulation import holds
    codes = {v for k, v in vars(holds).items() if k.startswith("REASON_")}
    assert codes and codes <= set(notices.CANCEL_REASONS)


# --------------------------------------------------------------------------- suppression

def test_iizuka_no_contact_suppresses_received_ready_changed_but_not_web_cancel_or_test_mail():
    rules = load_profile("iizuka").notices
    mail = "a@example.jp"
    for kind in ("hold_received", "hold_ready", "hold_changed", "password_registered"):
        assert notice_suppression(rules, kind, "none", mail)[0] == "no_contact"
    for kind in ("hold_cancelled", "test_mail", "renewal_done"):
        assert notice_suppression(rules, kind, "none", mail) is None
    assert notice_suppression(rules, "hold_ready", "email", "x@hotmail.co.jp")[0] == "undeliverable_domain"
    assert notice_suppression(rules, "hold_ready", "email", "x@hotmailer.jp") is None
    assert notice_suppression(load_profile("hiroshima").notices, "hold_ready", "postcard", mail)[0] == \
        "contact_by_postcard"


def test_the_notices_section_of_a_profile_is_validated():
    import tomllib

    from lifecycle.profiles import ProfileError, parse_profile
    data = tomllib.loads(locate("profiles/iizuka.toml").read_text())
    data["notices"]["suppressed_when_no_contact"].append("hold_redy")
    with pytest.raises(ProfileError, match="hold_redy"):
        parse_profile(data)
    data["notices"]["suppressed_when_no_contact"].pop()
    data["notices"]["undeliverable_domains"] = ["@hotmail"]
    with pytest.raises(ProfileError, match="undeliverable_domains"):
        parse_profile(data)
    del data["notices"]
    with pytest.raises(ProfileError, match="notices: missing"):
        parse_profile(data)


async def test_no_contact_hold_gets_no_ready_mail_but_its_web_cancellation_is_mailed(circ, smtp, mailer):
    pid = await patron(circ, "0000000005", default_contact_method="none")
    rid = await hold(circ, pid, contact="none", cancel_reason="WEBキャンセル", cancel_channel="web",
                     cancelled_at=NOW)
    ready = await queue(circ, "hold_ready", pid, request_id=rid)
    cancelled = await queue(circ, "hold_cancelled", pid, request_id=rid)
    password = await queue(circ, "password_registered", pid)

    assert await dispatch_due(circ, mailer) == DispatchCounts(sent=1, suppressed=2)
    assert [m["Subject"] for m in smtp.messages] == ["【飯塚市立図書館】予約取消通知"]
    assert "取消理由　：WEBキャンセル" in body(smtp.messages[0])
    for nid in (ready, password):
        row = await notice(circ, nid)
        assert row.status == "suppressed" and row.last_error.startswith("no_contact:")
    assert (await notice(circ, cancelled)).status == "sent"
    # nothing left to do: a second run sends nothing
    assert await dispatch_due(circ, mailer) == DispatchCounts()


async def test_no_email_address_and_a_hotmail_address_are_suppressed_with_the_reason(circ, smtp, mailer):
    none = await patron(circ, "0000000006", email=None)
    hot = await patron(circ, "0000000007", email="reader@hotmail.com")
    a = await queue(circ, "hold_ready", none, request_id=await hold(circ, none))
    b = await queue(circ, "hold_ready", hot, request_id=await hold(circ, hot))
    assert await dispatch_due(circ, mailer) == DispatchCounts(suppressed=2)
    assert (await notice(circ, a)).last_error == "no_email: the patron has no e-mail address"
    assert (await notice(circ, b)).last_error.startswith("undeliverable_domain:")
    assert smtp.rcpt_attempts == 0


async def test_komae_phone_contact_puts_the_ready_notice_on_the_branch_call_list(circ, smtp, mailer):
    by_phone = await patron(circ, "K000000001", "komae", phone="03-1234-5678")
    by_mail = await patron(circ, "K000000002", "komae")
    r1 = await hold(circ, by_phone, library="komae", pickup="komae-central", contact="phone", title="坊っちゃん")
    r2 = await hold(circ, by_mail, library="komae", pickup="komae-central", contact="email", title="こころ")
    n1 = await queue(circ, "hold_ready", by_phone, request_id=r1)
    await queue(circ, "hold_ready", by_mail, request_id=r2)

    assert await dispatch_due(circ, mailer) == DispatchCounts(sent=1, suppressed=1)
    assert [m["To"] for m in smtp.messages] == ["k000000002@example.jp"]
    assert smtp.envelopes[0][0] == "info@library.komae.tokyo.jp"
    assert (await notice(circ, n1)).last_error.startswith("contact_by_phone:")
    (entry,) = await notices.call_list(circ, "komae-central")
    assert (entry.notice_id, entry.request_id, entry.number, entry.title, entry.shelf_deadline) == \
        (n1, r1, "03-1234-5678", "坊っちゃん", date(2026, 11, 27))
    assert await notices.call_list(circ, "nishikawara") == []


async def test_komae_ready_mails_go_out_in_allocation_order(circ, smtp, mailer):
    pids = [await patron(circ, f"K00000001{i}", "komae") for i in range(3)]
    rids = [await hold(circ, p, library="komae", pickup="komae-central", title=f"巻{i}")
            for i, p in enumerate(pids)]
    # queued in reverse id order, allocated (created_at) in order 0, 1, 2
    for i in (2, 1, 0):
        await queue(circ, "hold_ready", pids[i], request_id=rids[i], at=NOW - timedelta(minutes=10 - i))
    await dispatch_due(circ, mailer)
    assert [m["To"] for m in smtp.messages] == [f"k00000001{i}@example.jp" for i in range(3)]


async def test_real_hold_placed_and_trapped_mails_received_then_ready(circ, smtp, mailer):
    from circulation import holds
    from circulation import routing as rt
    await patron(circ, "0000000020")
    await add_item(circ, "I-1", "t-neko", "iizuka", "chikuho")
    placed = await holds.place(circ, card="0000000020", title_id="t-neko", pickup_branch="chikuho",
                               channel="web", role="patron", actor="0000000020",
                               contact_method="email", title="吾輩は猫である")
    assert placed.decision.allowed
    await rt.trap_from_shelf(circ, barcode="I-1", branch="chikuho", role="staff", actor="s1")
    (req,) = await rows(circ, s.requests, s.requests.c.id == placed.request_id)
    assert req.state == "ON_HOLD_SHELF"

    assert (await dispatch_due(circ, mailer)).sent == 2
    received, ready = smtp.messages
    assert received["Subject"] == "【飯塚市立図書館】予約受付通知"
    assert "受取館　：ちくほ図書館" in body(received) and "連絡方法：E-Mail" in body(received)
    assert ready["Subject"] == "【飯塚市立図書館】予約資料のご用意ができました"
    assert f"取置期限日：{notices.date_ja(req.shelf_deadline)}" in body(ready)


# --------------------------------------------------------------------------- retries and failures

async def test_a_451_is_retried_after_backoff_and_delivered_exactly_once(circ, smtp, mailer):
    pid = await patron(circ, "0000000030")
    smtp.answers["0000000030@example.jp"] = ["451 4.3.0 Try again later"]
    nid = await queue(circ, "hold_ready", pid, request_id=await hold(circ, pid))

    assert await dispatch_due(circ, mailer) == DispatchCounts(retried=1)
    row = await notice(circ, nid)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, NOW + timedelta(minutes=1))
    assert "451" in row.last_error
    assert await dispatch_due(circ, mailer) == DispatchCounts()        # not due yet
    circ.clock.fixed = NOW + timedelta(minutes=1)
    assert await dispatch_due(circ, mailer) == DispatchCounts(sent=1)
    assert await dispatch_due(circ, mailer) == DispatchCounts()
    assert len(smtp.messages) == 1 and smtp.rcpt_attempts == 2
    row = await notice(circ, nid)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)


async def test_a_550_fails_at_once_with_the_servers_answer(circ, smtp, mailer):
    pid = await patron(circ, "0000000031")
    smtp.always["0000000031@example.jp"] = "550 5.1.1 Mailbox unavailable"
    nid = await queue(circ, "test_mail", pid)
    assert await dispatch_due(circ, mailer) == DispatchCounts(failed=1)
    row = await notice(circ, nid)
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error.startswith("permanent:") and "550" in row.last_error
    assert smtp.messages == []


async def test_transient_failures_give_up_after_max_attempts_with_exponential_backoff(circ, smtp, mailer):
    pid = await patron(circ, "0000000032")
    smtp.always["0000000032@example.jp"] = "452 4.2.2 Mailbox full"
    nid = await queue(circ, "test_mail", pid)
    waits = []
    for attempt in range(1, 4):
        counts = await dispatch_due(circ, mailer, max_attempts=3)
        row = await notice(circ, nid)
        if attempt < 3:
            assert counts == DispatchCounts(retried=1)
            waits.append(row.next_attempt_at - circ.now())
            circ.clock.fixed = row.next_attempt_at
        else:
            assert counts == DispatchCounts(failed=1)
    assert waits == [timedelta(minutes=1), timedelta(minutes=2)]
    assert row.status == "failed" and row.attempts == 3 and "gave up after 3 attempts" in row.last_error


async def test_an_unreachable_server_is_a_transient_error(circ):
    dead = loopback_mailer(free_port(), timeout=2)
    pid = await patron(circ, "0000000033")
    nid = await queue(circ, "test_mail", pid)
    assert await dispatch_due(circ, dead) == DispatchCounts(retried=1)
    assert (await notice(circ, nid)).status == "pending"


async def test_a_notice_left_sending_by_a_dead_dispatcher_is_failed_not_resent_until_requeued(circ, smtp, mailer):
    pid = await patron(circ, "0000000040")
    first = await queue(circ, "test_mail", pid, key="first", at=NOW - timedelta(seconds=2))
    second = await queue(circ, "password_registered", pid, key="second")

    class Crash(Exception):
        pass

    class DiesMidSend(Mailer):
        async def send(self, *a, **kw):
            raise Crash("process killed while talking to the server")

    dying = DiesMidSend("127.0.0.1", smtp.port, from_address="x@unioncat.test", timeout=5,
                        message_id_domain=DOMAIN)
    with pytest.raises(Crash):
        await dispatch_due(circ, dying)
    assert (await notice(circ, first)).status == "sending"       # maybe delivered, maybe not
    assert (await notice(circ, second)).status == "pending"      # never tried: released

    # before the lease ends nobody touches it; afterwards it is failed, not resent
    assert await dispatch_due(circ, mailer) == DispatchCounts(sent=1)
    assert [m["Subject"] for m in smtp.messages] == ["【飯塚市立図書館】新規パスワード登録通知"]
    circ.clock.fixed = (await notice(circ, first)).claimed_until + timedelta(seconds=1)
    assert await dispatch_due(circ, mailer) == DispatchCounts(failed=1)
    row = await notice(circ, first)
    assert row.status == "failed" and "may or may not have been delivered" in row.last_error
    assert len(smtp.messages) == 1

    await notices.requeue(circ, first)
    assert await dispatch_due(circ, mailer) == DispatchCounts(sent=1)
    assert smtp.messages[-1]["Message-ID"] == f"<notice-{first}@{DOMAIN}>" == row.message_id
    with pytest.raises(ValueError, match="only failed or suppressed"):
        await notices.requeue(circ, first)


async def test_two_dispatchers_at_once_deliver_every_notice_exactly_once(circ, smtp, mailer, db_url):
    smtp.delay = 0.003
    pids = [await patron(circ, f"00000001{i:02d}") for i in range(24)]
    for i, pid in enumerate(pids):
        await queue(circ, "test_mail", pid, at=NOW - timedelta(seconds=60 - i))
    other = Circulation(Database(db_url), circ.profiles, circ.clock)

    async def drain(c):
        total = DispatchCounts()
        while (counts := await dispatch_due(c, mailer, batch=3)).total:
            total += counts
        return total

    try:
        a, b = await asyncio.gather(drain(circ), drain(other))
    finally:
        await other.db.dispose()
    assert a.sent + b.sent == 24 and a.sent > 0 and b.sent > 0
    assert a.failed == b.failed == a.retried == b.retried == 0
    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert sorted(m["To"] for m in smtp.messages) == sorted(f"00000001{i:02d}@example.jp" for i in range(24))
    assert {r.status for r in await rows(circ, s.notices)} == {"sent"}


# --------------------------------------------------------------------------- the mailer itself

async def test_mailer_builds_a_utf8_message_and_classifies_server_answers(smtp):
    # naive dates are read in the mailer's time zone, which the caller must give
    mailer = loopback_mailer(smtp.port, message_id_domain=DOMAIN, timezone=ZoneInfo("Asia/Tokyo"))
    msg = mailer.build_message("a@example.jp", "予約資料のご用意ができました", "本文です。\n",
                               message_id="<notice-1@x.test>", date=datetime(2026, 11, 20, 10, 0))
    raw = msg.as_bytes()
    assert b"Subject: =?utf-8?" in raw and "予約".encode() not in raw      # RFC 2047, 8-bit free
    assert msg["Date"] == "Fri, 20 Nov 2026 10:00:00 +0900"
    assert msg.get_content_charset() == "utf-8"
    zoneless = loopback_mailer(smtp.port)
    with pytest.raises(ValueError, match="naive"):
        zoneless.build_message("a@example.jp", "s", "b", message_id="<n@x.test>", date=datetime(2026, 11, 20, 10, 0))
    aware = zoneless.build_message("a@example.jp", "s", "b", message_id="<n@x.test>",
                                   date=datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc))
    assert aware["Date"] == "Fri, 20 Nov 2026 01:00:00 +0000"

    smtp.answers["busy@example.jp"] = ["421 4.7.0 Too busy"]
    smtp.always["gone@example.jp"] = "550 5.1.1 No such user"
    with pytest.raises(MailError) as e:
        await mailer.send("busy@example.jp", "s", "b", message_id="<a@x.test>", date=NOW)
    assert e.value.transient and e.value.code == 421
    with pytest.raises(MailError) as e:
        await mailer.send("gone@example.jp", "s", "b", message_id="<b@x.test>", date=NOW)
    assert e.value.permanent and e.value.code == 550
    assert await mailer.send("ok@example.jp", "件名", "本文\n", message_id="<c@x.test>", date=NOW) == "<c@x.test>"
    (got,) = smtp.messages
    assert (got["Subject"], body(got), got["Message-ID"]) == ("件名", "本文\n", "<c@x.test>")
    assert "secret" not in repr(Mailer(from_address="a@b.jp", username="u", password="secret"))


# --------------------------------------------------------------------------- the scheduler

async def test_scheduler_runs_the_notices_job_on_a_short_interval_and_stops_cleanly(circ, smtp, mailer):
    from circulation.jobs import Scheduler

    first = await patron(circ, "0000000050")
    await queue(circ, "test_mail", first)
    sched = Scheduler(circ, mailer, {"notices": 0.05})
    sched.start()

    try:
        await until(lambda: len(smtp.messages) == 1)
        later = await patron(circ, "0000000051")
        await queue(circ, "test_mail", later)              # picked up by a later run
        await until(lambda: len(smtp.messages) == 2)
    finally:
        await sched.stop(timeout=5)
    assert not sched.running and sched.failures["notices"] == 0 and sched.runs["notices"] >= 2
    runs = await rows(circ, s.job_runs, s.job_runs.c.job == "notices")
    assert len(runs) == sched.runs["notices"]
    assert all(r.finished_at is not None and r.error is None for r in runs)
    assert sum(r.changed for r in runs) == 2
    assert [m["To"] for m in smtp.messages] == ["0000000050@example.jp", "0000000051@example.jp"]
