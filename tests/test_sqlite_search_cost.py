"""What makes a search on the embedded index cheaper must not change what a client
sees (issue 18): a small unranked set is kept as the JSON array SQLite hands over
(indexers/backends/sqlite_index.py, ``_snapshot``) instead of a Python list, and it
stays a snapshot: records added or withdrawn after the search change neither its
pages, nor its count, nor what ``cql.resultSetId`` and facets see of it."""
from __future__ import annotations

import pytest

from catalog_builder import CatalogUnderTest, rec, write
from indexers.backends import sqlite_exec, sqlite_inline
from indexers.backends import sqlite_index as si
from indexers.ingest import ingest
from indexers.query_model import Query
from search.result_sets_shared import decode_result, encode_result


@pytest.fixture()
def cat(tmp_path):
    c = CatalogUnderTest(tmp_path / "data")
    c.load("iizuka", [rec(f"a{i}", title=f"harbour lights {i}", year=str(1990 + i)) for i in range(6)]
           + [rec("b1", title="mountain paths", year="1990")])
    return c


def test_a_small_unranked_set_is_a_snapshot_of_its_ids(cat):
    q = cat.query("dc.title=harbour")
    res = cat.search(Query(q.root, q.sort, ranked=False))
    assert res.total == 6 and res.ids is None and si._snapshot_ids(res.handle) is not None
    before = cat.run(cat.catalog.page(res, 0, 10))
    assert len(before) == 6 and before == sorted(before)          # index order, as a list was
    assert cat.run(cat.catalog.page(res, 2, 2)) == before[2:4]
    assert cat.catalog.page_sync(res, 4, 10) == before[4:]
    ids, raw = cat.run(cat.catalog.page_iso2709(res, 1, 2))
    assert ids == before[1:3] and set(raw) == set(ids)

    # more harbours arrive, one record leaves: the set still says what the search found
    cat.load("iizuka", [rec("a6", title="harbour lights again"), rec("a0", title="renamed")])
    assert cat.ids("dc.title=harbour") != before
    assert cat.run(cat.catalog.page(res, 0, 10)) == before
    sets = {"s1": res}
    again = cat.run(cat.catalog.search(cat.query("cql.resultSetId=s1"), result_sets=sets))
    assert again.total == 6 and cat.run(cat.catalog.page(again, 0, 10)) == before
    years = cat.run(cat.catalog.facets(res, ["date"], 10))["date"]
    # the records of the set as they are now (a0, renamed, is another union record),
    # not the new a6 (of 2001)
    assert sorted(v.value for v in years) == [str(1990 + i) for i in range(1, 6)]

    # kept by another process (search/result_sets_shared.py): the same snapshot
    back = decode_result(encode_result(res))
    assert back.total == 6 and cat.run(cat.catalog.page(back, 0, 10)) == before


def test_small_large_and_empty_sets_page_as_before(cat, monkeypatch):
    monkeypatch.setattr(si, "MATERIALIZE", 3)        # 6 harbours are a large set now: counted, paged in SQL
    q = cat.query("dc.title=harbour")
    unranked = Query(q.root, q.sort, ranked=False)
    big = cat.search(unranked)
    assert big.total == 6 and si._snapshot_ids(big.handle) is None
    small = cat.search(cat.query("dc.title=mountain"))
    none = cat.search(cat.query("dc.title=nowhere"))
    assert none.total == 0 and cat.run(cat.catalog.page(none, 0, 10)) == []
    monkeypatch.setattr(si, "MATERIALIZE", 2000)
    assert cat.run(cat.catalog.page(big, 0, 10)) == cat.run(cat.catalog.page(cat.search(unranked), 0, 10))
    assert small.total == 1 and len(cat.run(cat.catalog.page(small, 0, 10))) == 1


def test_paging_a_snapshot_needs_no_thread(cat, monkeypatch):
    hops = []

    async def counting(self, fn, *a):
        hops.append(fn.__name__)
        return fn(*a)
    monkeypatch.setattr(sqlite_exec.SlowPool, "run", counting)     # off the loop: the slow-work threads
    q = cat.query("dc.title=harbour")
    res = cat.search(Query(q.root, q.sort, ranked=False))
    cat.catalog.inline_budget = 0                    # every SQL call would hop to a thread
    assert len(cat.run(cat.catalog.page(res, 0, 3))) == 3 and hops == []


RANGES = ["dc.date=1993", "dc.date>1992", "dc.date>=1992", "dc.date<1994", "dc.date<=1994", "dc.date<>1993",
          "dc.date>=1991 and dc.date<=1994", "dc.date within \"1991 1993\"", "dc.date any \"1990 1995 2001\"",
          "dc.date=199*", "dc.date>3000"]


def sql_count(cat, res) -> int:
    h = res.handle
    return cat.catalog._conn().execute(f"SELECT COUNT(*) FROM ({h.set_sql})", h.set_params).fetchone()[0]


def test_ranges_on_a_single_valued_number_field_are_counted_from_its_values(cat, monkeypatch):
    monkeypatch.setattr(si, "MATERIALIZE", 1)      # every range with hits is a large set, counted
    catalog = cat.catalog
    assert "date" in catalog._index_state(catalog._conn()).single_valued
    walked = []
    real = catalog._counts.total

    def total(*a):
        got = real(*a)
        walked.append(got)
        return got
    monkeypatch.setattr(catalog._counts, "total", total)
    for cql in RANGES:
        for ranked in (True, False):
            q = cat.query(cql)
            res = cat.search(Query(q.root, q.sort, ranked=ranked))
            assert res.total == sql_count(cat, res), cql
            assert cat.run(catalog.page(res, 0, 100)) == cat.ids(cql), cql   # index order either way
    assert len(walked) == 4 * len(RANGES) and all(n is not None for n in walked)   # 2 searches each

    # an ingest: the next search counts the new generation's values
    cat.load("komae", [rec("k1", title="harbour", year="1993"), rec("k2", title="harbour", year="1993")])
    res = cat.search("dc.date=1993")
    assert res.total == sql_count(cat, res) == 3


def test_range_counts_of_another_generation_are_not_used(cat):
    counts = si.RangeCounts()
    conn = cat.catalog._conn()
    gen = cat.catalog.generation_sync()
    assert counts.total(conn, gen, "date", "value >= ?", [1990]) == 7
    assert counts.total(conn, "not-" + gen, "date", "value >= ?", [1990]) is None   # an ingest in between
    assert counts.total(conn, None, "date", "value >= ?", [1990]) is None
    assert counts.total(conn, gen, "date", "value = ?", [1990]) == 2                 # a0 and b1


def test_a_search_that_overran_the_inline_budget_goes_to_a_thread_at_once_next_time(cat, monkeypatch):
    hops = []

    async def counting(self, fn, *a):
        hops.append(fn.__name__)
        return fn(*a)
    monkeypatch.setattr(sqlite_exec.SlowPool, "run", counting)     # off the loop: the slow-work threads
    catalog = cat.catalog
    slow, quick = cat.query("dc.title=harbour or dc.date>1900 sortBy dc.title"), cat.query("dc.title=mountain")
    readings = []
    overrun = {"on": True}

    def clock() -> float:          # an injected clock: the slow search overruns, once
        readings.append(1)
        return float(len(readings)) * 3600 if overrun["on"] else 0.0
    catalog.clock = catalog.wall_clock = clock
    first = cat.run(catalog.search(slow))
    assert hops == ["search_sync"] and slow in catalog._slow     # interrupted inline, run on a thread
    overrun["on"] = False
    readings.clear()
    again = cat.run(catalog.search(slow))
    assert hops == ["search_sync"] * 2 and readings == []        # no inline attempt this time
    assert (again.total, cat.run(catalog.page(again, 0, 10))) == (first.total, cat.run(catalog.page(first, 0, 10)))
    cat.run(catalog.search(quick))
    assert hops == ["search_sync"] * 2 and quick not in catalog._slow   # a quick one stays inline

    monkeypatch.setattr(sqlite_inline, "SLOW_QUERIES", 1)                   # bounded: the oldest is forgotten
    overrun["on"] = True
    other = cat.query("dc.title=mountain or dc.date>1950 sortBy dc.date")
    cat.run(catalog.search(other))
    assert list(catalog._slow) == [other]


def test_the_inline_budget_is_cpu_time_bounded_by_wall_time(cat, monkeypatch):
    hops = []

    async def counting(self, fn, *a):
        hops.append(fn.__name__)
        return fn(*a)
    monkeypatch.setattr(sqlite_exec.SlowPool, "run", counting)     # off the loop: the slow-work threads
    catalog = cat.catalog
    q = cat.query("dc.title=harbour or dc.date>1900 sortBy dc.title")
    ticks = iter(range(0, 10 ** 9))
    catalog.clock = lambda: 0.0                                   # no CPU time spent ...
    catalog.wall_clock = lambda: float(next(ticks))              # ... but a second of wall time per look
    cat.run(catalog.search(q))
    assert hops == ["search_sync"]                                # more than INLINE_WALL budgets: a thread
    catalog._slow.clear()
    catalog.wall_clock = lambda: 0.0
    cat.run(catalog.search(q))
    assert hops == ["search_sync"]                                # neither clock moves: inline


def test_compiled_queries_are_kept_for_one_generation_and_never_with_result_sets(cat, monkeypatch):
    catalog = cat.catalog
    compiled = []
    real = si.Compiler.compile

    def counting(self, node, positive=True):
        compiled.append(node)
        return real(self, node, positive)
    monkeypatch.setattr(si.Compiler, "compile", counting)
    q = cat.query("dc.title=harbour and dc.date>1991")
    first = cat.search(q)
    n = len(compiled)
    again = cat.search(q)
    assert len(compiled) == n and again.total == first.total == 4          # the kept plan, same hits
    assert cat.ids("dc.title=harbour and dc.date>1991") == cat.run(catalog.page(first, 0, 10))

    # a plan that read the caller's result sets is compiled every time
    sets = {"s1": first}
    rs_query = cat.query("cql.resultSetId=s1 and dc.date>1993")
    assert cat.run(catalog.search(rs_query, result_sets=sets)).total == 2
    n = len(compiled)
    sets = {"s1": cat.search("dc.title=mountain")}
    assert cat.run(catalog.search(rs_query, result_sets=sets)).total == 0
    assert len(compiled) > n

    # a new generation (an ingest while this catalog serves): compiled again, and it finds the new record
    ingest(cat.data_dir, "komae", [write(cat.data_dir / "k.mrc", [rec("k1", title="harbour lights", year="1999")])],
           quiet=True)
    n = len(compiled)
    assert cat.run(catalog.search(q)).total == 5 and len(compiled) > n

    monkeypatch.setattr(si, "PLANS", 1)                  # bounded: the oldest is forgotten
    cat.search("dc.title=mountain")
    cat.search("dc.title=lights")
    assert len(catalog._plans) == 1


def test_a_search_slowed_by_a_busy_machine_is_not_remembered_as_slow(cat, monkeypatch):
    async def direct(self, fn, *a):
        return fn(*a)
    monkeypatch.setattr(sqlite_exec.SlowPool, "run", direct)
    catalog = cat.catalog
    q = cat.query("dc.title=harbour or dc.date>1900 sortBy dc.title")
    ticks = iter(range(0, 10 ** 9))
    catalog.clock = lambda: 0.0                                   # no CPU time, much wall time
    catalog.wall_clock = lambda: float(next(ticks))
    cat.run(catalog.search(q))
    assert q not in catalog._slow


def test_a_search_that_overran_only_on_cold_pages_gets_a_second_chance(cat, monkeypatch):
    """Inline it overran its CPU budget (say, the first search of a new process), but its
    full run on the thread needed less: it stays inline next time.  Overrunning inline a
    second time remembers it as slow whatever the thread says."""
    phase = {"inline": True}
    hops = []

    async def on_thread(self, fn, *a):
        hops.append(fn)
        phase["inline"] = False            # the thread's run: its clock hardly moves
        try:
            return fn(*a)
        finally:
            phase["inline"] = True
    monkeypatch.setattr(sqlite_exec.SlowPool, "run", on_thread)
    catalog = cat.catalog
    q = cat.query("dc.title=harbour or dc.date>1900 sortBy dc.title")
    expected = cat.ids("dc.title=harbour or dc.date>1900 sortBy dc.title")
    hops.clear()
    readings = []

    def clock() -> float:                  # inline: an hour per look; on the thread: a microsecond
        readings.append(1)
        return float(len(readings)) * (3600 if phase["inline"] else 1e-6)
    catalog.clock = catalog.wall_clock = clock
    first = cat.run(catalog.search(q))
    assert len(hops) == 1 and q not in catalog._slow and q in catalog._overran
    assert cat.run(catalog.page(first, 0, 10)) == expected
    second = cat.run(catalog.search(q))                 # tried inline again, overran again
    assert len(hops) == 2 and q in catalog._slow and q not in catalog._overran
    assert cat.run(catalog.page(second, 0, 10)) == expected
    readings.clear()
    cat.run(catalog.search(q))                          # now straight to the thread
    assert len(hops) == 3 and readings == []            # no inline attempt, nothing judged

    # a search that is slow on the thread too is remembered at its first overrun
    catalog._slow.clear()
    phase_thread_slow = cat.query("dc.title=mountain or dc.date>1950 sortBy dc.date")
    catalog.clock = catalog.wall_clock = lambda: float(len(readings.append(1) or readings)) * 3600
    cat.run(catalog.search(phase_thread_slow))
    assert phase_thread_slow in catalog._slow and phase_thread_slow not in catalog._overran


def test_the_second_chance_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(sqlite_inline, "SLOW_QUERIES", 2)
    memory: dict = {}
    for key in ("a", "b", "c"):
        sqlite_inline._remember(memory, key)
    assert list(memory) == ["b", "c"]
    sqlite_inline._remember(memory, "b")                 # already there: no change in size
    assert sorted(memory) == ["b", "c"]


def test_an_unranked_search_reads_its_generation_in_its_own_statement(cat):
    """The kept index state is confirmed by the search's one statement (no generation read
    before it); after an ingest the stale answer is dropped and the search runs again."""
    catalog = cat.catalog
    q = Query(cat.query("dc.title=harbour").root, ranked=False)
    catalog.search_sync(q)                              # the index state is known from now on
    conn = catalog._conn()
    seen: list[str] = []

    def ours(sql: str) -> None:            # (FTS5's own statements are traced as "-- ...")
        if not sql.startswith("--"):
            seen.append(sql)
    conn.set_trace_callback(ours)
    gen, res = catalog.search_at_generation_sync(q)
    conn.set_trace_callback(None)
    assert len(seen) == 1 and "json_group_array" in seen[0] and "meta" in seen[0]
    assert res.total == 6 and gen == catalog.generation_sync()

    ingest(cat.data_dir, "komae", [write(cat.data_dir / "k.mrc", [rec("k1", title="harbour view", year="1999")])],
           quiet=True)
    seen.clear()
    conn.set_trace_callback(ours)
    gen2, res2 = catalog.search_at_generation_sync(q)
    conn.set_trace_callback(None)
    assert res2.total == 7 and gen2 != gen and gen2 == catalog.generation_sync()
    assert len(seen) >= 3               # the stale try, the state read anew, the search again
    assert len(cat.run(catalog.page(res2, 0, 10))) == 7
    assert catalog.search_sync(q).total == 7 and cat.run(catalog.page(res, 0, 10)) == cat.run(catalog.page(res, 0, 6))


def test_the_cpu_clock_is_read_only_once_the_wall_clock_passed_the_budget(cat):
    """A thread's CPU time never exceeds the wall time passed: the CPU clock (a system call)
    is read at the start and then only when the wall clock has passed the budget."""
    catalog = cat.catalog
    q = cat.query("dc.title=harbour or dc.date>1900 sortBy dc.title")
    cpu, wall = [], []
    catalog.clock = lambda: cpu.append(1) or 0.0
    catalog.wall_clock = lambda: wall.append(1) or 0.0
    first = cat.run(catalog.search(q))
    assert len(cpu) == 1 and len(wall) > 1               # progress callbacks came, none read the CPU clock
    ticks = iter(range(0, 10 ** 9))
    catalog.wall_clock = lambda: float(next(ticks))      # a second of wall time per look: over the budget
    cpu.clear()
    catalog._slow.clear()
    again = cat.run(catalog.search(q))
    assert len(cpu) >= 2 and again.total == first.total   # now it looks, and finds the CPU budget unspent
    assert q not in catalog._slow
