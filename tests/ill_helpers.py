"""Two (or more) ILL nodes in one test: each its own circulation database and its own
aiohttp application with ``POST /iso18626`` on a loopback port, talking to the others
over real HTTP; every message that crosses is validated against the official ISO 18626
v1.2 schema (tests/iso18626_helpers.py)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
from aiohttp import web
from sqlalchemy import select

from circ_helpers import NOW, add_item, add_patron, new_circulation, one_row, rows
from circulation import schema as s
from circulation.ill import outbox, sync
from circulation.ill.common import Ill
from circulation.ill.node import IllNode
from circulation.ill.titles import Title
from connectors.iso18626 import config as ill_config
from connectors.iso18626_client import Sender
from gateway.iso18626_endpoint import add_routes
from iso18626_helpers import assert_valid
from live_server import free_port


class StaticTitles:
    """A union catalog's answers about titles, as data (the engine tests' catalog)."""

    def __init__(self, *titles: Title):
        self.by_id = {t.title_id: t for t in titles}

    async def describe(self, title_id, conn=None):
        return self.by_id.get(title_id)

    async def find(self, wanted, conn=None):
        for isbn in wanted.isbns:
            t = self.by_id.get(f"isbn:{isbn}")
            if t is not None:
                return t
        return None


@dataclass
class Peer:
    name: str
    ill: Ill
    port: int
    runner: web.AppRunner
    session: aiohttp.ClientSession
    sender: Sender
    seen: list = field(default_factory=list)      # every body that reached our endpoint
    invalid: list = field(default_factory=list)   # schema violations of what crossed

    @property
    def circ(self):
        return self.ill.circ

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/iso18626"

    async def pump_once(self) -> int:
        queued = await sync.sync(self.ill)
        counts = await outbox.dispatch(self.ill, self.sender)
        return queued + counts.sent + counts.refused + counts.failed

    async def close(self) -> None:
        await self.session.close()
        await self.runner.cleanup()
        await self.circ.db.dispose()


async def pump(*peers: Peer, rounds: int = 12) -> None:
    """Sync and deliver on every peer until nothing moves."""
    for _ in range(rounds):
        if not sum([await p.pump_once() for p in peers]):
            return
    raise AssertionError("the peers did not settle")


def _validating(seen: list, invalid: list):
    """Every message that reaches a peer, and every confirmation it gives, is checked
    against the official schema (violations are collected: ``Peer.invalid``)."""
    @web.middleware
    async def mw(request, handler):
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = None                      # the endpoint answers that itself
        seen.append(body)
        if body is not None and request.method == "POST" and not request.headers.get("X-Test-Bad"):
            try:
                assert_valid(body)
            except AssertionError as e:
                invalid.append(str(e))
        response = await handler(request)
        try:
            assert_valid(response.body)
        except AssertionError as e:
            invalid.append(str(e))
        return response
    return mw


def config_for(agency: str, partners: dict[str, dict], port: int, **kw) -> ill_config.IllConfig:
    data = {"ill": {"agency_id": agency, "name": kw.pop("name", agency),
                    "callback_url": f"http://127.0.0.1:{port}/iso18626", "partners": partners, **kw}}
    return ill_config.load(data, env={})


async def start_peer(name: str, db_url: str, agency: str, partners: dict[str, dict], *, port: int | None = None,
                     titles=None, now: datetime = NOW, **kw) -> Peer:
    port = port or free_port()
    circ = await new_circulation(db_url, now)
    ill = Ill(circ, config_for(agency, partners, port, **kw), titles)
    seen: list = []
    invalid: list = []
    app = web.Application(middlewares=[_validating(seen, invalid)])
    add_routes(app, IllNode(ill))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    session = aiohttp.ClientSession()

    async def no_wait(_seconds):
        return None

    sender = Sender(session, attempts=3, timeout=10, sleep=no_wait)
    return Peer(name, ill, port, runner, session, sender, seen, invalid)


@contextlib.asynccontextmanager
async def peers(*specs):
    started = []
    try:
        for spec in specs:
            started.append(await start_peer(**spec))
        yield started
    finally:
        for p in started:
            await p.close()
    for p in started:
        assert not p.invalid, f"{p.name}: {p.invalid[0]}"


__all__ = ["Peer", "StaticTitles", "add_item", "add_patron", "config_for", "one_row", "peers", "pump", "rows",
           "select", "s", "start_peer"]
