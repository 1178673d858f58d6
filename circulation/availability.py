"""Whether an exception means "the database cannot serve now" (down, restarting, out of
connections, busy past the timeout) rather than a fault in a request or in our code.

The front ends answer such failures "try again later" (HTTP 503 with Retry-After) and say
so once in the log, instead of a traceback per request; the pool reconnects by itself
(``pool_pre_ping``) once the server is back."""
from __future__ import annotations

import asyncio
from typing import Callable

from sqlalchemy import exc as sa

try:                                   # the PostgreSQL driver's own classes, when installed
    import asyncpg.exceptions as pg
    _PG_UNAVAILABLE: tuple[type[BaseException], ...] = (
        pg.PostgresConnectionError, pg.CannotConnectNowError, pg.TooManyConnectionsError,
        pg.AdminShutdownError, pg.CrashShutdownError, pg.InterfaceError)
except ImportError:  # pragma: no cover - asyncpg is a dependency
    _PG_UNAVAILABLE = ()


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


class Unavailable(Exception):
    """The database cannot serve now: the protocol shells answer "try again later"
    (HTTP 503 with Retry-After, a SIP2 refusal) and say so once in the log."""

    @classmethod
    def of(cls, e: BaseException) -> Unavailable:
        text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        return cls(text)


def unavailable(e: BaseException) -> bool:
    """True for the errors of a database that is unreachable or not accepting work now:
    a connection refused, reset or lost; PostgreSQL starting up or shutting down, or out
    of connections; SQLAlchemy's pool timing out; SQLite busy or unable to open its file
    (``OperationalError``). False for everything else (constraint violations, bad data,
    bugs), which stays a 500 with its traceback."""
    for x in _chain(e):
        if isinstance(x, sa.DBAPIError) and x.connection_invalidated:
            return True
        if isinstance(x, (sa.OperationalError, sa.InterfaceError, sa.TimeoutError, sa.DisconnectionError)):
            return True
        if _PG_UNAVAILABLE and isinstance(x, _PG_UNAVAILABLE):
            return True
        if isinstance(x, (ConnectionError, asyncio.TimeoutError)) or (
                isinstance(x, OSError) and x.errno is not None and type(x) is OSError):
            return True
    return False


def on_connection(db, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` whenever ``db`` (a :class:`~circulation.store.Database`) hands
    out a working connection (after the pool's pre-ping); returns the function that
    stops it. The API uses it to notice that the database is back."""
    from sqlalchemy import event

    def checkout(*_args) -> None:
        callback()

    engine = db.engine.sync_engine
    event.listen(engine, "checkout", checkout)

    def stop() -> None:
        if event.contains(engine, "checkout", checkout):
            event.remove(engine, "checkout", checkout)

    return stop
