"""The circulation API served once per test module (the seed of test_circulation_api.py
on SQLite and on PostgreSQL), for tests whose requests change nothing another test of
the module reads; and bearer clients for its patron and staff."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

import postgres_node
from circ_helpers import CHEAP_HASHING, NOW
from circulation import auth, holds, lists
from circulation.service import Circulation
from circulation.store import Clock, Database
from lifecycle.profiles import load_all
from live_server import Server
from test_circulation_api import EMILY, K1, PW, SAKURA, STAFF_PW, Client, _prepare

ALL_ROLES = "iizuka.all"               # a staff member of Iizuka with every role


@dataclass
class Shared:
    server: Server
    clock: Clock
    requests: dict[str, int]           # library -> a live request of that library's patron

    @property
    def circ(self) -> Circulation:
        return self.server.circulation

    def client(self, **kw) -> Client:
        return Client(self.server.base, **kw)

    def run(self, fn, *args, **kw):
        return self.server.run(fn(self.circ, *args, **kw))

    def patron(self) -> Client:
        """Emily (Iizuka), logged in with a bearer token."""
        c = self.client()
        c.login(EMILY, PW[EMILY], bearer=True)
        return c

    def staff(self, username: str = ALL_ROLES) -> Client:
        c = self.client()
        c.staff_login(username)
        return c


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("api-shared")
    drop = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{d}/circ.db"
    else:
        server = request.getfixturevalue("pg_url")
        template = request.getfixturevalue("pg_circulation_template")
        name = postgres_node.unique_database_name("apishared")
        postgres_node.admin_sql(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url = postgres_node.database_url(server, name)
        drop = (server, name)
    auth.configure_password_hashing(**CHEAP_HASHING)
    asyncio.run(_prepare(url))
    clock = Clock(NOW)
    srv = Server(d, circulation=Circulation(Database(url), load_all(), clock), circulation_jobs={})
    try:
        sakura = srv.run(holds.place(srv.circulation, card=SAKURA, title_id=K1, pickup_branch="komae-central",
                                     channel="web", role="patron", actor=SAKURA, title="多摩川の本"))
        assert sakura.request_id is not None, sakura.decision
        emily = srv.run(lists.patron_requests(srv.circulation, EMILY))[0]["request_id"]
        d = srv.run(auth.create_staff(srv.circulation, username=ALL_ROLES, password=STAFF_PW, library="iizuka",
                                      branch="iizuka", roles=" ".join(auth.ROLES)))
        assert d.allowed, d
        yield Shared(srv, clock, {"iizuka": emily, "komae": sakura.request_id})
    finally:
        srv.stop()
        auth.configure_password_hashing(reset=True)
        if drop:
            postgres_node.drop_database(*drop)
