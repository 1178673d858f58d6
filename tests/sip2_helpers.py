"""Building blocks of the SIP2 tests (tests/test_sip2_*.py): a Hiroshima network with
kiosk accounts, patrons and copies; the SIP2 server on a loopback port of the test's
event loop; a raw kiosk that writes bytes and reads what comes back."""
from __future__ import annotations

import asyncio
import contextlib
from datetime import date

from circ_helpers import add_item, add_patron
from circulation import auth
from circulation.service import Circulation
from circulation.sip2 import KioskService
from gateway.sip2_server import Sip2Server
from sip2 import codec
from sip2 import messages as M
from sip2.config import Sip2Config

KIOSK, KIOSK_PASSWORD = "hiroshima.kiosk1", "kiosk-2026"          # at 中央図書館 (central)
YUKI_KIOSK = "hiroshima.kiosk.yuki"                              # at 湯来河野閲覧室: no machine there
COUNTER = "hiroshima.counter"                                    # a staff account, not a kiosk
PATRON, PATRON_PASSWORD, PATRON_NAME = "7300000001", "hana2026", "広島 花子"
OTHER, OTHER_PASSWORD = "7300000002", "taro2026"
BOOK, BOOK2, MAGAZINE, BOOK_AT_NAKA = "H0001", "H0002", "H0003", "H0004"
TITLE = "isbn:9784000000011"
WHEN = "20261120    100000"                                     # a transaction date of the SC


async def hiroshima(circ: Circulation) -> None:
    """Kiosk accounts, two patrons with passwords, copies at central and naka."""
    for user, branch, roles in ((KIOSK, "central", "kiosk"), (YUKI_KIOSK, "yuki-kono", "kiosk"),
                                (COUNTER, "central", "circulation")):
        d = await auth.create_staff(circ, username=user, password=KIOSK_PASSWORD, library="hiroshima",
                                    branch=branch, roles=roles, name=user)
        assert d.allowed, d
    for card, password, name in ((PATRON, PATRON_PASSWORD, PATRON_NAME), (OTHER, OTHER_PASSWORD, "広島 太郎")):
        await add_patron(circ, card, "hiroshima", name=name, phone="082-000-0000")
        d = await auth.set_password(circ, card=card, new_password=password, role="staff", actor="test")
        assert d.allowed, d
    await add_item(circ, BOOK, TITLE, "hiroshima", "central")
    await add_item(circ, BOOK2, "isbn:9784000000028", "hiroshima", "central")
    await add_item(circ, MAGAZINE, "issn:0000-0001:2026-11", "hiroshima", "central", material_type="magazine")
    await add_item(circ, BOOK_AT_NAKA, "isbn:9784000000035", "hiroshima", "naka")


@contextlib.asynccontextmanager
async def sip2_server(circ: Circulation, config: Sip2Config | None = None, titles=None):
    """The SIP2 server on 127.0.0.1 (a free port), on the running loop; yields it."""
    server = Sip2Server(KioskService(circ, config, titles))
    port = await server.start("127.0.0.1", 0)
    server.port = port
    try:
        yield server
    finally:
        await server.close()


class RawKiosk:
    """A kiosk that writes whatever it is given and reads responses (up to a CR)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, encoding: str = "utf-8"):
        self.reader, self.writer, self.encoding = reader, writer, encoding
        self.seq = 0

    @classmethod
    async def connect(cls, port: int, encoding: str = "utf-8") -> "RawKiosk":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, encoding)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, timeout: float = 30) -> bytes:
        """One response (bytes up to and including CR); a bound on waiting, not a measurement."""
        async with asyncio.timeout(timeout):
            return await self.reader.readuntil(b"\r")

    async def at_eof(self, timeout: float = 30) -> bool:
        async with asyncio.timeout(timeout):
            return await self.reader.read(1) == b""

    async def ask(self, code: str, fixed: dict | None = None, fields=(), *, sequence: bool = True,
                  **more) -> M.Message:
        """Send a request (AY/AZ when ``sequence``) and decode the response."""
        message = M.make(code, fixed, fields, **more)
        seq = self.seq if sequence else None
        self.seq = (self.seq + 1) % 10
        await self.write(codec.encode(message, encoding=self.encoding, sequence=seq))
        raw = await self.read()
        d = codec.decode(raw[:-1], self.encoding)
        assert d.sequence == seq, (raw, seq)
        return d.message

    async def login(self, user: str = KIOSK, password: str = KIOSK_PASSWORD, location: str | None = None) -> str:
        r = await self.ask("93", uid_algorithm="0", pwd_algorithm="0",
                           fields=[("CN", user), ("CO", password), ("CP", location)])
        return r["ok"]

    async def status(self) -> M.Message:
        return await self.ask("99", status_code="0", max_print_width="080", protocol_version="2.00")

    async def patron_info(self, card: str = PATRON, password: str | None = PATRON_PASSWORD,
                          summary: str = " " * 10, language: str = "014", **fields) -> M.Message:
        return await self.ask("63", language=language, transaction_date=WHEN, summary=summary,
                              fields=[("AO", "hiroshima"), ("AA", card), ("AC", ""), ("AD", password),
                                      *fields.items()])

    async def patron_status(self, card: str = PATRON, password: str | None = PATRON_PASSWORD,
                            language: str = "014") -> M.Message:
        return await self.ask("23", language=language, transaction_date=WHEN,
                              fields=[("AO", "hiroshima"), ("AA", card), ("AC", ""), ("AD", password)])

    async def checkout(self, barcode: str, card: str = PATRON, password: str | None = None,
                       renewal_policy: str = "N") -> M.Message:
        return await self.ask("11", sc_renewal_policy=renewal_policy, no_block="N", transaction_date=WHEN,
                              nb_due_date=" " * 18,
                              fields=[("AO", "hiroshima"), ("AA", card), ("AB", barcode), ("AC", ""),
                                      ("AD", password)])

    async def checkin(self, barcode: str) -> M.Message:
        return await self.ask("09", no_block="N", transaction_date=WHEN, return_date=WHEN,
                              fields=[("AP", "central"), ("AO", "hiroshima"), ("AB", barcode), ("AC", "")])

    async def renew(self, barcode: str, card: str = PATRON, password: str | None = None) -> M.Message:
        return await self.ask("29", third_party_allowed="N", no_block="N", transaction_date=WHEN,
                              nb_due_date=" " * 18,
                              fields=[("AO", "hiroshima"), ("AA", card), ("AD", password), ("AB", barcode)])

    async def item(self, barcode: str) -> M.Message:
        return await self.ask("17", transaction_date=WHEN, fields=[("AO", "hiroshima"), ("AB", barcode)])

    async def end_session(self, card: str = PATRON) -> M.Message:
        return await self.ask("35", transaction_date=WHEN, fields=[("AO", "hiroshima"), ("AA", card)])


def sip_due(day: date) -> str:
    """A due date as the server writes it (AH): the end of that day."""
    return M.date_of(day)
