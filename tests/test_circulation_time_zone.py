"""The service's days, deadlines and times are its profiles' time zone's (Asia/Tokyo for
the three seed systems), whatever the host's zone is (issue 15: on a UTC machine a hold
placed at 10:08 JST showed 01:08+09:00 and the lockout said "until 01:45").

Every test here runs with the host's zone set to UTC and to America/Los_Angeles
(``host_tz``: TZ and time.tzset, restored afterwards), on SQLite and PostgreSQL. The
clock is stopped at known instants, given as aware UTC times; around midnight UTC two
instants an hour apart fall on different Japan days (2026-11-20 14:30 UTC is 23:30 on
Friday the 20th in Japan, 15:30 UTC is 00:30 on Saturday the 21st)."""
from __future__ import annotations

import asyncio
import email
import email.policy
import os
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import connectors.ncip.model as nm
from circ_helpers import CHEAP_HASHING, add_item, add_patron, loopback_mailer, new_circulation, one_row, smtp_server
from circulation import auth, holds, jobs, loans, notices
from circulation import schema as s
from circulation.ill.common import Ill
from circulation.ncip import NcipNode
from circulation.service import Circulation
from circulation.store import Clock, Database
from connectors.ncip.config import load as load_ncip
from ill_helpers import config_for
from lifecycle.profiles import ProfileError, load_all, network_zone
from live_server import Server
from test_circulation_api import EMILY, PW, T6, Client, _prepare

TOKYO = ZoneInfo("Asia/Tokyo")
UTC = timezone.utc
LATE_FRIDAY = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)        # 2026-11-20 23:30 in Japan
EARLY_SATURDAY = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)     # 2026-11-21 00:30 in Japan


@pytest.fixture(params=["UTC", "America/Los_Angeles"])
def host_tz(request):
    """The host's time zone for the test (TZ + time.tzset), put back afterwards."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        # the host really is elsewhere: its wall clock is 9 or more hours off Japan's
        assert abs(datetime.now() - datetime.now(TOKYO).replace(tzinfo=None)) > timedelta(hours=8)
        yield request.param
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_the_running_clock_is_japan_time_on_a_host_in_another_zone(host_tz):
    circ = Circulation(Database("sqlite+aiosqlite:///:memory:"))
    assert circ.clock.zone == TOKYO
    japan = datetime.now(TOKYO).replace(tzinfo=None)
    # one hour of slack: the host's own wall clock is 9 to 17 hours away
    assert abs(circ.now() - japan) < timedelta(hours=1)
    assert abs(circ.now() - datetime.now()) > timedelta(hours=8)
    assert circ.clock.aware(datetime(2026, 11, 20, 10, 8)).isoformat() == "2026-11-20T10:08:00+09:00"
    assert circ.clock.local(datetime(2026, 11, 20, 1, 8, tzinfo=UTC)) == datetime(2026, 11, 20, 10, 8)


def test_a_network_runs_in_one_time_zone():
    profiles = load_all()
    assert {p.timezone for p in profiles.values()} == {"Asia/Tokyo"}
    assert network_zone(profiles) == TOKYO
    import dataclasses
    mixed = dict(profiles, komae=dataclasses.replace(profiles["komae"], timezone="Europe/London"))
    with pytest.raises(ProfileError, match=r"one network runs in one time zone") as e:
        network_zone(mixed)
    assert "komae: Europe/London" in str(e.value) and "iizuka: Asia/Tokyo" in str(e.value)
    with pytest.raises(ProfileError, match="one network runs in one time zone"):
        Circulation(Database("sqlite+aiosqlite:///:memory:"), mixed)


def test_a_profile_names_a_real_time_zone():
    import tomllib

    from config import locate
    from lifecycle.profiles import parse_profile

    data = tomllib.loads(locate("profiles/iizuka.toml").read_text(encoding="utf-8"))
    assert parse_profile(data).zone == TOKYO
    data["timezone"] = "Asia/Iizuka"
    with pytest.raises(ProfileError, match=r"timezone: 'Asia/Iizuka' is not a time zone name"):
        parse_profile(data)
    del data["timezone"]
    with pytest.raises(ProfileError, match=r"timezone: missing"):
        parse_profile(data)


def test_serve_refuses_profiles_in_two_zones(tmp_path, monkeypatch, capsys):
    import config
    import gateway.cli as cli

    profiles = tmp_path / "conf" / "profiles"
    profiles.mkdir(parents=True)
    for name in ("iizuka", "komae"):
        text = config.locate(f"profiles/{name}.toml").read_text(encoding="utf-8")
        if name == "komae":
            text = text.replace('timezone = "Asia/Tokyo"', 'timezone = "Europe/London"')
        (profiles / f"{name}.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv(config.ENV, str(tmp_path / "conf"))
    (tmp_path / "circ.db").write_bytes(b"")
    code = cli.main(["serve", "--data-dir", str(tmp_path / "data"),
                     "--circ-db", f"sqlite+aiosqlite:///{tmp_path / 'circ.db'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "unioncat serve: policy profiles:" in err and "iizuka: Asia/Tokyo, komae: Europe/London" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- the API

def test_a_hold_and_a_lockout_show_japan_times(host_tz, db_url, tmp_path):
    """The hold placed at 10:08 JST (01:08 UTC) shows 10:08+09:00 on the 20th; the lockout
    says until 10:45; an input time in UTC is the same instant."""
    auth.configure_password_hashing(**CHEAP_HASHING)
    try:
        asyncio.run(_prepare(db_url))
        clock = Clock(datetime(2026, 11, 20, 1, 8, tzinfo=UTC))
        srv = Server(tmp_path, circulation=Circulation(Database(db_url), load_all(), clock), circulation_jobs={})
        try:
            emily = Client(srv.base)
            emily.login(EMILY, PW[EMILY], bearer=True)
            placed = emily.post("/me/requests", {"title_id": T6}, expect=201)
            [mine] = [r for r in emily.get("/me/requests", expect=200)["requests"]
                      if r["request_id"] == placed["request_id"]]
            assert mine["placed_at"] == "2026-11-20T10:08:00+09:00"

            clock.fixed = datetime(2026, 11, 20, 1, 15, tzinfo=UTC)              # 10:15 in Japan
            other = Client(srv.base)
            for i in range(4):
                other.post("/login", {"card_number": EMILY, "password": f"wrong{i}"}, expect=401)
            locked = other.post("/login", {"card_number": EMILY, "password": "wrong4"}, expect=429)
            assert locked["details"]["until"] == "2026-11-20T10:45:00+09:00"
            assert "2026年11月20日 10:45" in locked["message_ja"] and "2026-11-20 10:45" in locked["message_en"]
            assert locked.headers["Retry-After"] == "1800"

            # staff record a book-drop return dated in UTC: the same instant, the Japan day
            # before (23:30 on the 19th), from which the return counts
            counter = Client(srv.base)
            counter.staff_login("iizuka.counter")
            back = counter.post("/staff/checkin", {"barcode": "I-T3", "return_kind": "book_drop",
                                                   "dropped_at": "2026-11-19T14:30:00Z"}, expect=200)
            assert back["returned_at"] == "2026-11-19T23:30:00+09:00"
            late = counter.post("/staff/checkin", {"barcode": "I-T1", "return_kind": "book_drop",
                                                   "dropped_at": "2026-11-20T01:30:00Z"}, expect=422)
            assert late["error"] == "dropped_at_in_future"                     # 10:30 JST is after 10:15
        finally:
            srv.stop()
    finally:
        auth.configure_password_hashing(reset=True)


# --------------------------------------------------------------------------- days and deadlines

async def _iizuka(db_url: str) -> Circulation:
    circ = await new_circulation(db_url)
    await add_patron(circ, "1000000031", "iizuka", email="tz@example.jp", default_contact_method="email")
    await add_patron(circ, "1000000032", "iizuka")
    return circ


async def _trap_at(circ: Circulation, instant: datetime, barcode: str, title: str):
    await add_item(circ, barcode, title, "iizuka", "iizuka", status="on_loan")
    placed = await holds.place(circ, card="1000000031", title_id=title, pickup_branch="iizuka", channel="web",
                               role="patron", actor="1000000031", title="時差の本")
    assert placed.request_id is not None, placed.decision
    circ.clock.fixed = instant
    await loans.check_in(circ, barcode=barcode, branch="iizuka", role="staff", actor="iizuka.counter")
    return await one_row(circ, s.requests, s.requests.c.id == placed.request_id)


async def test_shelf_deadlines_fall_on_the_japan_day_around_midnight_utc(host_tz, db_url):
    circ = await _iizuka(db_url)
    try:
        friday = await _trap_at(circ, LATE_FRIDAY, "TZ-1", "isbn:9784000000901")
        saturday = await _trap_at(circ, EARLY_SATURDAY, "TZ-2", "isbn:9784000000902")
        assert (friday.ready_at, friday.shelf_deadline) == (datetime(2026, 11, 20, 23, 30), date(2026, 11, 27))
        assert (saturday.ready_at, saturday.shelf_deadline) == (datetime(2026, 11, 21, 0, 30), date(2026, 11, 28))

        # the Saturday hold expires when the 28th ends in Japan, not in the host's zone
        circ.clock.fixed = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)       # 28th, 23:30 in Japan
        assert await jobs.expire_shelf(circ) == 1                            # only Friday's (27th)
        assert (await one_row(circ, s.requests, s.requests.c.id == saturday.id)).state == "ON_HOLD_SHELF"
        circ.clock.fixed = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)       # 29th, 00:30 in Japan
        assert await jobs.expire_shelf(circ) == 1
        assert (await one_row(circ, s.requests, s.requests.c.id == saturday.id)).state == "SHELF_EXPIRED"
    finally:
        await circ.db.dispose()


async def test_due_dates_and_overdue_fall_on_the_japan_day(host_tz, db_url):
    circ = await _iizuka(db_url)
    try:
        for barcode in ("TZ-3", "TZ-4"):
            await add_item(circ, barcode, f"isbn:97840000009{barcode[-1]}0", "iizuka", "iizuka")
        circ.clock.fixed = LATE_FRIDAY
        friday = await loans.check_out(circ, barcode="TZ-3", card="1000000032", branch="iizuka", role="staff",
                                       actor="iizuka.counter")
        circ.clock.fixed = EARLY_SATURDAY
        saturday = await loans.check_out(circ, barcode="TZ-4", card="1000000032", branch="iizuka", role="staff",
                                         actor="iizuka.counter")
        assert (friday.due, saturday.due) == (date(2026, 12, 4), date(2026, 12, 5))      # 14 days
        circ.clock.fixed = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)          # 5th, 23:30 in Japan
        assert await jobs.mark_overdue(circ) == 1                             # the Friday loan only
        circ.clock.fixed = datetime(2026, 12, 5, 15, 30, tzinfo=UTC)          # 6th in Japan
        assert await jobs.mark_overdue(circ) == 1
    finally:
        await circ.db.dispose()


async def test_the_ready_mail_is_dated_and_worded_in_japan_time(host_tz, db_url):
    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    circ = await _iizuka(db_url)
    try:
        row = await _trap_at(circ, EARLY_SATURDAY, "TZ-5", "isbn:9784000000905")
        with smtp_server(Handler()) as port:
            counts = await notices.dispatch_due(circ, loopback_mailer(port))   # a mailer with no zone
        assert counts.sent == 2                                     # hold_received, hold_ready
        assert [m["Date"] for m in received] == ["Sat, 21 Nov 2026 00:30:00 +0900"] * 2
        [mail] = [m for m in received if "ご用意" in m["Subject"]]
        assert f"{notices.date_ja(row.shelf_deadline)}" in mail.get_content()
        assert notices.date_ja("2026-11-20T15:30:00+00:00", TOKYO) == "2026年11月21日(土)"
        assert notices.datetime_en(datetime(2026, 11, 20, 15, 30, tzinfo=UTC), TOKYO) == "Sat 21 Nov 2026, 00:30"
    finally:
        await circ.db.dispose()


# --------------------------------------------------------------------------- ILL and NCIP messages

async def test_ill_and_ncip_messages_carry_japan_times(host_tz, db_url):
    circ = await new_circulation(db_url)
    try:
        circ.clock.fixed = EARLY_SATURDAY
        ill = Ill(circ, config_for("ISIL:JP-TZ", {}, 8080))
        assert ill.now() == EARLY_SATURDAY and ill.now().utcoffset() == timedelta(hours=9)
        assert ill.now().isoformat() == "2026-11-21T00:30:00+09:00"
        assert ill.local(datetime(2026, 12, 4, 15, 0, tzinfo=UTC)) == datetime(2026, 12, 5, 0, 0)
        assert ill.local(datetime(2026, 12, 4, 15, 0)) == datetime(2026, 12, 5, 0, 0)   # naive: UTC
        assert ill.end_of(date(2026, 12, 5)).isoformat() == "2026-12-05T23:59:59+09:00"

        await add_patron(circ, "3000000001", "hiroshima", name="時差", default_pickup_branch="central")
        await add_item(circ, "H-TZ", "isbn:9784000000906", "hiroshima", "central")
        node = NcipNode(circ, load_ncip({"ncip": {"agency_id": "JP-TZ", "clients": {
            "RS": {"token": "rs-token", "systems": ["hiroshima"]}}}}, env={}))
        out = await node.check_out_item(nm.CheckOutItem(user_id=nm.UserId("3000000001"), item_id=nm.ItemId("H-TZ")),
                                        node.config.clients["RS"])
        assert out.date_due.isoformat() == "2026-12-05T23:59:59+09:00"      # 14 days from the 21st
    finally:
        await circ.db.dispose()
