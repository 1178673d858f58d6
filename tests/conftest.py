"""Shared fixtures."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from gateway.demo import write_demo_files
from indexers.ingest import ingest
from live_server import Server

# tools/ is not a package; its Elasticsearch and PostgreSQL helpers are imported from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import elasticsearch_node
import postgres_node


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The demo catalog (three libraries, both 880 conventions) served by the real
    aiohttp application on a loopback port."""
    d = tmp_path_factory.mktemp("demo")
    for lib, path in write_demo_files(d / "in").items():
        ingest(d, lib, [path], quiet=True)
    s = Server(d)
    yield s
    s.stop()


# --------------------------------------------------------------------------- Elasticsearch
#
# Node directories come from tempfile.mkdtemp(), not tmp_path: as root the node runs as
# an unprivileged user, which cannot enter pytest's /tmp/pytest-of-root (mode 0700).

ES_HEAP = os.environ.get("UNIONCAT_ES_HEAP", elasticsearch_node.DEFAULT_HEAP)


class _EsNodes:
    """Starts dedicated nodes on request; stop_all() stops them and removes their dirs."""

    def __init__(self):
        self.nodes: list[elasticsearch_node.ElasticsearchNode] = []

    def __call__(self, start: bool = True, **kwargs) -> elasticsearch_node.ElasticsearchNode:
        kwargs.setdefault("heap", ES_HEAP)
        node = elasticsearch_node.ElasticsearchNode(
            tempfile.mkdtemp(prefix="unioncat-es-test-"), **kwargs)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def stop_all(self) -> None:
        errors = []
        for node in self.nodes:
            try:
                node.stop()
            except Exception as e:  # noqa: BLE001 - stop the others anyway
                errors.append(e)
            else:
                shutil.rmtree(node.base_dir, ignore_errors=True)
        self.nodes.clear()
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def es_url():
    """URL of the session's Elasticsearch: $UNIONCAT_ES_URL (set by
    `tools/elasticsearch_node.py run -- pytest ...`, i.e. `make test`) when set, else a
    node started here for the session and stopped at its end."""
    url = os.environ.get("UNIONCAT_ES_URL")
    if url:
        try:
            elasticsearch_node.check_url(url)
        except elasticsearch_node.ElasticsearchError as e:
            pytest.fail(f"UNIONCAT_ES_URL is set, but {e}", pytrace=False)
        yield url.rstrip("/")
        return
    nodes = _EsNodes()
    try:
        try:
            node = nodes()
        except elasticsearch_node.ElasticsearchError as e:
            pytest.fail(f"could not start the session's Elasticsearch node: {e}", pytrace=False)
        yield node.url
    finally:
        nodes.stop_all()


@pytest.fixture
def es_node_factory():
    """es_node_factory(**kwargs) -> a started ElasticsearchNode of its own (own dir and
    ports; kwargs go to ElasticsearchNode, start=False to leave it stopped) that a test
    may stop() / restart().  All are stopped when the test ends.  ~20 s per start."""
    nodes = _EsNodes()
    yield nodes
    nodes.stop_all()


@pytest.fixture(scope="module")
def es_node_factory_module():
    """Like es_node_factory, for module-scoped fixtures: nodes live until the module ends."""
    nodes = _EsNodes()
    yield nodes
    nodes.stop_all()


@pytest.fixture(scope="session")
def demo_server_es(es_url, tmp_path_factory):
    """The demo catalog on the Elasticsearch backend (the session's node), served by
    the real aiohttp application."""
    import uuid

    from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
    from indexers.backends.elasticsearch_index import EsConfig

    cfg = EsConfig(urls=[es_url], index=f"demo-{uuid.uuid4().hex[:8]}", request_timeout=20.0)
    d = tmp_path_factory.mktemp("demo-es")
    for lib, path in write_demo_files(d / "in").items():
        res = ingest(d, lib, [path], quiet=True, es=cfg)
        assert res.index_pending == 0, res.index_error
    s = Server(d, catalog=ElasticsearchCatalog(cfg))
    yield s
    s.stop()


@pytest.fixture(params=["sqlite", "elasticsearch"])
def any_demo_server(request):
    """The demo catalog served on each backend in turn."""
    return request.getfixturevalue("demo_server" if request.param == "sqlite" else "demo_server_es")


# --------------------------------------------------------------------------- PostgreSQL
#
# Server directories come from tempfile.mkdtemp() for the same reason as above (as root
# the server runs as the user postgres).

@pytest.fixture(scope="session")
def pg_bin_dir():
    """The PostgreSQL server binaries (Debian's postgresql is installed when missing and
    we are root); without them the test fails under CI (CI=true) and is skipped otherwise."""
    try:
        return postgres_node.ensure_bin_dir(install=True)
    except postgres_node.PostgresError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a PostgreSQL server: {e}", pytrace=False)
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def pg_url(request):
    """SQLAlchemy URL (postgresql+asyncpg) of the session's PostgreSQL: $UNIONCAT_PG_URL
    (set by `tools/postgres_node.py run -- pytest ...`, i.e. `make test`) when set, else
    a server started here for the session and stopped at its end."""
    url = os.environ.get(postgres_node.URL_ENV)
    if url:
        try:
            postgres_node.check_url(url)
        except postgres_node.PostgresError as e:
            pytest.fail(f"{postgres_node.URL_ENV} is set, but {e}", pytrace=False)
        yield url
        return
    request.getfixturevalue("pg_bin_dir")
    node = postgres_node.PostgresNode(tempfile.mkdtemp(prefix="unioncat-pg-test-"))
    try:
        try:
            node.start()
        except postgres_node.PostgresError as e:
            pytest.fail(f"could not start the session's PostgreSQL: {e}", pytrace=False)
        yield node.url
    finally:
        node.stop()
        shutil.rmtree(node.base_dir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """SQLAlchemy async URL of an empty database: a SQLite file in tmp_path, or a fresh
    database on the session's PostgreSQL (dropped when the test ends)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/circ.db"
        return
    server = request.getfixturevalue("pg_url")
    template = request.getfixturevalue("pg_circulation_template")
    name = postgres_node.unique_database_name("test")
    postgres_node.admin_sql(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield postgres_node.database_url(server, name)
    postgres_node.drop_database(server, name)


@pytest.fixture
async def circ(db_url):
    """A circulation service (tests/circ_helpers.py: new_circulation) on each db_url."""
    from circ_helpers import new_circulation
    c = await new_circulation(db_url)
    yield c
    await c.db.dispose()


@pytest.fixture
def cheap_hashing():
    """Fast password hashing for the test (modules use it with pytest.mark.usefixtures)."""
    from circ_helpers import CHEAP_HASHING
    from circulation import auth
    auth.configure_password_hashing(**CHEAP_HASHING)
    yield
    auth.configure_password_hashing(reset=True)


@pytest.fixture(scope="session")
def pg_circulation_template(pg_url):
    """A database with the circulation tables and the network of the profiles, made
    once per session; each PostgreSQL ``db_url`` is a copy of it (CREATE DATABASE ...
    TEMPLATE copies files: much faster than creating the tables in every test)."""
    import asyncio
    import threading

    from circulation.store import Database, install_network
    from lifecycle.profiles import load_all

    name = postgres_node.unique_database_name("circ_template")
    url = postgres_node.create_database(pg_url, name)

    async def build():
        db = Database(url)
        try:
            await db.create_all()
            async with db.transaction() as conn:
                await install_network(conn, load_all())
        finally:
            await db.dispose()

    errors = []
    t = threading.Thread(target=lambda: errors.extend([e for e in [_run_catching(asyncio.run, build())] if e]))
    t.start()
    t.join()
    if errors:
        raise errors[0]
    yield name
    postgres_node.drop_database(pg_url, name)


def _run_catching(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - re-raised in the fixture's thread
        return e
    return None


# --------------------------------------------------------------------------- pytest-xdist
#
# `make test` runs the suite in worker processes (pytest-xdist), which send each report
# to the controller as UTF-8. Tests feed lone surrogates to every parser on purpose, and
# a captured log line or an assertion message can carry one: written out as \udXXX here,
# so that the report travels (in a run without workers nothing changes).

def _travels(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not hasattr(item.config, "workerinput"):
        return
    report = outcome.get_result()
    report.sections = [(title, _travels(body)) for title, body in report.sections]
    longrepr = report.longrepr
    if longrepr is not None and not isinstance(longrepr, tuple):
        text = str(longrepr)
        if _travels(text) != text:
            report.longrepr = _travels(text)


# --------------------------------------------------------------------------- the browser
#
# Debian's Chromium driven by Playwright (its own browser download is not reachable
# here), and the pinned axe-core every page is checked with (tests/web_harness.py).

@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from web_harness import CHROMIUM, CHROMIUM_FLAGS, SCREENSHOTS

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # a fresh profile directory per run (Playwright makes one for every launch)
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=[f for f in CHROMIUM_FLAGS if f != "--headless"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def axe() -> str:
    from web_harness import axe_source

    return axe_source()
