"""SRU from several processes (``unioncat serve --sru-workers N --sru-port P``,
gateway/sru_workers.py): real processes, result sets made through one and used through
another. The serving process answers on --port, its workers on --sru-port: requests that
alternate between the two ports are answered by different processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from lxml import etree

from gateway.demo import write_demo_files
from indexers.ingest import ingest
from live_server import free_port
from sru_validation import validate_sru
from test_sru_server import count, diag_codes

ROOT = Path(__file__).resolve().parents[1]
NS = {"srw": "http://www.loc.gov/zing/srw/"}
START_WITHIN = 120          # seconds a server may take to come up on a loaded machine (a bound, not a wait)


def _env() -> dict:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}


def _get(port: int, path: str = "/sru", **params) -> bytes:
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
        return r.read()


def sru(port: int, path: str = "/sru", version: str = "1.2", **params) -> etree._Element:
    params.setdefault("operation", "searchRetrieve")
    return validate_sru(_get(port, path, version=version, **params), version)


def control_numbers(tree) -> list[str]:
    return tree.xpath("//*[local-name()='controlfield'][@tag='001']/text()")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"    # a zombie has exited
    except FileNotFoundError:
        return False


class Served:
    """``unioncat serve --sru-workers N`` as a process of its own, stopped by its PID."""

    def __init__(self, data_dir: Path, log: Path, workers: int = 2, extra: tuple[str, ...] = ()):
        self.port, self.sru_port = free_port(), free_port()
        self.log = log
        argv = [sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(data_dir), "--port", str(self.port),
                "--z3950-port", "0", "--sru-workers", str(workers), "--sru-port", str(self.sru_port), *extra]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd="/", env=_env())
        deadline = time.monotonic() + START_WITHIN
        while True:
            self.workers = [int(line.split()[2]) for line in log.read_text().splitlines()
                            if line.startswith("SRU worker ")]
            if len(self.workers) == workers and self._answers(self.port):
                break
            assert self.proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            _get(port, operation="explain", version="1.2")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sru-workers")
    files = write_demo_files(d / "in")
    for lib, path in files.items():
        if lib != "komae":                      # ingested while the workers serve
            ingest(d, lib, [path], quiet=True)
    return d, files


@pytest.fixture(scope="module")
def served(demo_dir, tmp_path_factory):
    s = Served(demo_dir[0], tmp_path_factory.mktemp("log") / "serve.log")
    yield s
    s.stop()
    text = s.log.read_text()
    assert "Traceback" not in text, text
    assert not any(_alive(p) for p in s.workers), "the workers stop with the serving process"


def test_a_result_set_made_in_one_process_is_paged_in_another(served):
    ports = (served.port, served.sru_port)
    for made, used in (ports, ports[::-1]):
        first = sru(made, query="dc.title=図書館", maximumRecords="1", resultSetTTL="600")
        rs_id = first.xpath("string(//srw:resultSetId)", namespaces=NS)
        total = count(first)
        assert rs_id and total == 3 and len(control_numbers(first)) == 1
        # the rest of the set, through the other process, by its id
        rest = sru(used, query=f'cql.resultSetId="{rs_id}"', startRecord="2", maximumRecords="2")
        assert count(rest) == total and diag_codes(rest) == []
        # the same pages from the process that made it: the same records in the same order
        here = sru(made, query=f'cql.resultSetId="{rs_id}"', startRecord="2", maximumRecords="2")
        assert control_numbers(rest) == control_numbers(here) and len(control_numbers(rest)) == 2
        # and combined with a search term over there
        within = sru(used, query=f'cql.resultSetId="{rs_id}" and dc.title=歴史')
        assert count(within) == 1


def test_a_result_set_that_never_existed_is_diagnostic_51_everywhere(served):
    for port in (served.port, served.sru_port):
        assert diag_codes(sru(port, query='cql.resultSetId="nosuchset"')) == [51]


def test_the_workers_serve_every_sru_operation_and_database(served):
    p = served.sru_port
    explain = sru(p, operation="explain")
    assert explain.xpath("string(//*[local-name()='port'])") == str(p)
    scan = validate_sru(_get(p, operation="scan", version="1.2", scanClause="dc.title=図書", maximumTerms="3"), "1.2")
    assert len(scan.xpath("//*[local-name()='term']")) >= 1
    assert count(sru(p, "/sru/iizuka", query="dc.title=図書館")) == count(sru(served.port, "/sru/iizuka",
                                                                             query="dc.title=図書館"))
    assert diag_codes(sru(p, "/sru/nowhere", query="dc.title=x")) == [235]
    assert diag_codes(sru(p, version="2.0", query="dc.title=(")) == [10]


def test_an_ingest_is_seen_by_every_process(served, demo_dir):
    d, files = demo_dir
    before = {port: count(sru(port, query="cql.allRecords=1")) for port in (served.port, served.sru_port)}
    assert before[served.port] == before[served.sru_port]
    assert count(sru(served.sru_port, "/sru/komae", query="cql.allRecords=1")) == 0
    ingest(d, "komae", [files["komae"]], quiet=True)
    for port in (served.port, served.sru_port, served.sru_port):
        assert count(sru(port, query="cql.allRecords=1")) > before[port]   # no stale set is reused
        assert count(sru(port, "/sru/komae", query="cql.allRecords=1")) > 0


def test_a_worker_exits_when_its_parent_is_killed(demo_dir, tmp_path):
    s = Served(demo_dir[0], tmp_path / "serve.log", workers=1)
    try:
        (worker,) = s.workers
        assert _alive(worker)
        s.proc.kill()                              # no chance to stop its workers
        s.proc.wait(60)
        deadline = time.monotonic() + 60           # the worker looks for its parent every second
        while _alive(worker):
            assert time.monotonic() < deadline, "the worker outlived its parent"
            time.sleep(0.2)
    finally:
        s.stop()


def test_bad_sru_worker_options_are_said_in_one_line(tmp_path, capsys):
    from gateway import cli

    d = tmp_path / "d"
    ingest(d, "iizuka", [write_demo_files(tmp_path / "in")["iizuka"]], quiet=True)
    base = ["serve", "--data-dir", str(d), "--port", "18301", "--z3950-port", "0"]
    assert cli.main([*base, "--sru-workers", "-1"]) == 2
    assert "--sru-workers must be 0 or more" in capsys.readouterr().err
    assert cli.main([*base, "--sru-workers", "1", "--sru-port", "18301"]) == 2
    assert "--sru-port 18301: not a port of its own" in capsys.readouterr().err
    assert not (d / "result_sets.sqlite").exists()      # nothing started, nothing made


def test_elasticsearch_result_sets_cross_servers_through_the_shared_store(demo_server_es, tmp_path):
    """On Elasticsearch a set's hits are a query and cursors (EsHandle), written as JSON:
    two servers of one catalog, each with its own connection to the shared store, page
    one set alike."""
    from gateway.app import SRU_SERVICE
    from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
    from live_server import Server
    from search.result_sets_shared import SharedResultSets

    cfg = demo_server_es.app[SRU_SERVICE].catalog.cfg
    a, b = (Server(demo_server_es.data_dir, catalog=ElasticsearchCatalog(cfg),
                   sru_result_sets=SharedResultSets(tmp_path / "rs.sqlite")) for _ in range(2))
    try:
        def get(server, **params):
            status, body, _ = server.get(version="1.2", operation="searchRetrieve", **params)
            assert status == 200
            return validate_sru(body, "1.2")

        first = get(a, query="cql.allRecords=1", maximumRecords="5")
        rs_id, total = first.xpath("string(//srw:resultSetId)", namespaces=NS), count(first)
        assert rs_id and total > 10
        there = get(b, query=f'cql.resultSetId="{rs_id}"', startRecord="6", maximumRecords="5")
        here = get(a, query=f'cql.resultSetId="{rs_id}"', startRecord="6", maximumRecords="5")
        assert count(there) == total and control_numbers(there) == control_numbers(here) != []
        assert diag_codes(get(b, query='cql.resultSetId="nosuchset"')) == [51]
    finally:
        a.stop()
        b.stop()


def test_a_worker_reads_live_availability_from_the_circulation_database(tmp_path):
    """With a circulation database the OPAC schema carries each copy's status now: a
    worker reads the serving process's database (DATA_DIR/circulation.db here) and says
    what the serving process says."""
    from gateway import cli

    d = tmp_path / "demo"
    assert cli.main(["demo", "--no-serve", "--data-dir", str(d)]) == 0
    s = Served(d, tmp_path / "serve.log", workers=1)
    try:
        def holdings(port):
            tree = sru(port, query="dc.title=図書館", recordSchema="opac", maximumRecords="3")
            return [etree.tostring(r, method="c14n") for r in tree.xpath("//srw:recordData", namespaces=NS)]

        here, there = holdings(s.port), holdings(s.sru_port)
        assert len(here) == 3 and here == there
        # a status is there only when the circulation database was read (else: unknown, no element)
        assert any(b"<availableNow " in r for r in there), there[0][:800]
    finally:
        s.stop()
    assert "Traceback" not in s.log.read_text()


def test_the_serving_process_and_each_worker_freeze_their_start_up_heap(served):
    """gc.freeze once listening (gateway/workers.py freeze_startup_heap): no later full
    collection walks the modules, configuration and plans start-up left behind."""
    import re

    frozen = [int(n) for n in re.findall(r"start-up heap frozen: (\d+) objects", served.log.read_text())]
    assert len(frozen) >= 1 + len(served.workers), served.log.read_text()
    assert min(frozen) > 10_000           # ~100,000 objects in a serving process
