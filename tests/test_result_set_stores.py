"""The two stores of SRU result sets behave alike: the in-memory one of one process
(search/result_sets.py) and the file several processes share (search/result_sets_shared.py).
Every behaviour test runs against both; the clock is injected."""
from __future__ import annotations

import sqlite3

import pytest

from indexers.backends.sqlite_index import _Lazy
from indexers.query_model import SortKey
from indexers.records import SearchResult
from search.databases import Database
from search.result_sets import REMEMBER_EVICTED, ResultSets
from search.result_sets_shared import NotShareable, SharedResultSets, decode_result, encode_result


class Clock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "shared", "postgresql"])
def make(request, tmp_path):
    made = []
    databases: list[str] = []

    def make(max_sets=10, **kw):
        if request.param == "memory":
            return ResultSets(max_sets, **kw)
        if request.param == "postgresql":             # a database of its own for each store
            import postgres_node

            server = request.getfixturevalue("pg_url")
            databases.append(postgres_node.unique_database_name("rs"))
            postgres_node.admin_sql(server, f'CREATE DATABASE "{databases[-1]}"')
            s = SharedResultSets.on_postgresql(postgres_node.database_url(server, databases[-1]), max_sets=max_sets,
                                               **kw)
        else:
            s = SharedResultSets(tmp_path / f"rs{len(made)}.sqlite", max_sets, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
    for name in databases:
        import postgres_node

        postgres_node.drop_database(request.getfixturevalue("pg_url"), name)


def hits(n=1):
    return SearchResult(n, list(range(1, n + 1)))


def test_least_recently_used_is_evicted_and_remembered(make):
    sets = make(3)
    for name in "abc":
        sets.put(hits(), name=name)
    sets.get("a")                                      # used: now the youngest
    sets.put(hits(), name="d")
    assert sets.names() == ["c", "a", "d"]
    assert "b" not in sets and sets.was_evicted("b") and not sets.was_evicted("zzz")
    sets.put(hits(), name="b")
    assert not sets.was_evicted("b") and sets.was_evicted("c")
    assert not sets.full("new")                        # an evicting store is never full
    assert len(sets) == 3


def test_a_store_that_does_not_evict_is_full(make):
    sets = make(2, evict=False)
    sets.put(hits(), name="a")
    assert not sets.full("b")
    sets.put(hits(), name="b")
    assert sets.full("c") and not sets.full("a")       # replacing a set needs no room


def test_sets_expire_on_the_injected_clock_and_renew_on_use(make):
    clock = Clock()
    sets = make(10, clock=clock)
    rs = sets.put(hits(), ttl=30, key="k")
    clock.now += 20
    got = sets.get(rs.id)
    assert got is not None and got.id == rs.id and got.ttl == 30     # renewed: 30 s from now
    assert got.expires == clock.now + 30
    clock.now += 25
    found = sets.find("k", ())
    assert found is not None and found.id == rs.id
    clock.now += 31
    assert sets.get(rs.id) is None and len(sets) == 0 and rs.id not in sets
    assert not sets.was_evicted(rs.id)                 # expired: "never existed", not "deleted by the server"
    named = sets.put(hits(), name="z")                 # no ttl: lives until removed
    clock.now += 10 ** 6
    got = sets.get("z")
    assert got is not None and got.id == named.id and got.expires is None
    assert sets.remove("z") and not sets.remove("z")


def test_a_set_asked_to_live_0_seconds_is_answered_but_not_kept(make):
    """SRU resultSetTTL=0: the set is expired by the time any later request could name it,
    so it is not written (the SRU workers' hot path) and must not evict a set that lives."""
    clock = Clock()
    sets = make(2, clock=clock)
    a, b = sets.put(hits(), ttl=60, key="q"), sets.put(hits(), ttl=60)
    rs = sets.put(hits(3), ttl=0, key="q")
    assert len(rs.id) == len(a.id) and rs.id not in (a.id, b.id)
    assert (rs.result.total, rs.ttl, rs.key) == (3, 0, "q")
    assert rs.id not in sets and sets.get(rs.id) is None and not sets.was_evicted(rs.id)
    assert sorted(sets.names()) == sorted([a.id, b.id]) and len(sets) == 2       # nothing evicted
    found = sets.find("q", ())
    assert found is not None and found.id == a.id                               # nor found for reuse
    clock.now += 1
    assert sets.get(rs.id) is None


def test_find_needs_the_same_key_and_sort_and_gives_the_latest(make):
    sets = make()
    by_title = (SortKey("title", True, "highValue"),)
    first = sets.put(hits(2), ttl=60, key="q", sort=by_title)
    assert sets.find("q", ()) is None and sets.find("other", by_title) is None and sets.find("", ()) is None
    second = sets.put(hits(2), ttl=60, key="q", sort=by_title)
    found = sets.find("q", by_title)
    assert found is not None and found.id == second.id != first.id and found.sort == by_title


def test_a_set_keeps_its_hits_database_and_ttl(make):
    sets = make()
    rs = sets.put(SearchResult(3, [7, 5, 9]), ttl=40, database=Database("iizuka", "iizuka"))
    got = sets.get(rs.id)
    assert got is not None
    assert (got.result.total, got.result.ids, got.database, got.ttl) == (3, [7, 5, 9], Database("iizuka", "iizuka"), 40)
    assert sets.as_mapping()[rs.id].ids == [7, 5, 9]
    assert sets.as_mapping().get("nothing") is None
    assert list(sets.as_mapping()) == [rs.id]


def test_remove_and_clear(make):
    sets = make(2)
    for name in "abc":
        sets.put(hits(), name=name)
    assert sets.was_evicted("a")
    assert sets.clear() == 2
    assert len(sets) == 0 and not sets.was_evicted("a") and sets.names() == []


def test_evicted_names_are_remembered_up_to_a_bound(make):
    sets = make(1)
    for i in range(REMEMBER_EVICTED + 3):
        sets.put(hits(), name=f"s{i}")
    assert not sets.was_evicted("s0") and not sets.was_evicted("s1")     # forgotten, oldest first
    assert sets.was_evicted("s2") and sets.was_evicted(f"s{REMEMBER_EVICTED + 1}")
    assert sets.names() == [f"s{REMEMBER_EVICTED + 2}"]


# --------------------------------------------------------------------------- the shared store only

def test_two_handles_on_one_file_see_each_others_sets(tmp_path):
    """Two processes' stores are two connections to one file: what one keeps, evicts or
    renews the other sees."""
    clock = Clock()
    a = SharedResultSets(tmp_path / "rs.sqlite", 2, clock=clock)
    b = SharedResultSets(tmp_path / "rs.sqlite", 2, clock=clock)
    try:
        rs = a.put(SearchResult(2, [4, 2]), ttl=30, key="q")
        clock.now += 29
        got = b.get(rs.id)                             # renewed through b ...
        assert got is not None and got.result.ids == [4, 2]
        clock.now += 29
        found = a.find("q", ())                        # ... so still live for a
        assert found is not None and found.id == rs.id
        b.put(hits(), name="x")
        b.put(hits(), name="y")
        assert a.was_evicted(rs.id) and rs.id not in a and a.names() == ["x", "y"]
    finally:
        a.close()
        b.close()


def test_the_embedded_index_handle_round_trips_as_json():
    lazy = _Lazy("SELECT rowid FROM ft WHERE ft MATCH ? ORDER BY rowid", ["history"],
                 "SELECT rowid AS id FROM ft WHERE ft MATCH ?", ["history"])
    back = decode_result(encode_result(SearchResult(6352, None, lazy)))
    assert back.total == 6352 and back.ids is None and back.handle == lazy
    # with the ranking of indexers/ranking.py: another process pages it the same fast way
    from indexers.ranking import OneField

    ranked = _Lazy(lazy.order_sql, lazy.order_params, lazy.set_sql, lazy.set_params,
                   OneField("title", 0, ("history",), 2.0, "title : history", others="title : ひすとりい"))
    back = decode_result(encode_result(SearchResult(6352, None, ranked)))
    assert back.handle == ranked and isinstance(back.handle.fast.tokens, tuple)


def test_the_elasticsearch_handle_round_trips_as_json():
    from indexers.backends.elasticsearch_catalog import EsHandle

    h = EsHandle({"match": {"title": "history"}}, [{"_score": "desc"}, {"union_id": "asc"}], [3, 1], "pit-1",
                 {2: [1.5, 1]})
    back = decode_result(encode_result(SearchResult(900, None, h))).handle
    assert (back.query, back.sort, back.ids, back.pit, back.cursors) == (h.query, h.sort, h.ids, h.pit, h.cursors)


def test_a_result_only_this_process_holds_stays_in_its_memory(tmp_path):
    class InMemory:
        pass

    with pytest.raises(NotShareable):
        encode_result(SearchResult(1, [1], InMemory()))
    a = SharedResultSets(tmp_path / "rs.sqlite")
    b = SharedResultSets(tmp_path / "rs.sqlite")
    try:
        rs = a.put(SearchResult(1, [1], InMemory()), ttl=60)
        got = a.get(rs.id)
        assert got is not None and isinstance(got.result.handle, InMemory)
        assert b.get(rs.id) is None and rs.id in a and a.names() == [rs.id]
    finally:
        a.close()
        b.close()


def test_the_file_holds_json_not_pickle(tmp_path):
    s = SharedResultSets(tmp_path / "rs.sqlite")
    try:
        rs = s.put(SearchResult(2, [1, 2]), ttl=60)
    finally:
        s.close()
    conn = sqlite3.connect(tmp_path / "rs.sqlite")
    (text,) = conn.execute("SELECT result FROM result_set WHERE id=?", (rs.id,)).fetchone()
    conn.close()
    assert text == '{"total":2,"ids":[1,2],"handle":null}'


def test_find_gives_the_most_recently_used_of_the_same_query(make):
    sets = make()
    a = sets.put(hits(), ttl=60, key="q")
    b = sets.put(hits(), ttl=60, key="q")
    assert sets.find("q", ()).id == b.id
    sets.get(a.id)                                     # used: now the youngest of the two
    assert sets.find("q", ()).id == a.id
    sets.remove(a.id)
    assert sets.find("q", ()).id == b.id


def test_a_set_renewed_many_times_expires_once_idle(make):
    clock = Clock()
    sets = make(10, clock=clock)
    rs = sets.put(hits(), ttl=10, key="k")
    other = sets.put(hits(), ttl=10 ** 6)
    for _ in range(500):
        clock.now += 9
        assert sets.get(rs.id) is not None
    clock.now += 10
    assert rs.id not in sets and sets.find("k", ()) is None and sets.names() == [other.id]


def test_the_memory_stores_expiry_heap_stays_bounded():
    """Renewals leave stale entries in the in-memory store's expiry heap; it is rebuilt
    before they outnumber the sets."""
    clock = Clock()
    sets = ResultSets(10, clock=clock)
    rs = sets.put(hits(), ttl=10)
    for _ in range(1000):
        clock.now += 1
        sets.get(rs.id)
    assert len(sets._expiry) <= 2 * len(sets) + 64


# --------------------------------------------------------------------------- PostgreSQL: gateways on several machines

@pytest.fixture
def pg_database(pg_url):
    import postgres_node

    name = postgres_node.unique_database_name("rs")
    postgres_node.admin_sql(pg_url, f'CREATE DATABASE "{name}"')
    yield postgres_node.database_url(pg_url, name)
    postgres_node.drop_database(pg_url, name)


def test_two_gateways_on_one_postgresql_database_see_each_others_sets(pg_database):
    clock = Clock()
    a = SharedResultSets.on_postgresql(pg_database, max_sets=2, clock=clock)
    b = SharedResultSets.on_postgresql(pg_database, max_sets=2, clock=clock)     # a second gateway
    try:
        rs = a.put(SearchResult(2, [4, 2]), ttl=30, key="q")
        clock.now += 29
        got = b.get(rs.id)
        assert got is not None and got.result.ids == [4, 2]
        clock.now += 29
        found = a.find("q", ())
        assert found is not None and found.id == rs.id
        b.put(hits(), name="x")
        b.put(hits(), name="y")
        assert a.was_evicted(rs.id) and rs.id not in a and a.names() == ["x", "y"]
        c = SharedResultSets.on_postgresql(pg_database, max_sets=2, clock=clock)    # a gateway that starts
        try:
            assert c.names() == ["x", "y"]             # ... empties nothing
        finally:
            c.close()
    finally:
        a.close()
        b.close()


def test_writers_on_one_postgresql_database_keep_the_bound(pg_database):
    """Gateways putting at once: the advisory lock serializes the evictions, so the bound
    holds and every id that was put is either live or remembered as evicted."""
    import threading

    stores = [SharedResultSets.on_postgresql(pg_database, max_sets=5) for _ in range(4)]
    made: list[str] = []
    errors: list[BaseException] = []

    def work(s):
        try:
            for _ in range(10):
                made.append(s.put(hits(), ttl=600).id)
        except BaseException as e:      # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        assert len(stores[0]) == 5 and len(made) == 40
        assert all((name in stores[1]) != stores[2].was_evicted(name) for name in made)
    finally:
        for s in stores:
            s.close()


def test_a_postgresql_connection_that_broke_is_opened_again(pg_database, pg_url):
    import postgres_node

    s = SharedResultSets.on_postgresql(pg_database)
    try:
        rs = s.put(hits(3), ttl=600)
        name = pg_database.rsplit("/", 1)[1].split("?", 1)[0]
        postgres_node.admin_sql(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                        f" WHERE datname = '{name}'")
        got = s.get(rs.id)
        assert got is not None and got.result.ids == [1, 2, 3]
    finally:
        s.close()


def test_a_postgresql_database_out_of_reach_is_backend_unavailable(pg_database):
    import psycopg

    from indexers.backend import BackendUnavailable

    s = SharedResultSets.on_postgresql(pg_database)
    try:
        s._db._connect = lambda: psycopg.connect("postgresql://unioncat@127.0.0.1:1/none", connect_timeout=5)
        s._db.conn.close()                            # the server went away; it cannot be reached again
        with pytest.raises(BackendUnavailable):
            s.get("anything")
    finally:
        s.close()


def test_only_postgresql_urls_are_taken():
    from search.result_sets_pg import libpq_url

    assert libpq_url("postgresql+asyncpg://u@h:5/db") == "postgresql://u@h:5/db"
    with pytest.raises(ValueError):
        libpq_url("sqlite:///x.db")
