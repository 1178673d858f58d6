"""The contact date (連絡日) is the day the patron was really told that a hold is ready:
its ready mail was accepted by the mail server, or staff reached them by phone.

Seed 001 (Komae): 取置期間は連絡日から1週間. Issue 15: with the mail server down,
``contacted_at`` was set at the trap although no mail went out, and when the mail went out
two days later the deadline still counted from the allocation. Iizuka (000) and
Hiroshima (002) count from the trap: their deadlines do not move. A real SMTP server
(aiosmtpd) on loopback is down at the trap (nothing listens on its port) and up two days
later; the clock is injected."""
from __future__ import annotations

import email
import email.policy
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from circ_helpers import NOW, add_item, add_patron, loopback_mailer, new_circulation, one_row, rows, smtp_server
from circulation import holds, jobs, loans, notices
from circulation import schema as s
from circulation.notices import DispatchCounts, dispatch_due
from circulation.store import NotFound
from live_server import free_port

SUNDAY = NOW + timedelta(days=2)              # NOW is Friday 2026-11-20 10:00


class Inbox:
    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def body_to(self, address: str) -> str:
        [m] = [m for m in self.messages if m["To"] == address and "ご用意" in m["Subject"]]
        return m.get_content()


@pytest.fixture
async def circ(db_url):
    c = await new_circulation(db_url)
    yield c
    await c.db.dispose()


async def trapped(circ, card: str, library: str, branch: str, barcode: str, *, contact: str = "email"):
    """A hold of ``card`` whose copy comes back and is trapped now at ``branch`` (its pickup)."""
    await add_patron(circ, card, library, email=f"{card.lower()}@example.jp", phone="03-0000-0001",
                     default_contact_method=contact)
    title = f"isbn:97840000{barcode[-4:]}"
    await add_item(circ, barcode, title, library, branch, status="on_loan")
    placed = await holds.place(circ, card=card, title_id=title, pickup_branch=branch, channel="web",
                               role="patron", actor=card, title=f"本 {barcode}", contact_method=contact)
    assert placed.request_id is not None, placed.decision
    await loans.check_in(circ, barcode=barcode, branch=branch, role="staff", actor="counter")
    row = await request(circ, placed.request_id)
    assert row.state == "ON_HOLD_SHELF" and row.ready_at == circ.now()
    return row


async def request(circ, rid: int):
    return await one_row(circ, s.requests, s.requests.c.id == rid)


async def contact_events(circ, rid: int) -> list:
    return [(e.at, e.actor, e.reason) for e in await rows(circ, s.events, s.events.c.request_id == rid,
                                                         order_by=s.events.c.id) if e.event == "CONTACTED"]


async def test_komae_counts_from_the_day_the_mail_really_went_out(circ):
    komae = await trapped(circ, "K-100", "komae", "komae-central", "KM-0001")
    iizuka = await trapped(circ, "1000000100", "iizuka", "iizuka", "IZ-0001")
    hiroshima = await trapped(circ, "H-100", "hiroshima", "central", "HI-0001")
    before = {r.id: r.shelf_deadline for r in (komae, iizuka, hiroshima)}
    assert before[komae.id] == date(2026, 11, 27)          # 1 week from the allocation, for now

    # Friday: the mail server is down (nothing listens on its port)
    port = free_port()
    mailer = loopback_mailer(port)
    assert await dispatch_due(circ, mailer) == DispatchCounts(retried=6)   # hold_received + hold_ready
    for r in (komae, iizuka, hiroshima):
        row = await request(circ, r.id)
        assert row.contacted_at is None and row.shelf_deadline == before[r.id]
        assert await contact_events(circ, r.id) == []

    # Sunday: it is back on the same port, the same mailer's mails go out
    circ.clock.fixed = SUNDAY
    inbox = Inbox()
    with smtp_server(inbox, port):
        assert await dispatch_due(circ, mailer) == DispatchCounts(sent=6)

    k = await request(circ, komae.id)
    assert k.contacted_at == SUNDAY and k.shelf_deadline == date(2026, 11, 29)          # 連絡日から1週間
    assert "2026年11月29日(日)" in inbox.body_to("k-100@example.jp")
    assert await contact_events(circ, komae.id) == [
        (SUNDAY, "notices", f"hold_ready mail {await _ready_notice(circ, komae.id)} sent; shelf deadline 2026-11-29")]
    for r in (iizuka, hiroshima):                          # counted from the trap: unchanged
        row = await request(circ, r.id)
        assert row.contacted_at == SUNDAY and row.shelf_deadline == before[r.id]
    assert notices.date_ja(before[iizuka.id]) in inbox.body_to("1000000100@example.jp")

    # the shelf job agrees: on the 28th Iizuka's hold has expired, Komae's waits
    circ.clock.fixed = datetime(2026, 11, 28, 9, 0)
    await jobs.expire_shelf(circ)
    assert (await request(circ, iizuka.id)).state == "SHELF_EXPIRED"
    assert (await request(circ, komae.id)).state == "ON_HOLD_SHELF"
    circ.clock.fixed = datetime(2026, 11, 30, 9, 0)
    await jobs.expire_shelf(circ)
    assert (await request(circ, komae.id)).state == "SHELF_EXPIRED"


async def _ready_notice(circ, rid: int) -> int:
    async with circ.db.read() as conn:
        return (await conn.execute(select(s.notices.c.id).where(
            s.notices.c.request_id == rid, s.notices.c.kind == "hold_ready"))).scalar_one()


async def test_a_ready_mail_that_never_goes_out_leaves_the_hold_uncontacted(circ):
    komae = await trapped(circ, "K-101", "komae", "komae-central", "KM-0002")

    class Refusing(Inbox):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return "550 5.1.1 No such user"

    inbox = Refusing()
    with smtp_server(inbox) as port:
        assert await dispatch_due(circ, loopback_mailer(port)) == DispatchCounts(failed=2)
    assert inbox.messages == []
    row = await request(circ, komae.id)
    assert row.contacted_at is None and row.shelf_deadline == date(2026, 11, 27)       # from the allocation
    assert await contact_events(circ, komae.id) == []


async def test_staff_record_the_phone_call_and_komae_counts_from_it(circ):
    komae = await trapped(circ, "K-102", "komae", "komae-central", "KM-0003", contact="phone")
    hiroshima = await trapped(circ, "H-102", "hiroshima", "central", "HI-0002", contact="phone")
    port = free_port()
    assert await dispatch_due(circ, loopback_mailer(port)) == DispatchCounts(suppressed=4)   # no mail by phone
    [entry] = await notices.call_list(circ, "komae-central")
    assert (entry.request_id, entry.shelf_deadline) == (komae.id, date(2026, 11, 27))

    circ.clock.fixed = SUNDAY                       # nobody answered on Friday; Sunday they do
    told = await notices.record_call(circ, komae.id, actor="komae.counter")
    assert (told.contacted_at, told.shelf_deadline) == (SUNDAY, date(2026, 11, 29))
    assert await notices.call_list(circ, "komae-central") == []          # off the list
    assert [(a, who) for a, who, _ in await contact_events(circ, komae.id)] == [(SUNDAY, "komae.counter")]

    circ.clock.fixed = SUNDAY + timedelta(days=1)   # recorded again: the first contact counts
    again = await notices.record_call(circ, komae.id, actor="komae.counter")
    assert (again.contacted_at, again.shelf_deadline) == (SUNDAY, date(2026, 11, 29))
    assert len(await contact_events(circ, komae.id)) == 1

    h = await notices.record_call(circ, hiroshima.id, actor="hiroshima.counter")
    assert h.shelf_deadline == hiroshima.shelf_deadline                   # from the trap

    await loans.check_out(circ, barcode="KM-0003", card="K-102", branch="komae-central", role="staff",
                          actor="komae.counter")
    with pytest.raises(NotFound):                    # no longer on the shelf
        await notices.record_call(circ, komae.id, actor="komae.counter")
