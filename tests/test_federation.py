"""Federated search (search/federation.py, connectors/federation_targets.py): a
``[federation.<name>]`` database searched over SRU (``/sru/<name>``) and Z39.50 through
the one search route, its targets real peers others wrote:

* the local union catalog (three records, two of them also at Zebra by ISBN);
* Zebra (Debian idzebra-2.0, ICU indexing) over Z39.50 and over SRU;
* yaz-ztest stopped (nothing listens on its port: the target fails), and yaz-ztest
  slowed down (``search-delay`` far beyond the target's small timeout: it times out).

Nothing here measures a duration: the slowed target sleeps 30 s and has a 0.5 s
timeout, so it is left out however busy the machine is.  Z39.50 is driven with the
real yaz-client.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pymarc
import pytest
from lxml import etree

from connectors.federation_targets import FederationConfigError, parse_federations
from indexers.ingest import ingest
from indexers.query_model import Boolean, Clause, Query
from search.federation_query import Unmappable, to_cql, to_pqf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))
import ztest_peer  # noqa: E402
from live_server import Server  # noqa: E402

pytestmark = pytest.mark.peer
HAVE_PEERS = all(shutil.which(c) for c in ("zebrasrv", "zebraidx", "yaz-ztest", "yaz-client"))
NS = {"s": "http://www.loc.gov/zing/srw/", "m": "http://www.loc.gov/MARC21/slim",
      "d": "http://www.loc.gov/zing/srw/diagnostic/"}

# the local library's records: two share an ISBN with Zebra's (tests/test_z3950_client.py BOOKS)
LOCAL = [("loc001", "9784004310013", "図書館の歴史"), ("loc002", "9784062880015", "日本の図書館"),
         ("loc003", "9784000000019", "地域の図書館")]


def _local_file(path: Path) -> Path:
    with open(path, "wb") as f:
        for cn, isbn, title in LOCAL:
            r = pymarc.Record(force_utf8=True, leader="00000nam a2200000 a 4500")
            r.add_field(pymarc.Field(tag="001", data=cn))
            r.add_field(pymarc.Field(tag="020", indicators=pymarc.Indicators(" ", " "),
                                     subfields=[pymarc.Subfield("a", isbn)]))
            r.add_field(pymarc.Field(tag="245", indicators=pymarc.Indicators("1", "0"),
                                     subfields=[pymarc.Subfield("a", title)]))
            f.write(r.as_marc())
    return path


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    if not HAVE_PEERS:
        pytest.skip("zebrasrv/zebraidx/yaz-ztest/yaz-client not installed (apt-get install idzebra-2.0 yaz)")
    import zebra as zebra_bench
    from test_z3950_client import write_marc

    root = tmp_path_factory.mktemp("federation")
    z = zebra_bench.ZebraSetup(root / "zebra", variant="icu")
    slow = ztest_peer.ZtestPeer(root / "ztest-slow")
    stopped = ztest_peer.ZtestPeer(root / "ztest-stopped")
    try:
        z.index([write_marc(root / "books.mrc")], timeout=120)
        z.start(wait=30)
        slow.start()
        stopped.start()
        stopped.stop()                       # a partner that is down: nothing listens on its port
        yield z, slow, stopped
    finally:
        slow.stop()
        z.stop()


@pytest.fixture(scope="module")
def server(peers, tmp_path_factory):
    z, slow, stopped = peers
    data = tmp_path_factory.mktemp("fed-data")
    assert ingest(data, "komae", [_local_file(data / "komae.mrc")], full=True, quiet=True, workers=0).error is None
    config = {"federation": {
        "partners": {"records": 20, "targets": {
            "union": {"protocol": "local", "timeout": 10},
            "zebra": {"protocol": "z3950", "address": f"127.0.0.1:{z.port}/Default", "timeout": 10,
                      "label": "Zebra Z39.50"},
            "zebra-sru": {"protocol": "sru", "url": z.base_url, "timeout": 10, "label": "Zebra SRU"}}},
        "troubled": {"targets": {
            "union": {"protocol": "local", "timeout": 10},
            "zebra": {"protocol": "z3950", "address": f"127.0.0.1:{z.port}/Default", "timeout": 10},
            "ztest-down": {"protocol": "z3950", "address": f"127.0.0.1:{stopped.port}/Default", "timeout": 5},
            "ztest-slow": {"protocol": "z3950", "address": f"127.0.0.1:{slow.port}/Default?search-delay=30",
                           "timeout": 0.5}}},
        "down": {"targets": {
            "ztest-down": {"protocol": "z3950", "address": f"127.0.0.1:{stopped.port}/Default"}}},
    }}
    srv = Server(data, federation=parse_federations(config))
    yield srv
    srv.stop()


def sru(server, db: str, **params) -> etree._Element:
    status, body, _ = server.get(f"/sru/{db}", version="1.2", operation="searchRetrieve",
                                 recordSchema="marcxml", **params)
    assert status == 200
    return etree.fromstring(body)


def hits_and_records(root) -> tuple[int, list[tuple[str, list[str]]]]:
    """The hit count and, per record, its title and the 852 $a (holding libraries)."""
    total = int(root.findtext("s:numberOfRecords", namespaces=NS))
    out = []
    for rec in root.iterfind(".//m:record", NS):
        title = rec.findtext("m:datafield[@tag='245']/m:subfield[@code='a']", namespaces=NS)
        libs = [s.text for s in rec.iterfind("m:datafield[@tag='852']/m:subfield[@code='a']", NS)]
        out.append((title, libs))
    return total, out


def diagnostics(root) -> list[tuple[str, str, str]]:
    return [(d.findtext("d:uri", namespaces=NS), d.findtext("d:details", default="", namespaces=NS),
             d.findtext("d:message", default="", namespaces=NS))
            for d in root.iterfind("s:diagnostics/d:diagnostic", NS)]


def yaz_z3950(server, tmp_path, db: str, lines: list[str]) -> str:
    cmds = tmp_path / "z.cmds"
    cmds.write_text("\n".join([f"open tcp:127.0.0.1:{server.z3950_port}/{db}", *lines, "quit"]) + "\n",
                    encoding="utf-8")
    out = subprocess.run(["yaz-client", "-f", str(cmds)], capture_output=True, timeout=60, text=True,
                         stdin=subprocess.DEVNULL)
    return out.stdout + out.stderr


# --------------------------------------------------------------------------- SRU

def test_sru_merges_the_targets_by_the_union_rules(server):
    root = sru(server, "partners", query="dc.title=図書館", maximumRecords=20)
    total, recs = hits_and_records(root)
    assert diagnostics(root) == []
    titles = sorted(t for t, _ in recs)
    # local: 3, Zebra (each protocol): 3; two ISBNs shared by all three -> 4 records
    assert total == 4 and titles == sorted(["図書館の歴史", "日本の図書館", "地域の図書館", "図書館情報学入門"])
    libs = dict(recs)
    assert {"Zebra Z39.50", "Zebra SRU"} <= set(libs["図書館の歴史"]) and "komae" in libs["図書館の歴史"]
    assert "Zebra Z39.50" not in libs["地域の図書館"]          # only the union holds it
    assert set(libs["図書館情報学入門"]) >= {"Zebra SRU"}        # Zebra's alone, its two protocols merged


def test_sru_pages_through_the_merged_result(server):
    whole = [t for t, _ in hits_and_records(sru(server, "partners", query="dc.title=図書館",
                                                maximumRecords=20))[1]]
    pages = []
    for start in (1, 3):
        root = sru(server, "partners", query="dc.title=図書館", maximumRecords=2, startRecord=start)
        pages += [t for t, _ in hits_and_records(root)[1]]
        nxt = root.findtext("s:nextRecordPosition", namespaces=NS)
        assert nxt == ("3" if start == 1 else None)
    assert pages == whole and len(whole) == 4


def test_sru_failed_and_slow_targets_are_non_fatal_diagnostics_naming_them(server):
    # a Latin query: yaz-ztest negotiates ISO-8859-1 (a Japanese term could not be sent to it at all)
    root = sru(server, "troubled", query="dc.title=introduction", maximumRecords=20)
    total, recs = hits_and_records(root)
    assert total == 2 and len(recs) == 2                          # Zebra answered (the union has none)
    diags = {details: (uri, msg) for uri, details, msg in diagnostics(root)}
    assert set(diags) == {"ztest-down", "ztest-slow"}
    assert all(uri == "info:srw/diagnostic/1/2" for uri, _ in diags.values())
    assert "did not answer within 0.5 s" in diags["ztest-slow"][1]
    assert "failed" in diags["ztest-down"][1]


def test_sru_a_sort_of_federated_results_is_a_diagnostic_not_ignored(server):
    root = sru(server, "partners", query="dc.title=図書館 sortBy dc.title")
    assert [(uri, details) for uri, details, _ in diagnostics(root)] == [("info:srw/diagnostic/1/80", "partners")]


def test_sru_result_set_references_are_a_diagnostic(server):
    first = sru(server, "partners", query="dc.title=図書館")
    rs = first.findtext("s:resultSetId", namespaces=NS)
    root = sru(server, "partners", query=f"cql.resultSetId={rs} and dc.title=歴史")
    assert [(uri, details) for uri, details, _ in diagnostics(root)] == [("info:srw/diagnostic/1/16",
                                                                           "cql.resultSetId")]


def test_sru_every_target_down_is_a_fatal_diagnostic_not_a_500(server):
    root = sru(server, "down", query="dc.title=図書館")
    assert [uri for uri, _, _ in diagnostics(root)] == ["info:srw/diagnostic/1/1"]
    assert diagnostics(root)[0][2].startswith("no target answered: ztest-down failed")
    assert root.findtext("s:numberOfRecords", namespaces=NS) in (None, "0")


def test_a_federation_is_searched_alone_and_the_union_is_unchanged(server):
    root = sru(server, "default", query="dc.title=図書館")
    assert hits_and_records(root)[0] == 3                          # the union's own records only
    status, body, _ = server.get("/sru/nosuch", version="1.2", operation="searchRetrieve", query="x")
    assert b"info:srw/diagnostic/1/235" in body
    status, body, _ = server.get("/sru/partners", version="1.2", operation="explain")
    explain = etree.fromstring(body)
    assert status == 200 and explain.findtext(".//{http://explain.z3950.org/dtd/2.0/}database") == "sru/partners"


# --------------------------------------------------------------------------- Z39.50 (yaz-client)

def test_z3950_searches_the_federation(server, tmp_path):
    out = yaz_z3950(server, tmp_path, "partners", ["find @attr 1=4 図書館", "show 1+4"])
    assert "Number of hits: 4" in out, out
    assert "図書館情報学入門" in out and "地域の図書館" in out


def test_z3950_partial_result_set_names_the_target(server, tmp_path):
    out = yaz_z3950(server, tmp_path, "troubled", ["find @attr 1=4 introduction", "show 1+2"])
    assert "Number of hits: 2" in out, out
    assert "Result Set Status: subset" in out, out                 # a partial result set
    named = re.findall(r"\[109\] Database unavailable -- v3 addinfo '(\S+) ", out)
    assert sorted(named) == ["ztest-down", "ztest-slow"], out      # Bib-1 109 for each, the target named
    assert "Introduction to algorithms" in out                     # the records that came can be shown


# --------------------------------------------------------------------------- the query for a target

def test_queries_are_written_for_each_target():
    q = Query(Boolean("and", Clause("dc.title", "=", "図書館 歴史"), Clause("bath.isbn", "=", "978*")))
    assert to_cql(q, {"dc.title": "title"}) == '(title = "図書館 歴史" and bath.isbn = 978*)'
    assert to_pqf(q, {"dc.title": "1=4", "bath.isbn": "1=7"}) == \
        '@and @attr 1=4 @attr 4=1 "図書館 歴史" @attr 1=7 @attr 4=2 @attr 5=1 "978"'
    with pytest.raises(Unmappable, match="dc.subject"):
        to_pqf(Query(Clause("dc.subject", "=", "x")), {"dc.title": "1=4"})


def test_configuration_errors_are_one_line():
    for table, msg in (({"x": {"targets": {"a": {"protocol": "ftp"}}}}, "protocol must be one of"),
                       ({"x": {"targets": {}}}, "needs targets"),
                       ({"x": {"targets": {"a": {"protocol": "z3950", "address": "h"}}}}, "host:port"),
                       ({"x": {"targets": {"a": {"protocol": "sru", "url": "ftp://x"}}}}, "http://"),
                       ({"x": {"targets": {"a": {"protocol": "local", "timeout": 0}}}}, "timeout"),
                       ({"x": {"records": 0, "targets": {"a": {"protocol": "local"}}}}, "records"),
                       ({"x": {"targets": {"a": {"protocol": "local", "colour": 1}}}}, "unknown setting"),
                       ({"1x": {"targets": {"a": {"protocol": "local"}}}}, "start with a letter"),
                       ({"Default": {"targets": {"a": {"protocol": "local"}}}}, "already a database"),
                       ({"KOMAE": {"targets": {"a": {"protocol": "local"}}}}, "already a database")):
        with pytest.raises(FederationConfigError, match=msg):
            parse_federations({"federation": table}, reserved=["komae"])


# --------------------------------------------------------------------------- the merge, without peers

def _rec(cn: str, isbn: str, title: str) -> pymarc.Record:
    r = pymarc.Record(force_utf8=True, leader="00000nam a2200000 a 4500")
    r.add_field(pymarc.Field(tag="001", data=cn))
    r.add_field(pymarc.Field(tag="020", indicators=pymarc.Indicators(" ", " "),
                             subfields=[pymarc.Subfield("a", isbn)]))
    r.add_field(pymarc.Field(tag="245", indicators=pymarc.Indicators("1", "0"),
                             subfields=[pymarc.Subfield("a", title)]))
    return r


class _Fixed:
    def __init__(self, name, records, timeout=5.0, hang=False):
        self.name, self.label, self.timeout, self.hang = name, name, timeout, hang
        self.records = records

    async def search(self, query, count):
        import asyncio

        from search.federation import TargetHits, remote_record

        if self.hang:
            await asyncio.Event().wait()             # never answers
        return TargetHits(len(self.records), [remote_record(r, self.label) for r in self.records[:count]])


def test_merge_rules_ranks_and_a_hanging_target_left_out():
    import asyncio

    from indexers.backends.sqlite_index import SqliteCatalog
    from search.federation import FederatedCatalog, _Kept, problems_of

    a = _Fixed("a", [_rec("a1", "9784004310013", "図書館の歴史"), _rec("a2", "9784004310013", "図書館の歴史"),
                     _rec("a3", "9780000000002", "Some title")])
    b = _Fixed("b", [_rec("b1", "9784004310013", "図書館の歴史"), _rec("b2", "9780000000002", "Another book")])
    hang = _Fixed("slow", [], timeout=0.05, hang=True)

    async def go(tmp, limit):
        fed = FederatedCatalog("f", SqliteCatalog(tmp), [a, b, hang], records=10, kept=_Kept(limit=limit))
        res = await fed.search(Query(Clause("dc.title", "=", "x")))
        return res, await fed.fetch(await fed.page(res, 0, 10))

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        res, recs = asyncio.run(go(Path(tmp) / "c.sqlite", 100))
        # interleaved a1 b1 a2 b2 a3: a1+b1 merged (ISBN, titles agree); a2 is not merged with a1 (one
        # target's own records never are); a3 and b2 share an ISBN but their titles disagree
        assert [[m for m, _ in r.members] for r in recs] == [["a", "b"], ["a"], ["b"], ["a"]]
        assert [r.marc["001"].data for r in recs] == ["a1", "a2", "b2", "a3"]
        assert [f["a"] for f in recs[0].marc.get_fields("852")] == ["b"]     # b's holding shown on a's record
        assert res.total == 4
        assert [(p.target, p.kind) for p in problems_of(res)] == [("slow", "timeout")]
        assert res.handle.reports == {"a": 3, "b": 2, "slow": None}
        res, recs = asyncio.run(go(Path(tmp) / "c.sqlite", 3))
        assert res.total == 4 and [r.marc["001"].data for r in recs] == ["a2", "b2", "a3"]   # the oldest dropped


def test_a_z3950_worker_process_serves_the_federations_too(server, peers, tmp_path):
    """``serve --z3950-workers N`` shares the port with worker processes: each reads
    the [federation.*] tables from the same configuration file."""
    import os
    import signal

    from procmon import free_port

    z, _, _ = peers
    cfg = tmp_path / "unioncat.toml"
    cfg.write_text(f'[federation.partners.targets.union]\nprotocol = "local"\n'
                   f'[federation.partners.targets.zebra]\nprotocol = "z3950"\n'
                   f'address = "127.0.0.1:{z.port}/Default"\n', encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(server.data_dir),
                             "--config", str(cfg), "--z3950-port", str(port), "--z3950-worker-of", str(os.getpid())],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        import socket
        import time

        for _ in range(900):                         # until it listens (or has died); bounded
            if proc.poll() is not None:
                break
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        cmds = tmp_path / "w.cmds"
        cmds.write_text(f"open tcp:127.0.0.1:{port}/partners\nfind @attr 1=4 図書館\nquit\n", encoding="utf-8")
        out = subprocess.run(["yaz-client", "-f", str(cmds)], capture_output=True, timeout=60, text=True,
                             stdin=subprocess.DEVNULL)
        assert "Number of hits: 4" in out.stdout, out.stdout + out.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_z3950_every_target_down_is_a_failed_search_with_a_diagnostic(server, tmp_path):
    out = yaz_z3950(server, tmp_path, "down", ["find @attr 1=4 library", "find @attr 1=4 library"])
    assert out.count("Search was a bloomin' failure.") == 2 and "Number of hits: 0" in out, out
    assert out.count("[2] Temporary system error -- v3 addinfo 'no target answered: ztest-down failed") == 2, out
