"""The SIP2 server with SIP2 software others wrote, over real TCP on 127.0.0.1, against
the circulation database (SQLite and PostgreSQL):

* ``sip2`` 1.1 (PyPI; import name ``Sip2``), a client: used as shipped (it first tries TLS
  on the plain port, then falls back), with its own message building and parsing. Its
  checksums are sums of characters, not bytes, and drop leading zeros; the server takes
  both (docs/sip2.md).
* ``pysip2`` 0.1.0 (PyPI), an ACS-side library with a strict typed codec: no client, so
  its codec writes the requests and reads our responses here, over a socket of the
  test's own; it refuses any response whose fixed fields or required fields are not as
  the standard says.

And ``unioncat serve --sip2-port`` as a user starts it, with the kiosk account made by
``unioncat circ staff add --roles kiosk``."""
from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pysip2
import pytest
from Sip2.sip2 import Sip2

from circ_helpers import one_row, rows
from circulation import schema as s
from live_server import free_port
from sip2 import codec
from sip2 import messages as M
from sip2_helpers import (
    BOOK,
    BOOK2,
    KIOSK,
    KIOSK_PASSWORD,
    MAGAZINE,
    PATRON,
    PATRON_NAME,
    PATRON_PASSWORD,
    WHEN,
    hiroshima,
    sip2_server,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def served(circ):
    await hiroshima(circ)
    async with sip2_server(circ) as server:
        yield server


def sip2_client(port: int, tmp_path: Path, *, tls: bool = True) -> Sip2:
    c = Sip2()
    c.hostName, c.hostPort = "127.0.0.1", port
    c.tlsEnable = tls                      # True is its default: it probes for TLS first
    c.socketTimeout = 60                   # its own bound on waiting for an answer
    c.logfile_path = str(tmp_path)
    c.institutionId = "hiroshima"
    c.scLocation = "中央図書館 1号機"       # not a branch code: logged, the account's branch rules
    return c


# ------------------------------------------------------------------ the Sip2 client

async def test_the_sip2_client_lends_and_takes_back(served, circ, tmp_path):
    def kiosk_day() -> dict:
        c = sip2_client(served.port, tmp_path)
        c.connect()
        out = {"login_request": c.sip_login_request(KIOSK, KIOSK_PASSWORD)}
        out["login"] = c.sip_login_response(c.get_response(out["login_request"]))
        out["status"] = c.sip_sc_status_response(c.get_response(c.sip_sc_status_request()))
        c.patron, c.patronpwd = PATRON, PATRON_PASSWORD
        out["patron"] = c.sip_patron_status_response(c.get_response(c.sip_patron_status_request()))
        out["checkout"] = c.sip_checkout_response(c.get_response(c.sip_checkout_request(BOOK)))
        out["magazine"] = c.sip_checkout_response(c.get_response(c.sip_checkout_request(MAGAZINE)))
        out["info"] = c.sip_patron_information_response(c.get_response(c.sip_patron_information_request("charged")))
        out["item"] = c.sip_item_information_response(c.get_response(c.sip_item_information_request(BOOK)))
        out["checkin"] = c.sip_checkin_response(c.get_response(c.sip_checkin_request(BOOK)))
        out["end"] = c.sip_end_patron_session_response(c.get_response(c.sip_end_patron_session_request()))
        c.disconnect()
        return out

    got = await asyncio.to_thread(kiosk_day)
    assert got["login"]["fixed"]["Ok"] == "1"
    # its checksum sums the characters of 中央図書館 (CP), not the bytes sent: accepted all the same
    body, az = got["login_request"].rstrip("\r").rsplit("AZ", 1)
    assert int(az, 16) != int(codec.checksum((body + "AZ").encode("utf-8")), 16)
    assert int(az, 16) == (-sum(map(ord, body + "AZ"))) & 0xFFFF
    st = got["status"]
    assert (st["fixed"]["OnlineStatus"], st["fixed"]["CheckoutOk"], st["fixed"]["ProtocolVersion"]) == \
        ("Y", "Y", "2.00")
    assert st["variable"]["AM"] == ["広島市立図書館"] and st["variable"]["AN"] == ["中央図書館"]
    p = got["patron"]["variable"]
    assert (p["BL"], p["CQ"], p["AE"]) == (["Y"], ["Y"], [PATRON_NAME])
    co = got["checkout"]
    assert (co["fixed"]["Ok"], co["fixed"]["Desensitize"]) == ("1", "Y")
    assert co["variable"]["AH"] == [M.date_of(date(2026, 12, 4))]
    assert co["variable"]["AF"] == ["貸出しました。", "返却期限は2026年12月4日です。"]
    mg = got["magazine"]
    assert mg["fixed"]["Ok"] == "0"
    assert mg["variable"]["AF"] == ["この資料は自動貸出機では貸出できません。カウンターへお持ちください。"]
    info = got["info"]
    assert info["fixed"]["ChargedItemsCount"] == "0001" and info["variable"]["AU"] == [BOOK]
    assert got["item"]["fixed"]["CirculationStatus"] == "04"
    ci = got["checkin"]
    assert (ci["fixed"]["Ok"], ci["fixed"]["Alert"]) == ("1", "N") and ci["variable"]["AF"] == ["返却しました。"]
    assert got["end"]["fixed"]["EndSession"] == "Y"
    loan = await one_row(circ, s.loans)
    assert (loan.channel, loan.branch, loan.return_kind) == ("kiosk", "central", "return_machine")


async def test_the_sip2_client_renews_and_gets_refusals_it_can_read(served, circ, tmp_path):
    def day_one() -> dict:
        c = sip2_client(served.port, tmp_path, tls=False)
        c.connect()
        c.get_response(c.sip_login_request(KIOSK, KIOSK_PASSWORD))
        c.patron, c.patronpwd = PATRON, PATRON_PASSWORD
        out = {"checkout": c.sip_checkout_response(c.get_response(c.sip_checkout_request(BOOK2)))}
        c.patronpwd = "wrong"
        out["wrong"] = c.sip_renew_response(c.get_response(c.sip_renew_request(itemIdentifier=BOOK2)))
        c.disconnect()
        return out

    first = await asyncio.to_thread(day_one)
    assert first["checkout"]["fixed"]["Ok"] == "1"
    assert first["wrong"]["fixed"]["Ok"] == "0"
    assert first["wrong"]["variable"]["AF"] == ["利用者番号またはパスワードが正しくありません。"]
    circ.clock.fixed += timedelta(days=10)

    def day_ten() -> dict:
        c = sip2_client(served.port, tmp_path, tls=False)
        c.connect()
        c.get_response(c.sip_login_request(KIOSK, KIOSK_PASSWORD))
        c.patron, c.patronpwd = PATRON, PATRON_PASSWORD
        out = {"renew": c.sip_renew_response(c.get_response(c.sip_renew_request(itemIdentifier=BOOK2)))}
        out["again"] = c.sip_renew_response(c.get_response(c.sip_renew_request(itemIdentifier=BOOK2)))
        out["hold"] = c.sip_hold_response(c.get_response(c.sip_hold_request("+", itemIdentifier=BOOK)))
        c.disconnect()
        return out

    got = await asyncio.to_thread(day_ten)
    assert (got["renew"]["fixed"]["Ok"], got["renew"]["fixed"]["RenewalOk"]) == ("1", "Y")
    # 2 weeks from the earlier of today (11-30) and the due date: Monday 12-14, when central
    # is closed, so the next open day
    assert got["renew"]["variable"]["AH"] == [M.date_of(date(2026, 12, 15))]
    assert got["again"]["fixed"]["Ok"] == "0"
    assert got["again"]["variable"]["AF"][0] == "延長できる回数を超えています。"
    assert got["hold"]["fixed"]["Ok"] == "0" and "Hold (15)" in got["hold"]["variable"]["AF"][1]
    assert (await one_row(circ, s.loans)).renewals == 1


# ------------------------------------------------------------------ pysip2's strict codec

class PysipKiosk:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.seq = reader, writer, 0

    @classmethod
    async def connect(cls, port: int) -> "PysipKiosk":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def __call__(self, request):
        seq, self.seq = self.seq, (self.seq + 1) % 10
        self.writer.write(pysip2.encode_message(request, sequence_number=seq, checksum=True, encoding="utf-8"))
        await self.writer.drain()
        async with asyncio.timeout(60):
            frame = await self.reader.readuntil(b"\r")
        got = pysip2.decode_message(frame, encoding="utf-8")      # raises on anything not as the standard says
        assert got.sequence_number == seq
        return got.message

    async def close(self):
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def test_every_response_passes_pysip2s_strict_decoder(served, circ):
    k = await PysipKiosk.connect(served.port)
    patron = dict(institution_id="hiroshima", patron_identifier=PATRON, terminal_password="")
    r = await k(pysip2.SCStatusRequest(status_code="0", max_print_width="080", protocol_version="2.00"))
    assert isinstance(r, pysip2.ACSStatusResponse) and r.online_status == "N"
    r = await k(pysip2.LoginRequest(uid_algorithm="0", pwd_algorithm="0", login_user_id=KIOSK,
                                    login_password=KIOSK_PASSWORD, location_code="central"))
    assert r == pysip2.LoginResponse(ok="1")
    r = await k(pysip2.SCStatusRequest(status_code="0", max_print_width="080", protocol_version="2.00"))
    assert r.online_status == "Y" and r.supported_messages == "YYYNYYYYYNYNNNYN"
    r = await k(pysip2.PatronStatusRequest(language="014", transaction_date=WHEN, patron_password="nope", **patron))
    assert (r.valid_patron, r.valid_patron_password, r.personal_name) == ("Y", "N", PATRON_NAME)
    r = await k(pysip2.PatronInformationRequest(language="014", transaction_date=WHEN, summary="  Y       ",
                                                patron_password=PATRON_PASSWORD, **patron))
    assert isinstance(r, pysip2.PatronInformationResponse) and r.charged_items_count == "0000"
    r = await k(pysip2.CheckoutRequest(sc_renewal_policy="N", no_block="N", transaction_date=WHEN,
                                       nb_due_date=WHEN, item_identifier=BOOK, **patron))
    assert (r.ok, r.desensitize, r.due_date, r.media_type) == ("1", "Y", M.date_of(date(2026, 12, 4)), "001")
    r = await k(pysip2.CheckoutRequest(sc_renewal_policy="N", no_block="N", transaction_date=WHEN,
                                       nb_due_date=WHEN, item_identifier=MAGAZINE, **patron))
    assert r.ok == "0" and r.due_date == "" and r.screen_message[0].startswith("この資料は自動貸出機では")
    r = await k(pysip2.ItemInformationRequest(transaction_date=WHEN, institution_id="hiroshima",
                                              item_identifier=BOOK))
    assert (r.circulation_status, r.security_marker, r.fee_type) == ("04", "00", "01")
    r = await k(pysip2.ItemInformationRequest(transaction_date=WHEN, institution_id="hiroshima",
                                              item_identifier="NOPE"))
    assert r.circulation_status == "01" and r.title_identifier == ""
    circ.clock.fixed += timedelta(days=7)
    r = await k(pysip2.RenewRequest(third_party_allowed="N", no_block="N", transaction_date=WHEN, nb_due_date=WHEN,
                                    institution_id="hiroshima", patron_identifier=PATRON, item_identifier=BOOK))
    assert (r.ok, r.renewal_ok, r.due_date) == ("1", "Y", M.date_of(date(2026, 12, 11)))
    r = await k(pysip2.CheckinRequest(no_block="N", transaction_date=WHEN, return_date=WHEN, current_location="central",
                                      institution_id="hiroshima", item_identifier=BOOK, terminal_password=""))
    assert (r.ok, r.alert, r.permanent_location) == ("1", "N", "中央図書館")
    r = await k(pysip2.EndPatronSessionRequest(transaction_date=WHEN, institution_id="hiroshima",
                                               patron_identifier=PATRON))
    assert r.end_session == "Y"
    # what is not offered is answered in the shape pysip2 expects too
    for req in (pysip2.HoldRequest(hold_mode="+", transaction_date=WHEN, institution_id="hiroshima",
                                   patron_identifier=PATRON, item_identifier=BOOK),
                pysip2.RenewAllRequest(transaction_date=WHEN, institution_id="hiroshima", patron_identifier=PATRON),
                pysip2.FeePaidRequest(transaction_date=WHEN, fee_type="01", payment_type="00", currency_type="JPY",
                                      fee_amount="100", institution_id="hiroshima", patron_identifier=PATRON),
                pysip2.BlockPatronRequest(card_retained="N", transaction_date=WHEN, institution_id="hiroshima",
                                          blocked_card_message="x", patron_identifier=PATRON,
                                          terminal_password="")):
        r = await k(req)
        assert isinstance(r, pysip2.SIPResponse) and "does not offer" in r.screen_message[-1]
    await k.close()
    assert len(await rows(circ, s.loans)) == 1


# ------------------------------------------------------------------ unioncat serve --sip2-port

def _cli(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


async def test_unioncat_serve_with_a_sip2_port(tmp_path):
    from test_demo import _serve, _stop
    from test_demo import env as demo_env

    env = {**demo_env(), "UNIONCAT_STAFF_PASSWORD": KIOSK_PASSWORD}
    assert _cli("circ", "init", "--data-dir", "d", cwd=tmp_path, env=env).returncode == 0
    assert _cli("circ", "load", "items", str(ROOT / "config/samples/items.csv"), "--data-dir", "d",
                cwd=tmp_path, env=env).returncode == 0
    res = _cli("circ", "staff", "add", KIOSK, "--library", "hiroshima", "--branch", "central", "--roles", "kiosk",
               "--data-dir", "d", cwd=tmp_path, env=env)
    assert res.returncode == 0 and "roles kiosk" in res.stdout, res.stderr
    # a wrong [sip2] section stops serve with one line naming the key
    (tmp_path / "bad.toml").write_text('[sip2]\nencoding = "no-such-charset"\n')
    res = _cli("serve", "--data-dir", "d", "--config", "bad.toml", "--sip2-port", "6001", cwd=tmp_path, env=env)
    assert res.returncode == 2 and "[sip2].encoding: 'no-such-charset'" in res.stderr and "Traceback" not in res.stderr
    res = _cli("serve", "--data-dir", "nothing", "--sip2-port", "6001", cwd=tmp_path, env=env)
    assert res.returncode == 2 and "--sip2-port needs a circulation database" in res.stderr

    sip_port = free_port()
    proc, port, log = _serve(tmp_path, "d", "--sip2-port", str(sip_port))
    try:
        assert proc.poll() is None, log.read_text()

        def at_the_kiosk():
            c = sip2_client(sip_port, tmp_path)
            c.connect()
            login = c.sip_login_response(c.get_response(c.sip_login_request(KIOSK, KIOSK_PASSWORD)))
            status = c.sip_sc_status_response(c.get_response(c.sip_sc_status_request()))
            item = c.sip_item_information_response(c.get_response(c.sip_item_information_request("H0000001")))
            c.disconnect()
            return login, status, item

        login, status, item = await asyncio.to_thread(at_the_kiosk)
        assert login["fixed"]["Ok"] == "1" and status["fixed"]["OnlineStatus"] == "Y"
        assert item["fixed"]["CirculationStatus"] == "03" and item["variable"]["AQ"] == ["中央図書館"]
    finally:
        said = _stop(proc, log)
    assert f"SIP2 on tcp:127.0.0.1:{sip_port}" in said
    assert "TLS handshake on the plain SIP2 port" in said          # the client's probe, said in one line
