"""The asyncio shell shared by the TCP front ends (Z39.50, SIP2): listen, one task per
connection, close them all on shutdown.

A subclass gives ``_serve(reader, writer, peer)`` (the protocol's loop over its sans-I/O
core), ``name`` (for the log) and may refuse a connection in ``_admit``. A connection
that fails is logged and closed; it never takes the server down.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class TcpServer:
    name = "tcp"
    read_limit = 64 * 1024

    def __init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def connections(self) -> int:
        return len(self._tasks)

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen on ``host``:``port`` (0: any free port); the port bound. With
        ``reuse_port`` several processes share the port (SO_REUSEPORT: the kernel spreads
        connections over them, see gateway/z3950_workers.py)."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=self.read_limit,
                                                  reuse_port=reuse_port or None)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def _admit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> bool:
        """Whether to serve a new connection (a refusal answers and closes it itself)."""
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        raise NotImplementedError

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = "%s:%s" % (writer.get_extra_info("peername") or ("?", "?"))[:2]
        if not await self._admit(reader, writer, peer):
            return
        self._tasks.add(task)
        try:
            await self._serve(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.info("%s %s: connection lost: %s", self.name, peer, e)
        except asyncio.CancelledError:
            pass
        except Exception:  # one broken connection must not take the server down
            log.exception("%s %s: connection failed", self.name, peer)
        finally:
            self._tasks.discard(task)
            try:
                writer.close()
                await writer.wait_closed()
            except Exception:  # noqa: BLE001
                pass
