"""No catalog-generation read before a search that has nothing to reuse (issue 18).

The search route asks the result-set store first whether it holds a live set of the
query at all, at any generation (``generations``); only then does it read the catalog's
generation (on Elasticsearch a request of its own), and it reuses a set only of that
generation.  A set that is kept is labelled with a generation read before its search.
Checked here:

* the stores (memory, the SQLite file several processes share, PostgreSQL): a set is
  found by its query at its own generation only, and ``generations`` names them;
* the migration of the shared tables of the earlier layout (generation inside the key):
  their sets stay usable by id and are never reused;
* the route's calls to a scripted catalog, counted;
* on the real catalogs (embedded index, Elasticsearch) with two "processes" (two
  catalogs, two handles on one shared store): a set made by one is reused by the other,
  a set of the generation before an ingest is not, and ``resultSetTTL=0`` answers the
  same as before -- the calls to the catalog (the requests to Elasticsearch) counted.
"""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

from catalog_builder import CatalogUnderTest, rec
from indexers.backend import Catalog as CatalogProtocol
from indexers.query_model import Clause, Query
from indexers.records import SearchResult
from search.databases import Databases
from search.result_sets import ResultSets
from search.result_sets_shared import SharedResultSets
from search.route import Search, SearchRoute
from test_result_set_stores import Clock, hits, make  # noqa: F401 - the stores' fixture, reused

Q = Query(Clause("dc.title", "=", "x"))


# --------------------------------------------------------------------------- the stores

def test_a_set_is_found_by_its_query_at_its_own_generation(make):  # noqa: F811
    clock = Clock()
    sets = make(clock=clock)
    assert sets.generations("q", ()) == frozenset()
    old = sets.put(hits(1), ttl=60, key="q", generation="g1")
    new = sets.put(hits(2), ttl=30, key="q", generation="g2")
    sets.put(hits(3), ttl=60, key="other", generation="g3")
    assert sets.generations("q", ()) == {"g1", "g2"} and sets.generations("other", ()) == {"g3"}
    assert sets.find("q", (), "g1").id == old.id and sets.find("q", (), "g2").id == new.id
    assert sets.find("q", (), "g3") is None and sets.find("q", ()) is None and sets.generations("", ()) == set()
    assert sets.find("q", (), "g2").generation == "g2"
    clock.now += 45                                     # g2's set expired, g1's was renewed at 0 s + use
    assert sets.generations("q", ()) == {"g1"} and sets.find("q", (), "g2") is None
    sets.put(hits(5), ttl=0, key="q", generation="g5")  # not kept: nothing to find
    assert sets.generations("q", ()) == {"g1"}
    sets.remove(old.id)
    assert sets.generations("q", ()) == frozenset()


def test_generations_are_per_sort(make):  # noqa: F811
    from indexers.query_model import SortKey

    sets = make()
    by_title = (SortKey("sort_title"),)
    sets.put(hits(2), ttl=60, key="q", sort=by_title, generation="7")
    assert sets.generations("q", ()) == frozenset() and sets.generations("q", by_title) == {"7"}
    assert sets.find("q", (), "7") is None and sets.find("q", by_title, "7").result.total == 2


_LAYOUT_3 = """CREATE TABLE result_set (id TEXT PRIMARY KEY, live INTEGER NOT NULL, used INTEGER NOT NULL,
    expires REAL, ttl INTEGER, key TEXT NOT NULL DEFAULT '', sort TEXT NOT NULL DEFAULT '[]',
    db TEXT NOT NULL DEFAULT '', result TEXT)"""


def test_a_shared_file_of_the_earlier_layout_is_migrated_and_its_sets_kept(tmp_path):
    """Layout 3 kept the generation inside the key's digest: after the migration its sets
    are still paged by id and resolved, never reused; new sets are found as usual."""
    path = tmp_path / "rs.sqlite"
    c = sqlite3.connect(path)
    c.execute(_LAYOUT_3)
    c.execute("CREATE INDEX result_set_key ON result_set(key, sort, used) WHERE live = 1")
    c.execute("INSERT INTO result_set VALUES ('old1', 1, 1, NULL, NULL, 'abc', '[]', '[\"Default\", null]',"
              " '{\"total\":2,\"ids\":[5,6],\"handle\":null}')")
    c.execute("PRAGMA user_version=3")
    c.commit()
    c.close()
    sets = SharedResultSets(path)
    try:
        got = sets.get("old1")
        assert got is not None and got.result.ids == [5, 6] and got.generation == ""
        assert "old1" in sets and dict(sets.as_mapping())["old1"].total == 2
        new = sets.put(hits(3), ttl=60, key="q", generation="9")
        assert sets.generations("q", ()) == {"9"} and sets.find("q", (), "9").id == new.id
    finally:
        sets.close()
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 4
    assert "result_set_key" not in {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    c.close()
    again = SharedResultSets(path)          # opened again: nothing migrated twice, nothing lost
    try:
        assert sorted(again.names()) == sorted(["old1", new.id])
    finally:
        again.close()


def test_a_postgresql_table_of_the_earlier_layout_is_migrated_beside_its_gateways(pg_database):
    """The table is shared by gateways that do not all restart at once: a column is added
    (never the table emptied), a gateway of the earlier release goes on writing and
    reading beside one of this release, and neither reuses the other's sets."""
    import psycopg

    from search.result_sets_pg import TABLE, libpq_url

    old = psycopg.connect(libpq_url(pg_database), autocommit=True)
    try:
        old.execute(f"""CREATE TABLE {TABLE} (id TEXT PRIMARY KEY, result TEXT, db TEXT NOT NULL DEFAULT '',
            ttl INTEGER, expires DOUBLE PRECISION, key TEXT NOT NULL DEFAULT '', sort TEXT NOT NULL DEFAULT '[]',
            used BIGINT NOT NULL)""")
        old.execute(f"CREATE SEQUENCE {TABLE}_used")
        old.execute(f"INSERT INTO {TABLE} (id, result, db, ttl, expires, key, sort, used) VALUES ('old1',"
                    " '{\"total\":2,\"ids\":[5,6],\"handle\":null}', '[\"Default\", null]', NULL, NULL, 'abc',"
                    f" '[]', nextval('{TABLE}_used'))")
        sets = SharedResultSets.on_postgresql(pg_database)
        try:
            got = sets.get("old1")
            assert got is not None and got.result.ids == [5, 6] and got.generation == ""
            new = sets.put(hits(3), ttl=60, key="q", generation="9")
            # the earlier release's gateway, still running: its statements name their columns
            old.execute(f"INSERT INTO {TABLE} (id, result, db, ttl, expires, key, sort, used) VALUES ('old2',"
                        " '{\"total\":1,\"ids\":[7],\"handle\":null}', '[\"Default\", null]', NULL, NULL, 'def',"
                        f" '[]', nextval('{TABLE}_used'))")
            assert old.execute(f"SELECT id FROM {TABLE} WHERE id = %s", (new.id,)).fetchone() is not None
            assert sets.get("old2").result.ids == [7] and sets.generations("q", ()) == {"9"}
            assert sets.find("q", (), "9").id == new.id and sets.find("q", (), "") is None
            again = SharedResultSets.on_postgresql(pg_database)     # a gateway that starts: nothing emptied
            try:
                assert sorted(again.names()) == sorted(["old1", "old2", new.id])
            finally:
                again.close()
        finally:
            sets.close()
    finally:
        old.close()


# --------------------------------------------------------------------------- the route, counted

class Catalog(CatalogProtocol):
    """A scripted catalog: its generation, and every call it is asked (``fused``: it
    offers the search and its generation in one call, as the embedded index does; else
    the protocol's default, a generation read and then the search)."""

    def __init__(self, fused: bool = False):
        self.gen = "1"
        self.calls: list[str] = []
        self.config = None
        self.during_search = None        # something that happens while a search runs (an ingest)
        if fused:
            self.search_at_generation = self._search_at_generation

    async def generation(self):
        self.calls.append("generation")
        return self.gen

    async def search(self, query, result_sets=None):
        self.calls.append("search")
        hits = SearchResult(int(self.gen), list(range(int(self.gen))))
        if self.during_search:
            self.during_search()
        return hits

    async def _search_at_generation(self, query, result_sets=None):
        self.calls.append("search_at_generation")
        gen = self.gen
        hits = SearchResult(int(self.gen), list(range(int(self.gen))))
        if self.during_search:
            self.during_search()
        return gen, hits

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


def _search(route, sets, ttl, query=Q, name=None):
    return asyncio.run(route.search(Search(query, sets, ttl=ttl, reuse=True, name=name)))


@pytest.mark.parametrize("fused", [False, True], ids=["read-first", "fused"])
def test_the_generation_is_read_only_when_a_live_set_could_answer_or_one_is_kept(fused):
    cat = Catalog(fused)
    route = SearchRoute(cat, Databases(()))
    sets = ResultSets()
    keep = ["search_at_generation"] if fused else ["generation", "search"]

    rs = _search(route, sets, ttl=0)                     # nothing live, nothing kept: the search alone
    assert cat.take() == ["search"] and rs.result.total == 1 and len(sets) == 0
    a = _search(route, sets, ttl=60)                     # kept: labelled with the generation read before it
    assert cat.take() == keep and a.generation == "1" and len(sets) == 1
    b = _search(route, sets, ttl=0)                      # a live set could answer: read, reused
    assert cat.take() == ["generation"] and b.result is a.result and len(sets) == 1
    c = _search(route, sets, ttl=60)                     # reused and kept again, at its generation
    assert cat.take() == ["generation"] and c.result is a.result and c.generation == "1" and len(sets) == 2
    other = Query(Clause("dc.title", "=", "y"))
    _search(route, sets, ttl=0, query=other)             # another query: nothing live for it
    assert cat.take() == ["search"]

    cat.gen = "2"                                        # an ingest committed
    d = _search(route, sets, ttl=0)                      # live sets of generation 1 only: read, not reused
    assert cat.take() == ["generation", "search"] and d.result.total == 2
    e = _search(route, sets, ttl=60)                     # read before the search: no second read
    assert cat.take() == ["generation", "search"] and e.generation == "2" and e.result.total == 2
    f = _search(route, sets, ttl=0)
    assert cat.take() == ["generation"] and f.result is e.result


@pytest.mark.parametrize("fused", [False, True], ids=["read-first", "fused"])
def test_a_kept_set_is_never_labelled_newer_than_its_hits(fused):
    """An ingest that commits while the search runs: the set keeps the generation read
    before it, so the next request (at the new generation) searches again."""
    cat = Catalog(fused)
    route = SearchRoute(cat, Databases(()))
    sets = ResultSets()

    def ingest():
        cat.gen = "2"
    cat.during_search = ingest
    a = _search(route, sets, ttl=60)
    cat.during_search = None
    assert a.generation == "1" and a.result.total == 1
    cat.take()
    b = _search(route, sets, ttl=0)
    assert cat.take() == ["generation", "search"] and b.result.total == 2


def test_named_sets_and_sets_without_reuse_are_as_before():
    cat = Catalog()
    route = SearchRoute(cat, Databases(()))
    sets = ResultSets()
    asyncio.run(route.search(Search(Q, sets, ttl=0, reuse=False)))
    assert cat.take() == ["search"]
    _search(route, sets, ttl=0, name="s0")                # a set of 0 s is gone at once: never reused
    assert cat.take() == ["search"] and "s0" not in sets
    named = _search(route, sets, ttl=None, name="s1")    # a named set kept until removed: labelled
    assert cat.take() == ["generation", "search"] and named.generation == "1" and "s1" in sets
    again = _search(route, sets, ttl=None, name="s2")
    assert cat.take() == ["generation"] and again.result is named.result and "s2" in sets


# --------------------------------------------------------------------------- real catalogs, two processes

class Counted:
    """Count a real catalog's calls (and, on Elasticsearch, the requests of its client)."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.calls: list[str] = []
        for name in ("generation", "search", "search_at_generation"):
            real = getattr(catalog, name, None)
            if real is not None:
                setattr(catalog, name, self._counting(name, real))
        es = getattr(catalog, "es", None)
        if es is not None:
            for name in ("get", "search", "mget"):
                setattr(es, name, self._counting(f"es.{name}", getattr(es, name)))

    def _counting(self, name, real):
        def call(*a, **kw):
            self.calls.append(name)
            return real(*a, **kw)
        return call

    def take(self, prefix: str = "") -> list[str]:
        calls, self.calls = self.calls, []
        return [c for c in calls if c.startswith(prefix)] if prefix else calls


def _two_processes(cat: CatalogUnderTest, stores):
    """Two routes on one catalog, each with a catalog and a store handle of its own."""
    routes = []
    for store in stores:
        if cat.es_config is not None:
            from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog

            catalog = ElasticsearchCatalog(cat.es_config)
        else:
            from indexers.backends.sqlite_index import SqliteCatalog

            catalog = SqliteCatalog(cat.data_dir / "catalog.sqlite")
        routes.append((SearchRoute(catalog, Databases(())), Counted(catalog), store))
    return routes


def _close(cat, routes):
    for route, _, store in routes:
        if hasattr(route.catalog, "aclose"):
            cat.run(route.catalog.aclose())
        else:
            route.catalog.close()
        if hasattr(store, "close"):
            store.close()


@pytest.fixture(params=["sqlite/shared-file", "sqlite/postgresql", "sqlite/memory", "elasticsearch/shared-file"])
def setup(request, tmp_path):
    backend, store = request.param.split("/")
    es_url = request.getfixturevalue("es_url") if backend == "elasticsearch" else None
    cat = CatalogUnderTest(tmp_path / "data", backend, es_url=es_url)
    cat.load("iizuka", [rec(f"a{i}", title=f"harbour lights {i}") for i in range(3)]
             + [rec("b1", title="mountain paths")])
    if store == "memory":
        one = ResultSets()
        stores = [one, one]                     # one process: the store is its own
    elif store == "postgresql":
        pg = request.getfixturevalue("pg_database")
        stores = [SharedResultSets.on_postgresql(pg) for _ in range(2)]
    else:
        stores = [SharedResultSets(tmp_path / "rs.sqlite") for _ in range(2)]
    routes = _two_processes(cat, stores)
    yield cat, routes
    _close(cat, routes)
    cat.close()


@pytest.fixture
def pg_database(pg_url):
    import postgres_node

    name = postgres_node.unique_database_name("rsgen")
    postgres_node.admin_sql(pg_url, f'CREATE DATABASE "{name}"')
    yield postgres_node.database_url(pg_url, name)
    postgres_node.drop_database(pg_url, name)


def test_reuse_across_processes_and_generations_on_real_catalogs(setup):
    cat, ((ra, ca, sa), (rb, cb, sb)) = setup
    es = cat.es_config is not None
    q = cat.query("dc.title=harbour")

    def search(route, store, ttl):
        async def go():
            async with route.request():
                rs = await route.search(Search(q, store, ttl=ttl, reuse=True))
                return rs, await route.page(rs, 0, 10)
        return cat.run(go())

    # resultSetTTL=0, nothing live: the search alone (on Elasticsearch no generation GET)
    rs0, page0 = search(ra, sa, 0)
    assert rs0.result.total == 3 and len(page0) == 3
    assert ca.take("es.get" if es else "") == ([] if es else ["search"])

    # kept in process A: labelled with the generation read before its search
    kept, page = search(ra, sa, 60)
    assert page == page0 and kept.generation != ""
    assert ca.take("" if not es else "es.") == (["search_at_generation"] if not es
                                                else ["es.get", "es.search"])

    # process B, resultSetTTL=0: A's set answers (one generation read, no search)
    reused, page = search(rb, sb, 0)
    assert page == page0 and reused.result.total == 3
    assert cb.take() == (["generation", "es.get"] if es else ["generation"])

    # an ingest (a new generation): A's set is of the generation before it, never reused
    cat.load("iizuka", [rec("a9", title="harbour lights again")])
    fresh, page = search(rb, sb, 0)
    assert fresh.result.total == 4 and len(page) == 4
    assert [c for c in cb.take() if not c.startswith("es.mget")] == (
        ["generation", "es.get", "search", "es.search"] if es else ["generation", "search"])

    # kept again in B at the new generation, reused by A
    again, page = search(rb, sb, 60)
    assert again.result.total == 4 and again.generation not in ("", kept.generation)
    cb.take()
    by_a, page_a = search(ra, sa, 0)
    assert page_a == page and by_a.result.total == 4
    assert ca.take() == (["generation", "es.get"] if es else ["generation"])
