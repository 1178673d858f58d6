"""The circulation database goes away and comes back: a private PostgreSQL server
(tools/postgres_node.py) that the test stops and starts again under the live service.

While it is down every request is answered 503 ``service_unavailable`` with Retry-After,
in the API's JSON shape; the outage is logged once (not a traceback per request) and so
is the recovery; afterwards the service answers again by itself, with nothing lost."""
from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
import time

import pytest

import postgres_node
from circ_helpers import NOW
from circulation.service import Circulation
from circulation.store import Clock, Database
from lifecycle.profiles import load_all
from live_server import Server
from log_checks import no_errors_logged
from test_circulation_api import EMILY, PW, T6, Client, _prepare

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def node(pg_bin_dir):
    n = postgres_node.PostgresNode(tempfile.mkdtemp(prefix="unioncat-pg-outage-"))
    try:
        n.start()
        yield n
    finally:
        n.stop()
        shutil.rmtree(n.base_dir, ignore_errors=True)


def outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "unioncat.circulation.api" and "circulation database" in r.getMessage()]


def test_a_database_outage_is_a_503_with_retry_after_logged_once_and_recovers_by_itself(node, tmp_path, caplog):
    url = node.create_database("circ")
    asyncio.run(_prepare(url))
    srv = Server(tmp_path, circulation=Circulation(Database(url), load_all(), Clock(NOW)), circulation_jobs={})
    try:
        emily = Client(srv.base)
        emily.login(EMILY, PW[EMILY], bearer=True)
        before = emily.get("/me/requests", expect=200)["requests"]
        caplog.set_level(logging.INFO)
        with no_errors_logged(caplog):
            node.stop()
            refused = [emily.get("/me/requests"), emily.post("/me/cart", {"title_id": T6}),
                       Client(srv.base).post("/login", {"card_number": EMILY, "password": PW[EMILY]}),
                       *[emily.get("/me") for _ in range(20)]]
            for r in refused:
                assert (r.status, r["error"]) == (503, "service_unavailable"), r.json
                assert r.headers["Retry-After"] == "5" and r["details"]["retry_after"] == 5
            down = outage_lines(caplog)
            assert len(down) == 1 and "unavailable" in down[0], down

            node.start()                            # same port, same data
            deadline = time.monotonic() + 60        # the pool reconnects by itself
            while (r := emily.get("/me/requests")).status == 503:
                assert time.monotonic() < deadline, "the service did not recover"
                time.sleep(0.2)
            assert r.status == 200 and r["requests"] == before       # the session and the data are there
            emily.post("/me/cart", {"title_id": T6}, expect=201)
        lines = outage_lines(caplog)
        assert len(lines) == 2 and "available again" in lines[1], lines
        answered = int(re.search(r"\((\d+) requests answered 503\)", lines[1]).group(1))
        assert answered >= len(refused), lines
    finally:
        srv.stop()


def test_which_errors_mean_the_database_is_unavailable():
    import asyncpg.exceptions as pg
    from sqlalchemy import exc as sa

    from circulation.availability import unavailable

    def wrapped(cls, orig, **kw):
        return cls("SELECT 1", {}, orig, **kw)

    for e in (ConnectionRefusedError(111, "Connection refused"), pg.CannotConnectNowError("starting up"),
              pg.AdminShutdownError("terminating connection"), pg.TooManyConnectionsError("too many"),
              wrapped(sa.OperationalError, Exception("database is locked")),
              wrapped(sa.DBAPIError, Exception("gone"), connection_invalidated=True),
              sa.TimeoutError("QueuePool limit reached")):
        assert unavailable(e), e
        try:                                        # also as the cause of something else
            raise RuntimeError("while working") from e
        except RuntimeError as outer:
            assert unavailable(outer)
    for e in (ValueError("bad"), KeyError("x"), wrapped(sa.IntegrityError, Exception("duplicate key")),
              wrapped(sa.DataError, Exception("invalid byte sequence")), RuntimeError("bug")):
        assert not unavailable(e), e
