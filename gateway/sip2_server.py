"""The SIP2 server of ``unioncat serve --sip2-port PORT``: a thin asyncio shell that
moves bytes between a kiosk's TCP connection and its :class:`sip2.Session`, and hands
each request to :class:`circulation.sip2.KioskService`.

Limits: ``max_connections`` at once (one more is told nothing and closed, with a line
in the log: a SIP2 connection has no message for "busy"), ``login_timeout`` for a new
connection to log in, ``idle_timeout`` (off by default: kiosks keep their connection
open all day). Every connection that ends for a reason other than the kiosk closing it
says why in one log line; a request that fails is answered (see circulation/sip2.py),
never dropped.
"""
from __future__ import annotations

import asyncio
import logging
import tomllib
from pathlib import Path

from circulation.sip2 import Connection, KioskService
from sip2 import config as sip2_config
from sip2.session import AWAITING_LOGIN, Close, ConnectionClosed, NeedData, Reply, Request

from .tcp_server import TcpServer

log = logging.getLogger("unioncat.sip2")
READ_SIZE = 65536
DRAIN_AFTER_CLOSE = 5.0        # seconds to read what the peer still sends after we half-closed


class ConfigError(Exception):
    pass


def load_config(path: Path | None) -> sip2_config.Sip2Config:
    """The ``[sip2]`` section of a TOML file (defaults when there is none)."""
    if path is None or not path.exists():
        return sip2_config.Sip2Config()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        return sip2_config.load(data)
    except (OSError, tomllib.TOMLDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None


class Sip2Server(TcpServer):
    name = "sip2"
    read_limit = READ_SIZE

    def __init__(self, service: KioskService):
        super().__init__()
        self.service = service
        self.config = service.config

    async def _admit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> bool:
        if len(self._tasks) >= self.config.max_connections:
            log.warning("sip2 %s: refused, %d connections open (max_connections)", peer, len(self._tasks))
            await _shut(reader, writer)
            return False
        return True

    async def _serve(self, reader, writer, peer: str) -> None:
        conn = Connection(self.service.session())
        session = conn.session
        while True:
            event = session.next_event()
            if isinstance(event, NeedData):
                timeout = (self.config.login_timeout if session.state == AWAITING_LOGIN
                           else self.config.idle_timeout)
                try:
                    async with asyncio.timeout(timeout):
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    what = "no login" if session.state == AWAITING_LOGIN else "no message"
                    log.info("sip2 %s: closing: %s for %s s", peer, what, timeout)
                    await _shut(reader, writer)
                    return
                session.receive_data(data)
                continue
            if isinstance(event, ConnectionClosed):
                return
            if isinstance(event, Close):
                log.warning("sip2 %s: closing: %s", peer, event.reason)
                await _shut(reader, writer)
                return
            if isinstance(event, Reply):
                if event.reason:
                    log.info("sip2 %s: %s", peer, event.reason)
                writer.write(event.data)
                await writer.drain()
                continue
            assert isinstance(event, Request)
            answer = await self.service.answer(conn, event.message)
            if answer.note:
                log.info("sip2 %s: %s", peer, answer.note)
            writer.write(session.send(answer.response))
            await writer.drain()


async def _shut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then read (and drop) what the peer still sends until it closes too, for
    a little while: closing with unread input would reset the connection, and the peer
    would see an error instead of the end of the stream."""
    try:
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(DRAIN_AFTER_CLOSE):
            while await reader.read(READ_SIZE):
                pass
    except (TimeoutError, ConnectionError, OSError):
        pass


def mount(app, circulation, host: str, port: int, config: sip2_config.Sip2Config | None = None,
          titles=None) -> Sip2Server:
    """Serve SIP2 on ``host``:``port`` while the aiohttp ``app`` runs (started and stopped
    with it). ``titles``: how kiosk screens name titles (the union catalog's)."""
    server = Sip2Server(KioskService(circulation, config, titles))

    async def start(_app):
        try:
            bound = await server.start(host, port)
        except OSError as e:
            raise SystemExit(f"unioncat: cannot listen for SIP2 on {host}:{port}: {e.strerror or e} "
                             "(choose another --sip2-port, or 0 for none)") from None
        log.info("SIP2 on tcp:%s:%d", host, bound)
        print(f"SIP2 on tcp:{host}:{bound}", flush=True)

    async def stop(_app):
        await server.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return server
