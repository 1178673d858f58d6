"""The Elasticsearch backend beyond the shared conformance suite: identical
answers to the embedded index on the same records, stable deep paging, the
record store surviving the loss of the index (reindex), and the cluster's bad
days: a node that stops and comes back during searches and during an ingest.

The conformance suite itself (test_search_semantics.py, test_union_records.py,
test_sru_server.py) runs on both backends."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import marc_fixtures as mf
from catalog_builder import CatalogUnderTest, rec
from indexers.backends import elasticsearch_catalog as esc
from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
from indexers.backends.elasticsearch_index import EsConfig, Pusher
from live_server import Server
from sru_validation import validate_sru

ROOT = Path(__file__).resolve().parent.parent
UNIONCAT = [sys.executable, "-m", "gateway.cli"]


def cli(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*UNIONCAT, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=dict(os.environ))


def sru_count(server, query: str, **extra) -> tuple[int, list[int]]:
    status, body, _ = server.get(version="1.2", operation="searchRetrieve", query=query, **extra)
    assert status == 200
    tree = validate_sru(body, "1.2")
    uris = tree.xpath("//*[local-name()='diagnostic']/*[local-name()='uri']/text()")
    codes = [int(u.rsplit("/", 1)[1]) for u in uris]
    return int(tree.xpath("string(//*[local-name()='numberOfRecords'])") or 0), codes


def many(n: int, prefix: str, title: str = "Shared words in every title", start_year: int = 1900):
    return [rec(f"{prefix}{i}", title=f"{title} {i}", year=str(start_year + i % 100)) for i in range(n)]


# ------------------------------------------------------------------ both backends, same answers
QUERIES = [
    "dc.title=図書館", "dc.title=としょかん", "dc.title=トショカン", "dc.title=圖書館", "dc.creator=山田",
    "bath.isbn=4004310016", "dc.date>2000", 'dc.date within "1990 2005"', "dc.title=libr*", "dc.title=*",
    'dc.title="図書館の歴史"', "dc.title=図書館 not bath.possessingInstitution=komae",
    "dc.title=図書館 prox/distance<=3 dc.title=歴史", "cql.allRecords=1", "dc.language=jpn",
    'dc.title==図書館の歴史', "dc.subject=*", "bath.possessingInstitution=hiroshima-u",
]


@pytest.mark.parametrize("query", QUERIES)
def test_sru_hit_counts_identical_on_both_backends(demo_server, demo_server_es, query):
    a = sru_count(demo_server, query)
    b = sru_count(demo_server_es, query)
    assert a == b


# ------------------------------------------------------------------ paging
@pytest.fixture(scope="module")
def pair(es_url, tmp_path_factory):
    """2,600 records (above the 2,000-hit materialization limit) in both backends."""
    cats = {}
    for backend in ("sqlite", "elasticsearch"):
        c = CatalogUnderTest(tmp_path_factory.mktemp(f"page-{backend}"), backend,
                             es_url=es_url if backend == "elasticsearch" else None)
        c.load("a", many(2600, "p"))
        cats[backend] = c
    yield cats
    for c in cats.values():
        c.close()


def _all_pages(cat, res, size):
    out = []
    for off in range(0, res.total, size):
        out.extend(cat.run(cat.catalog.page(res, off, size)))
    return out


@pytest.mark.parametrize("window", [esc.WINDOW, 700])
def test_deep_paging_is_complete_and_in_the_same_order_as_the_embedded_index(pair, monkeypatch, window):
    monkeypatch.setattr(esc, "WINDOW", window)  # 700: pages beyond it walk with search_after
    q = "dc.title=shared sortby dc.date/sort.descending"
    ids = {}
    for backend, cat in pair.items():
        res = cat.search(q)
        assert res.total == 2600
        ids[backend] = _all_pages(cat, res, 250)
    assert len(set(ids["elasticsearch"])) == 2600
    assert ids["elasticsearch"] == ids["sqlite"]


def test_a_result_set_stays_stable_while_an_ingest_adds_matching_records(pair):
    cat = pair["elasticsearch"]
    res = cat.search("dc.title=shared")
    first = cat.run(cat.catalog.page(res, 0, 100))
    second = cat.run(cat.catalog.page(res, 100, 100))  # opens the point in time
    cat.load("b", many(300, "q", title="Shared words again"))  # the catalog grows meanwhile
    rest = _all_pages(cat, res, 500)
    assert rest[:100] == first and rest[100:200] == second
    assert len(rest) == len(set(rest)) == 2600  # the old view: no new records, none twice
    assert cat.search("dc.title=shared").total == 2900  # a new search sees them


# ------------------------------------------------------------------ the store survives the index
def test_reindex_rebuilds_a_lost_index_and_searches_answer_during_a_rebuild(es_url, tmp_path):
    d = tmp_path / "d"
    index = f"reidx-{os.getpid()}"
    path = mf.write_iso2709(tmp_path / "a.mrc", [mf.make_record(control_number=f"r{i}", title=f"Rebuild title {i}")
                                                  for i in range(1500)])
    r = cli("ingest", "--data-dir", d, "--es-url", es_url, "--es-index", index, "--library", "a", "--json", path)
    assert r.returncode == 0, r.stdout + r.stderr
    srv = Server(d, catalog=ElasticsearchCatalog(EsConfig(urls=[es_url], index=index)))
    try:
        assert sru_count(srv, "dc.title=rebuild") == (1500, [])
        # searches keep answering while a rebuild runs
        answers: list = []
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                answers.append(sru_count(srv, "dc.title=rebuild"))

        t = threading.Thread(target=hammer)
        t.start()
        r = cli("reindex", "--data-dir", d)
        stop.set()
        t.join(30)
        assert r.returncode == 0 and "reindexed 1500 union records" in r.stdout, r.stdout + r.stderr
        assert answers and all(a == (1500, []) for a in answers), answers[:5]
        # the index is lost: searches answer diagnostic 1, reindex brings it back from the store
        target = _alias_target(es_url, index)
        subprocess.run(["curl", "-s", "-XDELETE", f"{es_url}/{target}"], check=True, capture_output=True)
        assert sru_count(srv, "dc.title=rebuild", maximumRecords=1)[1] == [1]  # cached hits, records gone
        assert sru_count(srv, "dc.title=title")[1] == [1]
        r = cli("reindex", "--data-dir", d)
        assert r.returncode == 0, r.stderr
        assert sru_count(srv, "dc.title=rebuild") == (1500, [])
    finally:
        srv.stop()


def _alias_target(es_url: str, alias: str) -> str:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{es_url}/_alias/{alias}") as r:
        return next(iter(json.load(r)))


# ------------------------------------------------------------------ faults
@pytest.fixture(scope="module")
def own_node(es_node_factory_module):
    """A node of this module's own: these tests stop and restart it."""
    return es_node_factory_module()


def test_sru_answers_diagnostic_1_promptly_while_the_node_is_down_and_recovers(own_node, tmp_path):
    cfg = EsConfig(urls=[own_node.url], index="faults", request_timeout=5.0)
    c = CatalogUnderTest(tmp_path / "d", "elasticsearch", es_url=own_node.url)
    c.es_config = cfg
    c.load("a", [rec("f1", title="Faulty cluster"), rec("f2", title="Faulty network")])
    c.close_catalog()
    srv = Server(tmp_path / "d", catalog=ElasticsearchCatalog(cfg))
    try:
        assert sru_count(srv, "dc.title=faulty") == (2, [])
        own_node.stop()
        t0 = time.monotonic()
        n, codes = sru_count(srv, "dc.title=faulty")
        assert codes == [1] and n == 0
        status, body, _ = srv.get(version="1.2", operation="scan", scanClause="dc.title=faulty")
        assert status == 200 and b"info:srw/diagnostic/1/1<" in body
        # a bound on waiting, not a measurement: the retries of the ingest path (minutes) must
        # not apply to a search
        assert time.monotonic() - t0 < 30, "a down node must not make SRU hang"
        own_node.restart()
        deadline = time.monotonic() + 60
        while sru_count(srv, "dc.title=faulty")[1] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sru_count(srv, "dc.title=faulty") == (2, [])  # the same server recovered by itself
    finally:
        srv.stop()
        c.loop.close()


def test_a_frozen_node_costs_a_request_its_budget_not_the_clients_timeout(own_node, tmp_path):
    """The node stopped with SIGSTOP (it accepts connections and never answers):
    a request answers diagnostic 1 when the search route's budget is spent.  The
    budget is injected (1 s) far below the client's own timeout (60 s): the time
    taken is bounded by the budget, not by the client, and no traceback is logged.
    The arithmetic (one budget for all the calls of a request) is tested on an
    injected clock in tests/test_search_route.py."""
    import signal

    cfg = EsConfig(urls=[own_node.url], index="frozen", request_timeout=60.0)
    c = CatalogUnderTest(tmp_path / "d", "elasticsearch", es_url=own_node.url)
    c.es_config = cfg
    c.load("a", [rec("z1", title="Frozen cluster")])
    c.close_catalog()
    catalog = ElasticsearchCatalog(cfg)
    assert catalog.search_timeout == 60.0
    srv = Server(tmp_path / "d", catalog=catalog, search_timeout=1.0)
    pid = own_node.pid
    try:
        assert sru_count(srv, "dc.title=frozen") == (1, [])
        os.kill(pid, signal.SIGSTOP)
        try:
            for query in ("dc.title=frozen", "dc.title=cluster"):     # reused set, then a new search
                t0 = time.monotonic()
                assert sru_count(srv, query) == (0, [1])
                assert time.monotonic() - t0 < 30, "bounded by the 1 s budget, not the 60 s client timeout"
        finally:
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while sru_count(srv, "dc.title=frozen")[1] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sru_count(srv, "dc.title=frozen") == (1, [])
    finally:
        srv.stop()
        c.loop.close()


def test_the_route_budget_follows_the_documented_client_timeout():
    cat = ElasticsearchCatalog(EsConfig(urls=["http://127.0.0.1:9"], index="x", request_timeout=5.0))
    from search.route import make_route
    assert make_route(cat, ()).timeout == 5.0           # docs/elasticsearch.md: diagnostic 1 within 5 s


def test_ingest_while_the_node_restarts_loses_and_doubles_nothing(own_node, tmp_path):
    n = 12000
    path = mf.write_many_iso2709(tmp_path / "many.mrc", n)
    d = tmp_path / "d"
    proc = subprocess.Popen([*UNIONCAT, "ingest", "--data-dir", str(d), "--es-url", own_node.url,
                             "--es-index", "restarts", "--library", "a", "--json", str(path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until some batches are in, then take the node away for a while
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _count(own_node.url, "restarts") < 2000 and proc.poll() is None:
        time.sleep(0.3)
    assert proc.poll() is None, "the ingest ended before the node could be stopped; make the file bigger"
    own_node.stop()
    time.sleep(3)
    own_node.restart()
    out, err = proc.communicate(timeout=600)
    if proc.returncode == 75:  # stopped with its work in the outbox: the documented way on
        r = cli("sync", "--data-dir", d)
        assert r.returncode == 0, r.stderr
    else:
        assert proc.returncode == 0, out + err
    # every union record of the store is in the index exactly once
    assert _count(own_node.url, "restarts") == n
    cfg = EsConfig(urls=[own_node.url], index="restarts")
    p = Pusher(d / "catalog.sqlite", cfg)
    try:
        assert p.pending() == 0
    finally:
        p.close()
    c = CatalogUnderTest(d, "elasticsearch", es_url=own_node.url)
    c.es_config = cfg
    try:
        res = c.search("cql.allRecords=1")
        ids = c.run(c.catalog.page(res, 0, res.total))
        assert len(ids) == len(set(ids)) == n
    finally:
        c.close_catalog()
        c.loop.close()


def _count(url: str, index: str) -> int:
    import json
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(f"{url}/{index}/_refresh", method="POST"), timeout=5).close()
        with urllib.request.urlopen(f"{url}/{index}/_count", timeout=5) as r:
            return json.load(r)["count"]
    except (urllib.error.URLError, OSError):
        return 0


def test_killed_ingest_resumes_into_the_index_without_duplicates(es_url, tmp_path):
    import signal

    n = 15000
    path = mf.write_many_iso2709(tmp_path / "many.mrc", n)
    d = tmp_path / "d"
    index = f"killed-{os.getpid()}"
    args = ["ingest", "--data-dir", str(d), "--es-url", es_url, "--es-index", index, "--library", "a", "--json",
            str(path)]
    proc = subprocess.Popen([*UNIONCAT, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _count(es_url, index) < 2000 and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the ingest ended before it could be killed; make the file bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    before = _count(es_url, index)
    assert 0 < before < n
    r = cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _count(es_url, index) == n
    p = Pusher(d / "catalog.sqlite", EsConfig(urls=[es_url], index=index))
    try:
        assert p.pending() == 0
    finally:
        p.close()
