"""The search route (search/): the one path SRU and Z39.50 share.

* Unit checks with a scripted catalog and an injected clock: the steps in
  order, the library restriction, reuse, result sets (named, evicted, expired),
  databases (configured, found in the catalog, any case), and the request's time
  budget -- measured on the injected clock, never by waiting.
* End to end: a library ingested under a code that config/libraries.toml does not
  list is a database on both protocols (real HTTP, real yaz-client), ``Default``
  in any case too, and both front ends of one server share one route.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from indexers.backend import BackendUnavailable, Catalog
from indexers.query_model import Boolean, Clause, Query, QueryError
from indexers.records import ScanTerm, SearchResult
from search.databases import Database, Databases
from search.result_sets import ResultSets
from search.route import SEARCH_STEPS, Budget, Search, SearchRoute, SearchTimeout, catalog_timeout, make_route
from z3950.diagnostics import from_query_error

Q = Query(Clause("dc.title", "=", "x"))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedCatalog(Catalog):
    """A catalog whose calls each take ``cost`` seconds of the injected clock and
    record what they were asked."""

    def __init__(self, clock: Clock, cost: float = 0.0, libraries=("iizuka", "loc", "中央図書館")):
        self.clock, self.cost = clock, cost
        self.calls: list[tuple] = []
        self.gen = "1"
        self.libraries = libraries
        self.hang = False
        self.fail = False
        self.config = None

    async def _spend(self, *call):
        self.calls.append(call)
        self.clock.now += self.cost
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise BackendUnavailable("down")

    async def generation(self):
        await self._spend("generation")
        return self.gen

    async def scan(self, index, term, position, count):
        await self._spend("scan", index)
        return [ScanTerm(x.lower(), x, 1) for x in self.libraries]

    async def search(self, query, result_sets=None):
        await self._spend("search", query, dict(result_sets or {}))
        return SearchResult(3, [1, 2, 3])

    async def page(self, result, offset, count):
        await self._spend("page", offset, count)
        return result.ids[offset: offset + count]

    async def fetch(self, ids):
        await self._spend("fetch", tuple(ids))
        return []


def route_for(catalog, clock, timeout=5.0, configured=("iizuka", "komae")):
    return SearchRoute(catalog, Databases(configured), timeout=timeout, clock=clock)


def run(coro):
    return asyncio.run(coro)


# --------------------------------------------------------------------------- the steps

def test_steps_are_one_list_in_order():
    assert [s.__name__ for s in SEARCH_STEPS] == ["check_result_set", "resolve_database", "translate", "restrict",
                                                  "limit_available", "limit_arrivals", "reuse_live_set", "run_search",
                                                  "keep_result_set"]


def test_a_library_database_restricts_and_the_union_does_not():
    clock = Clock()
    cat = ScriptedCatalog(clock)
    route = route_for(cat, clock)
    sets = ResultSets()

    async def go():
        rs = await route.search(Search(Q, sets, databases=("KOMAE",)))
        union = await route.search(Search(Q, sets, databases=("Default",)))
        return rs, union
    rs, union = run(go())
    searched = [c[1] for c in cat.calls if c[0] == "search"]
    assert searched[0] == Query(Boolean("and", Q.root, Clause("bath.possessingInstitution", "==", "komae")))
    assert searched[1] == Q
    assert rs.query == Q and rs.database == Database("KOMAE", "komae") and union.database.library is None
    assert rs.id != union.id and len(sets) == 2


def test_reuse_only_when_asked_and_only_within_one_generation():
    clock = Clock()
    cat = ScriptedCatalog(clock)
    route = route_for(cat, clock)
    sets = ResultSets()

    def searches():
        return sum(1 for c in cat.calls if c[0] == "search")

    async def go():
        a = await route.search(Search(Q, sets, reuse=True, ttl=60))
        b = await route.search(Search(Q, sets, reuse=True, ttl=60))
        assert searches() == 1 and a.id != b.id and b.result is a.result
        await route.search(Search(Q, sets, reuse=False, ttl=60))
        assert searches() == 2
        cat.gen = "2"                                  # an ingest committed
        await route.search(Search(Q, sets, reuse=True, ttl=60))
        assert searches() == 3
    run(go())


def test_the_callers_result_sets_resolve_references():
    clock = Clock()
    cat = ScriptedCatalog(clock)
    route = route_for(cat, clock)
    sets = ResultSets(10, evict=False)

    async def go():
        await route.search(Search(Q, sets, name="a"))
        await route.search(Search(Q, sets, name="b"))
    run(go())
    assert set(cat.calls[-1][2]) == {"a"}             # the second search could refer to set "a"


def test_named_sets_replace_refuse_and_failed_searches():
    clock = Clock()
    cat = ScriptedCatalog(clock)
    route = route_for(cat, clock)
    sets = ResultSets(2, evict=False)

    async def go():
        await route.search(Search(Q, sets, name="a"))
        with pytest.raises(QueryError) as e:
            await route.search(Search(Q, sets, name="a", replace=False))
        assert from_query_error(e.value).code == 21
        await route.search(Search(Q, sets, name="b"))
        with pytest.raises(QueryError) as e:
            await route.search(Search(Q, sets, name="c"))
        assert from_query_error(e.value).code == 112
        cat.fail = True
        with pytest.raises(BackendUnavailable):
            await route.search(Search(Q, sets, name="b", drop_stale=False))
        assert "b" in sets                               # a failed sort keeps its input
        with pytest.raises(BackendUnavailable):
            await route.search(Search(Q, sets, name="b"))
        assert "b" not in sets and "a" in sets           # a failed search leaves no stale set
    run(go())


def test_translate_runs_after_the_database_is_known():
    clock = Clock()
    route = route_for(ScriptedCatalog(clock), clock)

    def parse():
        raise AssertionError("parsed before the database was checked")

    with pytest.raises(QueryError) as e:
        run(route.search(Search(None, ResultSets(), databases=("nowhere",), translate=parse)))
    assert e.value.code == 235 and from_query_error(e.value).code == 235


# --------------------------------------------------------------------------- result sets

def test_result_sets_evict_the_least_recently_used_and_remember_it():
    sets = ResultSets(3)
    for name in "abc":
        sets.put(SearchResult(1, [1]), name=name)
    sets.get("a")                                      # used: now the youngest
    sets.put(SearchResult(1, [1]), name="d")
    assert sets.names() == ["c", "a", "d"]
    assert "b" not in sets and sets.was_evicted("b") and not sets.was_evicted("zzz")
    sets.put(SearchResult(1, [1]), name="b")
    assert not sets.was_evicted("b") and sets.was_evicted("c")
    assert not sets.full("new")                        # an evicting store is never full


def test_result_sets_expire_on_the_injected_clock_and_renew_on_use():
    clock = Clock()
    sets = ResultSets(10, clock=clock)
    rs = sets.put(SearchResult(1, [1]), ttl=30, key="k")
    clock.now += 20
    assert sets.get(rs.id) is rs                       # renewed: 30 s from now
    clock.now += 25
    assert sets.find("k", ()) is rs
    clock.now += 31
    assert sets.get(rs.id) is None and len(sets) == 0
    named = sets.put(SearchResult(1, [1]), name="z")   # no ttl: lives until removed
    clock.now += 10 ** 6
    assert sets.get("z") is named and sets.remove("z") and not sets.remove("z")


# --------------------------------------------------------------------------- databases

def test_databases_configured_found_in_the_catalog_and_any_case():
    clock = Clock()
    cat = ScriptedCatalog(clock)
    route = route_for(cat, clock)

    async def go():
        assert await route.database(("Default",)) == Database("Default", None)
        assert await route.database(("KOMAE",)) == Database("KOMAE", "komae")
        assert not cat.calls                           # known names need no catalog call
        assert await route.database(("loc",)) == Database("loc", "loc")    # holds records, not configured
        assert [c[0] for c in cat.calls] == ["generation", "scan"]
        with pytest.raises(QueryError) as e:
            await route.database(("nowhere",))
        assert e.value.code == 235 and e.value.details == "nowhere"
        assert [c[0] for c in cat.calls] == ["generation", "scan", "generation"]   # same generation: no rescan
        cat.gen, cat.libraries = "2", ("nowhere",)
        assert await route.database(("NOWHERE",)) == Database("NOWHERE", "nowhere")
        assert await route.database(("default", "komae")) == Database("default", None)
        for names, bib1 in [((), 109), (("komae", "iizuka"), 111)]:
            with pytest.raises(QueryError) as e:
                await route.database(names)
            assert from_query_error(e.value).code == bib1
    run(go())


# --------------------------------------------------------------------------- the budget

def test_one_budget_for_every_call_of_a_request():
    """Each call costs 2 s of the injected clock and the budget is 5 s: the calls
    of one request share it, and the one that would start after it is spent is
    refused before it reaches the catalog (a budget per call would have let
    every call have 5 s)."""
    clock = Clock()
    cat = ScriptedCatalog(clock, cost=2.0)
    route = route_for(cat, clock, timeout=5.0)

    async def go():
        async with route.request():
            rs = await route.search(Search(Q, ResultSets(), reuse=True))     # generation + search: 4 s
            assert await route.page(rs, 0, 2) == [1, 2]                        # starts with 1 s left: 6 s
            with pytest.raises(SearchTimeout):
                await route.fetch([1])                                        # refused
    run(go())
    assert [c[0] for c in cat.calls] == ["generation", "search", "page"]


def test_the_budget_is_per_request_and_holds_the_shorter_timeout():
    clock = Clock()
    cat = ScriptedCatalog(clock, cost=3.0)
    route = route_for(cat, clock, timeout=5.0)

    async def go():
        async with route.request():
            await route.fetch([1])
        async with route.request():                     # a new request starts a new budget
            await route.fetch([1])
        async with route.request(timeout=2.0) as b:     # a front end's own, shorter limit
            assert b.seconds == 2.0
            await route.fetch([1])
            with pytest.raises(SearchTimeout):
                await route.fetch([1])
        async with route.request(timeout=60.0) as b:    # never more than the route's
            assert b.seconds == 5.0
    run(go())


def test_a_hanging_catalog_is_given_up_at_the_budget():
    clock = Clock()
    cat = ScriptedCatalog(clock)
    cat.hang = True
    route = route_for(cat, clock, timeout=0.05)       # the budget, injected: a hang never waits for the backend

    async def go():
        async with route.request():
            with pytest.raises(SearchTimeout):
                await route.search(Search(Q, ResultSets()))
    run(go())


def test_budget_arithmetic():
    clock = Clock()
    b = Budget(5.0, clock)
    clock.now += 4.5
    assert b.remaining() == pytest.approx(0.5)


def test_the_route_never_outwaits_the_catalogs_documented_timeout():
    class Es:
        search_timeout = 5.0

    assert catalog_timeout(Es(), 10.0) == 5.0
    assert catalog_timeout(object(), 10.0) == 10.0
    assert make_route(Es(), ()).timeout == 5.0


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def server_with_loc(tmp_path_factory):
    """The demo libraries plus one more ingested as ``loc``, a code that
    config/libraries.toml does not list."""
    from gateway.demo import write_demo_files
    from indexers.ingest import ingest
    from live_server import Server

    d = tmp_path_factory.mktemp("loc")
    files = write_demo_files(d / "in")
    for lib, path in files.items():
        ingest(d, lib, [path], quiet=True)
    ingest(d, "loc", [files["komae"]], quiet=True)
    s = Server(d)
    yield s
    s.stop()


def sru_count(server, path, **params) -> tuple[int, list[int]]:
    from sru_validation import validate_sru
    status, body, _ = server.get(path, version="1.2", operation="searchRetrieve", **params)
    assert status == 200
    tree = validate_sru(body, "1.2")
    codes = [int(u.rsplit("/", 1)[1]) for u in
             tree.xpath("//*[local-name()='diagnostic']/*[local-name()='uri']/text()")]
    return int(tree.xpath("string(//*[local-name()='numberOfRecords'])") or 0), codes


def test_every_library_with_records_is_a_database_over_sru(server_with_loc):
    loc, codes = sru_count(server_with_loc, "/sru/loc", query="cql.allRecords=1")
    komae, _ = sru_count(server_with_loc, "/sru/komae", query="cql.allRecords=1")
    union, _ = sru_count(server_with_loc, "/sru", query="cql.allRecords=1")
    assert codes == [] and loc == komae and 0 < loc < union
    for name in ("Default", "DEFAULT", "default"):
        assert sru_count(server_with_loc, f"/sru/{name}", query="cql.allRecords=1") == (union, [])
    assert sru_count(server_with_loc, "/sru/LOC", query="cql.allRecords=1") == (loc, [])
    assert sru_count(server_with_loc, "/sru/nowhere", query="cql.allRecords=1")[1] == [235]
    status, body, _ = server_with_loc.get("/sru/loc", version="1.2", operation="explain")
    assert b"sru/loc" in body


@pytest.mark.peer
@pytest.mark.skipif(shutil.which("yaz-client") is None, reason="yaz-client not installed (apt-get install yaz)")
def test_every_library_with_records_is_a_database_over_z3950(server_with_loc, tmp_path):
    cmds = tmp_path / "s.cmds"
    cmds.write_text("\n".join([f"open {server_with_loc.z3950}", "find @attr 2=103 x",
                               "base loc", "find @attr 2=103 x", "base komae", "find @attr 2=103 x",
                               "base nowhere", "find @attr 1=4 x", "quit"]) + "\n")
    out = subprocess.run(["yaz-client", "-f", str(cmds)], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    text = out.stdout + out.stderr
    hits = [int(n) for n in re.findall(r"Number of hits: (\d+)", text)]
    union, _ = sru_count(server_with_loc, "/sru", query="cql.allRecords=1")
    loc, _ = sru_count(server_with_loc, "/sru/loc", query="cql.allRecords=1")
    assert hits[:3] == [union, loc, loc], text
    assert "[235] Database does not exist -- v3 addinfo 'nowhere'" in text


def test_both_front_ends_share_one_route(server_with_loc):
    from gateway.app import SRU_SERVICE, Z3950_SERVICE
    sru, z3950 = server_with_loc.app[SRU_SERVICE], server_with_loc.app[Z3950_SERVICE]
    assert sru.route is z3950.route and sru.route.databases.known("loc") is not None


# --------------------------------------------------------------------------- a catalog the server cannot write

def _read_only_copy(src_dir) -> Path:
    """The demo catalog in a directory nobody may write, with no WAL files left
    (as after the last ingest): the server can neither create -shm nor write."""
    import os
    import sqlite3
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="unioncat-ro-"))
    shutil.copy(src_dir / "catalog.sqlite", d / "catalog.sqlite")
    for suffix in ("-wal", "-shm"):
        if (src_dir / f"catalog.sqlite{suffix}").exists():
            shutil.copy(src_dir / f"catalog.sqlite{suffix}", d / f"catalog.sqlite{suffix}")
    conn = sqlite3.connect(d / "catalog.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        (d / f"catalog.sqlite{suffix}").unlink(missing_ok=True)
    os.chmod(d / "catalog.sqlite", 0o444)
    os.chmod(d, 0o555)
    return d


def test_serve_answers_from_a_catalog_it_cannot_write(demo_server, tmp_path):
    """`unioncat serve` on a read-only data directory (as another user than the
    catalog's owner) answers SRU and Z39.50 searches, not HTTP 500."""
    import os
    import signal
    import sys
    import time
    import urllib.request

    from live_server import free_port

    d = _read_only_copy(demo_server.data_dir)
    http, z = free_port(), free_port()
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(d), "--port", str(http),
            "--z3950-port", str(z), "--z3950-workers", "1"]
    if os.geteuid() == 0:                 # root may write anywhere: serve as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot serve as an unprivileged user")
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd="/",
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
                                     "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        url = f"http://127.0.0.1:{http}/sru?version=1.2&operation=searchRetrieve&query=dc.title%3D%E5%9B%B3%E6%9B%B8"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=20) as r:
                    status, body = r.status, r.read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert status == 200 and b"<srw:numberOfRecords>3</srw:numberOfRecords>" in body, body[:400]
        if shutil.which("yaz-client"):
            cmds = tmp_path / "z.cmds"
            cmds.write_text(f"open tcp:127.0.0.1:{z}\nfind @attr 1=4 図書館\nquit\n")
            out = subprocess.run(["yaz-client", "-f", str(cmds)], capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL).stdout
            assert "Number of hits: 3" in out, out
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        os.chmod(d, 0o755)
        shutil.rmtree(d, ignore_errors=True)
    text = log.read_text()
    assert "Traceback" not in text and "read-only" in text, text


def test_serve_without_a_catalog_answers_diagnostic_1(tmp_path):
    from live_server import Server
    from sru_validation import validate_sru

    s = Server(tmp_path)
    try:
        status, body, _ = s.get(version="1.2", operation="searchRetrieve", query="dc.title=x")
        tree = validate_sru(body, "1.2")
        assert status == 200 and tree.xpath("string(//*[local-name()='uri'])") == "info:srw/diagnostic/1/1"
        assert not (tmp_path / "catalog.sqlite").exists()        # a reader never creates an empty catalog
    finally:
        s.stop()


# --------------------------------------------------------------------------- the rooms' import rules

def _imports(package: str) -> dict[str, set[str]]:
    """module file -> top-level packages it imports (absolute imports)."""
    import ast

    root = Path(__file__).resolve().parents[1] / package
    out = {}
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(root.parent))] = names
    return out


@pytest.mark.parametrize("package,forbidden", [
    ("search", {"gateway", "sru", "z3950", "connectors", "circulation", "aiohttp"}),
    ("sru", {"gateway", "search", "z3950", "connectors", "aiohttp"}),
    ("z3950", {"gateway", "search", "sru", "connectors", "aiohttp"}),
])
def test_the_search_room_and_the_protocol_cores_keep_their_import_rules(package, forbidden):
    """search/ is called by the front ends and calls only indexers; the protocol
    cores are sans-I/O and know neither the gateway nor each other."""
    found = {f: sorted(names & forbidden) for f, names in _imports(package).items() if names & forbidden}
    assert not found, found
