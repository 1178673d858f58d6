"""bench/run_bench.py: querying a kept unioncat-es catalog again (--keep / --reuse /
--es-node-dir, bench/es_kept.py) and the latency per query of a measured phase
(bench/per_query.py, http_load.run_load(by_query=True)).  The pure parts, the
argument checks, and the load generator against the real demo gateway; the
end-to-end run on a kept Elasticsearch node is a benchmark (docs/benchmarks.md)."""
from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import es_kept  # noqa: E402
import http_load  # noqa: E402
import per_query  # noqa: E402
import run_bench  # noqa: E402

# --------------------------------------------------------------------------- per query

def test_stats_per_query_and_the_tail_they_make():
    # 100 requests: the phase's p99 (nearest rank) is the 99th, 400 ms; two requests reach it
    lat = [[10.0, 12.0, 11.0, 13.0] * 12 + [11.0, 12.0], [50.0, 55.0, 60.0] * 16 + [400.0, 500.0], []]
    rows = per_query.stats(lat, ["a", "b", "c"], numbers=[7, 8, 9])
    assert [r["n"] for r in rows] == [7, 8, 9]
    a, b, c = rows
    assert (a["count"], a["p50_ms"], a["p99_ms"], a["max_ms"], a["mean_ms"], a["tail"]) == (50, 11.0, 13.0, 13.0,
                                                                                         11.5, 0)
    assert (b["count"], b["p50_ms"], b["p99_ms"], b["max_ms"], b["tail"]) == (50, 55.0, 500.0, 500.0, 2)
    assert c == {"n": 9, "cql": "c", "count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None,
                 "mean_ms": None, "tail": 0}
    assert [r["n"] for r in per_query.slowest(rows, k=5)] == [8, 7]     # the query that never ran is left out
    text = per_query.slowest_text(rows, k=1)
    assert "2 requests at or above the phase's p99" in text
    assert "500.0" in text and "  8  b" in text and " a " not in text


def test_stats_nearest_rank_like_the_phase_and_the_tail_unrounded():
    lat = [[float(x) for x in range(1, 201)]]       # 1..200 ms
    (row,) = per_query.stats(lat, ["q"])
    assert (row["n"], row["p50_ms"], row["p99_ms"], row["max_ms"], row["tail"]) == (1, 100.0, 198.0, 200.0, 3)
    assert row["p50_ms"] == http_load._pct(sorted(lat[0]), 0.5)
    # the phase's p99 rounds to 183.547; a request of 183.5468 ms is still in the tail
    rows = per_query.stats([[1.0] * 98, [183.5468], [183.5469]], ["x", "y", "z"])
    assert [r["tail"] for r in rows] == [0, 1, 1]


def test_stats_refuses_latencies_that_do_not_match_the_queries():
    with pytest.raises(ValueError, match="2 latency lists for 1 queries"):
        per_query.stats([[1.0], [2.0]], ["q"])


def test_slowest_orders_by_tail_then_p99():
    rows = per_query.stats([[5.0] * 40 + [900.0], [300.0, 310.0] * 30, [600.0] * 30 + [610.0] * 3],
                           ["x", "y", "z"])
    assert [(r["n"], r["tail"]) for r in per_query.slowest(rows)] == [(3, 3), (1, 1), (2, 0)]
    assert per_query.slowest_text([]) == "  (no latencies per query)"


def test_run_load_hands_back_the_latencies_of_each_query(demo_server):
    base = demo_server.base + "/sru"
    queries = ["dc.title=tokyo", "dc.title=nosuchwordanywhere"]
    r = http_load.run_load(base, queries, concurrency=1, max_requests=9, max_seconds=60, by_query=True)
    assert r["requests"] == 9 and r["errors"] == 0 and r["bounded_by"] == "requests"
    assert [len(x) for x in r["by_query_ms"]] == [5, 4]      # the workload cycled: 0,1,0,1,...
    assert round(max(max(x) for x in r["by_query_ms"]), 3) == r["max_ms"]
    assert "by_query_ms" not in http_load.run_load(base, queries, max_requests=2, max_seconds=60)


# --------------------------------------------------------------------------- the kept catalog

def _node_dir(d: Path, http: int = 0, transport: int = 0) -> Path:
    (d / "data").mkdir(parents=True)
    (d / "node.json").write_text(json.dumps({"http_port": http, "transport_port": transport}))
    return d


def _es_root(d: Path) -> Path:
    (d / "data").mkdir(parents=True)
    (d / "data" / "catalog.sqlite").write_bytes(b"")
    return d


def test_marker_written_from_a_named_node_dir_and_read_back(tmp_path):
    root = _es_root(tmp_path / "w" / "unioncat-es")
    node = _node_dir(tmp_path / "node")
    assert es_kept.prepare_reuse(root, node, index="bench") == node
    m = es_kept.read_marker(root / "loaded.json")
    assert es_kept.node_dir_of(m) == node
    assert m["note"] == es_kept.NO_FIGURES and m["es_index_alias"] == "bench"
    assert es_kept.prepare_reuse(root, None, index="bench") == node      # a later --reuse needs no --es-node-dir


def test_naming_another_node_dir_keeps_the_load_figures(tmp_path):
    root = _es_root(tmp_path / "unioncat-es")
    es_kept.write_marker(root / "loaded.json", {"records": 1000, "es_node": {"dir": "/gone", "heap": "2g"}})
    node = _node_dir(tmp_path / "node")
    es_kept.prepare_reuse(root, node, index="bench")
    m = json.loads((root / "loaded.json").read_text())
    assert m["records"] == 1000 and m["es_node"] == {"dir": str(node), "heap": "2g"} and "note" not in m


@pytest.mark.parametrize("case, message", [
    ("no store", "no unioncat record store"),
    ("no marker", "name the node directory with --es-node-dir"),
    ("bad marker", "not JSON"),
    ("marker without node dir", "no es_node.dir"),
    ("node dir gone", "no such directory"),
    ("not a node dir", "no node.json"),
])
def test_reuse_of_an_incomplete_catalog_says_what_is_missing(tmp_path, case, message):
    root = tmp_path / "unioncat-es"
    node = None
    if case != "no store":
        _es_root(root)
    if case == "bad marker":
        (root / "loaded.json").write_text("{half")
    elif case == "marker without node dir":
        (root / "loaded.json").write_text(json.dumps({"records": 5}))
    elif case == "node dir gone":
        (root / "loaded.json").write_text(json.dumps({"es_node": {"dir": str(tmp_path / "gone")}}))
    elif case == "not a node dir":
        node = tmp_path / "plain"
        (node / "data").mkdir(parents=True)
    with pytest.raises(es_kept.KeptCatalogError, match=message):
        es_kept.prepare_reuse(root, node, index="bench")
    if case == "no marker":
        assert not (root / "loaded.json").exists()


def test_kept_ports_are_the_saved_ones_while_free(tmp_path):
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        http, transport = a.getsockname()[1], b.getsockname()[1]
    node = _node_dir(tmp_path / "node", http, transport)
    assert es_kept.kept_ports(node) == (http, transport)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", http))
        busy.listen()
        got = es_kept.kept_ports(node)
    assert http not in got and got[0] != got[1]
    (node / "node.json").write_text("{}")
    assert len(set(es_kept.kept_ports(node))) == 2


def test_es_system_keeps_a_marker_only_when_the_node_is_kept(tmp_path):
    def es(keep):
        return run_bench.EsSystem(tmp_path / "unioncat-es", ["unioncat"], "loc", {}, 10, heap="1g", keep=keep)

    assert es(True).loaded_marker == tmp_path / "unioncat-es" / "loaded.json"
    assert es(False).loaded_marker is None
    with pytest.raises(RuntimeError, match="no catalog"):
        es(True).reuse()


# --------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("argv, message", [
    (["--systems", "es", "--es-node-dir", "/x"], "--es-node-dir goes with --reuse"),
    (["--systems", "sqlite", "--reuse", "--workdir", "W", "--es-node-dir", "/x"], "add es to --systems"),
    (["--systems", "es", "--reuse", "--workdir", "W"], "no unioncat record store"),
])
def test_argument_checks_before_anything_starts(tmp_path, capsys, argv, message):
    argv = [str(tmp_path / "w") if x == "W" else x for x in argv]
    with pytest.raises(SystemExit) as e:
        run_bench.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_reuse_without_marker_or_node_dir_stops_before_loading(tmp_path, capsys):
    _es_root(tmp_path / "w" / "unioncat-es")
    with pytest.raises(SystemExit):
        run_bench.main(["--systems", "es", "--reuse", "--workdir", str(tmp_path / "w")])
    assert "--es-node-dir DIR" in capsys.readouterr().err


def test_the_report_names_the_slowest_queries_and_reads_results_without_them():
    rows = per_query.stats([[10.0] * 60, [20.0] * 38 + [700.0, 800.0]], ["dc.title=a", "dc.title=日蓮本仏論批判"])
    results = {"meta": {}, "workload": [],
               "systems": {"unioncat-es": {"seq": {"p50_ms": 10.0, "p99_ms": 700.0, "rps": 40.0,
                                                   "per_query": rows}}}}
    text = run_bench.report(results, [])
    assert "unioncat-es, sequential phase:" in text
    line = next(ln for ln in text.splitlines() if "日蓮" in ln)
    assert line.split()[-1] == "2" and "800.0" in line             # both tail requests are that query's
    results["systems"]["unioncat-es"]["seq"].pop("per_query")          # a run before this change
    assert "slowest queries" not in run_bench.report(results, [])


def test_the_report_names_the_node_that_served_a_reused_catalog():
    results = {"meta": {}, "workload": [],
               "systems": {"unioncat-es": {"load": {"es_node": {"dir": "/kept"}},
                                           "reuse": {"es_node": {"version": "8.19.21", "heap": "2g"}}}}}
    assert "Elasticsearch 8.19.21 heap 2g" in run_bench.report(results, [])
    results["systems"]["unioncat-es"].pop("reuse")
    results["systems"]["unioncat-es"]["load"]["es_node"] = {"version": "8.1", "heap": "1g"}
    assert "Elasticsearch 8.1 heap 1g" in run_bench.report(results, [])


@pytest.mark.slow
def test_reuse_starts_the_kept_node_on_its_url_and_stops_it_by_pid_leaving_the_directory(tmp_path,
                                                                                          es_node_factory):
    """The real thing, small: a node that held an index and was stopped, reused by
    EsSystem as --reuse does (two node starts, ~1 minute)."""
    import os

    import elasticsearch_node

    node = es_node_factory()
    old_url = node.url
    status, _ = elasticsearch_node.http_json(f"{node.url}/bench/_doc/1?refresh=true", method="PUT",
                                             body={"title": "kept"})
    assert status == 201
    node.stop()
    root = _es_root(tmp_path / "unioncat-es")
    assert es_kept.prepare_reuse(root, node.base_dir, index="bench") == node.base_dir
    es = run_bench.EsSystem(root, ["unioncat"], "loc", {}, 180, keep=True,
                            heap=os.environ.get("UNIONCAT_ES_HEAP", elasticsearch_node.DEFAULT_HEAP))
    try:
        info = es.reuse()
        pid = es.node.pid
        assert info["es_node"]["url"] == old_url and info["es_node"]["dir"] == str(node.base_dir)
        assert info["es_docs"] == 1
        assert es.backend_args()[:4] == ["--backend", "elasticsearch", "--es-url", old_url]
        assert pid in run_bench.STARTED.pids
    finally:
        es.close()
    assert not elasticsearch_node._pid_alive(pid)
    assert pid not in run_bench.STARTED.pids
    assert (node.base_dir / "node.json").exists() and (node.base_dir / "data").is_dir()
