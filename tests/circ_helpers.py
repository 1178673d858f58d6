"""Building blocks for the circulation tests (imported by tests/test_circulation_*.py).

``db_url`` (tests/conftest.py) runs each test on SQLite and on PostgreSQL."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import datetime
from typing import AsyncIterator, Callable, Iterator

from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from circulation import schema as s
from circulation.loaders import load_csv
from circulation.service import Circulation
from circulation.store import Clock, Database, install_network
from connectors.smtp import Mailer
from lifecycle.profiles import load_all
from live_server import free_port

# A Friday morning; the profiles' calendars are exercised around it.
NOW = datetime(2026, 11, 20, 10, 0)

# Argon2 parameters that make hashing fast (the cheap_hashing fixture, tests/conftest.py).
CHEAP_HASHING = dict(time_cost=1, memory_cost=8, parallelism=1)


async def new_circulation(db_url: str, now: datetime = NOW, profiles=None) -> Circulation:
    db = Database(db_url)
    await db.create_all()
    circ = Circulation(db, profiles if profiles is not None else load_all(), Clock(now))
    async with db.transaction() as conn:
        await install_network(conn, circ.profiles,
                              partners={"hiroshima-u": "広島大学図書館",
                                        "hiroshima-cu": "広島市立大学附属図書館"})
    return circ


async def add_patron(circ: Circulation, card: str, library: str, *, home: str | None = None,
                     work: str | None = None, **kw) -> int:
    home = home or {"iizuka": "飯塚市", "komae": "狛江市", "hiroshima": "広島市"}[library]
    values = dict(card_number=card, library=library, home_municipality=home,
                  work_or_school_municipality=work, created_at=circ.now())
    values.update(kw)
    async with circ.db.transaction() as conn:
        res = await conn.execute(insert(s.patrons).values(**values))
        return res.inserted_primary_key[0]


async def add_item(circ: Circulation, barcode: str, title_id: str, library: str, branch: str,
                   **kw) -> int:
    values = dict(barcode=barcode, title_id=title_id, library=library, owning_branch=branch,
                  current_branch=branch, updated_at=circ.now())
    values.update(kw)
    async with circ.db.transaction() as conn:
        res = await conn.execute(insert(s.items).values(**values))
        return res.inserted_primary_key[0]


async def add_calendar(circ: Circulation, branch: str, day, kind: str = "closed", title: str = "") -> None:
    async with circ.db.transaction() as conn:
        await conn.execute(insert(s.calendar_entries).values(branch=branch, day=day, kind=kind, title=title))


async def rows(circ: Circulation, table, *where, order_by=None) -> list:
    async with circ.db.read() as conn:
        q = select(table).where(*where)
        if order_by is not None:
            q = q.order_by(order_by)
        return list((await conn.execute(q)).all())


async def one_row(circ: Circulation, table, *where):
    """The one row of table matching where (fails unless there is exactly one)."""
    (r,) = await rows(circ, table, *where)
    return r


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (on the running loop) until cond() is true; fails after timeout seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- SMTP

@contextlib.asynccontextmanager
async def aiosqlite_threads_joined() -> AsyncIterator[None]:
    """Around work that opens aiosqlite connections which fail (a database that cannot be
    opened): on the way out, wait for the worker threads started inside, while the loop
    still runs. After a failed connect aiosqlite (0.22, Connection._connect) queues its
    thread's stop with a future of the running loop and does not wait for it; left alone,
    the thread may answer after the test's loop has closed ("Event loop is closed", a
    PytestUnhandledThreadExceptionWarning in a later test)."""
    before = set(threading.enumerate())
    try:
        yield
    finally:
        for t in set(threading.enumerate()) - before:
            if t.name.endswith("(_connection_worker_thread)"):
                await asyncio.to_thread(t.join, 30)
                assert not t.is_alive(), t


@contextlib.contextmanager
def smtp_server(handler, port: int | None = None) -> Iterator[int]:
    """An aiosmtpd server for handler on a loopback port (``port``, else a free one;
    yielded), stopped afterwards."""
    port = port or free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield port
    finally:
        ctl.stop()


def loopback_mailer(port: int, timeout: float = 5, **kw) -> Mailer:
    """A Mailer for the test SMTP server on 127.0.0.1:port (plain SMTP, no STARTTLS)."""
    return Mailer("127.0.0.1", port, from_address="noreply@unioncat.test", starttls=False,
                  timeout=timeout, **kw)


# --------------------------------------------------------------------------- CSV loaders by kind

async def load_patrons(circ: Circulation, source):
    return await load_csv(circ, "patrons", source)


async def load_items(circ: Circulation, source):
    return await load_csv(circ, "items", source)


async def load_staff(circ: Circulation, source):
    return await load_csv(circ, "staff", source)


async def load_calendar(circ: Circulation, source):
    return await load_csv(circ, "calendar", source)
