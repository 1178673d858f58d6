"""The indexing side of the Elasticsearch backend on a cluster's bad days, with a real
node the tests stop and start: a reindex never moves the alias to an incomplete
index, fails fast and cleans up after itself; an ingest whose node goes away
accounts for every document that got in; no task outlives the operation that
started it.  Retry budgets are injected through the catalog's configuration file
(retry_seconds), so no test waits minutes."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import marc_fixtures as mf
from indexers.backends.elasticsearch_index import Outage

ROOT = Path(__file__).resolve().parent.parent
UNIONCAT = [sys.executable, "-m", "gateway.cli"]
IN_FLIGHT = 2 * 500  # bulk requests in flight x documents per request (config/elasticsearch.toml)
NOISE = ("Traceback", "Task exception was never retrieved", "Event loop is closed", "was destroyed but it is pending")


def cli(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*UNIONCAT, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=dict(os.environ))


def http(url: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def indexes(url: str, alias: str) -> dict[str, int]:
    """{physical index: documents} of the alias's indexes (the -meta index left out)."""
    got = http(f"{url}/_cat/indices/{alias}-*?format=json&h=index,docs.count")
    return {r["index"]: int(r["docs.count"] or 0) for r in got if not r["index"].endswith("-meta")}


def alias_target(url: str, alias: str) -> str:
    (name,) = http(f"{url}/_alias/{alias}")
    return name


def count(url: str, index: str) -> int:
    http(f"{url}/{index}/_refresh", "POST")
    return http(f"{url}/{index}/_count")["count"]


def indexed_so_far(url: str, index: str) -> int:
    """Documents indexed into an index that is not refreshed (a reindex builds with
    refresh_interval -1): the indexing statistics count them."""
    try:
        stats = http(f"{url}/{index}/_stats/indexing")
    except (urllib.error.URLError, OSError):
        return 0
    # (an index just created may have no started primary yet: no statistics)
    return stats["_all"]["primaries"].get("indexing", {}).get("index_total", 0)


def write_config(path: Path, url: str, alias: str, **settings) -> Path:
    lines = ['backend = "elasticsearch"', "[elasticsearch]", f'urls = ["{url}"]', f'index = "{alias}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def store_meta(d: Path, key: str):
    conn = sqlite3.connect(d / "catalog.sqlite")
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    conn.close()
    return json.loads(row[0]) if row else None


def store_count(d: Path, sql: str) -> int:
    conn = sqlite3.connect(d / "catalog.sqlite")
    n = conn.execute(sql).fetchone()[0]
    conn.close()
    return n


def up(node) -> None:
    if not node.is_running():
        node.restart()


def assert_quiet(stderr: str) -> None:
    for noise in NOISE:
        assert noise not in stderr, stderr[-3000:]


# ------------------------------------------------------------------ the retry budget itself
def test_one_outage_budget_is_shared_by_every_request_of_an_operation():
    now = [0.0]
    o = Outage(10, clock=lambda: now[0])
    assert o.failed() and o.remaining() == 10  # the first failure starts the clock
    now[0] = 6
    assert o.failed() and o.remaining() == 4  # another request failing meanwhile: the same clock
    now[0] = 10
    assert not o.failed() and o.remaining() == 0  # ten seconds down in a row: give up
    o.ok()  # a success in between starts it afresh
    now[0] = 30
    assert o.failed() and o.remaining() == 10


# ------------------------------------------------------------------ reindex
@pytest.fixture(scope="module")
def node(es_node_factory_module):
    """A node of this module's own: the tests stop and restart it."""
    return es_node_factory_module()


def test_a_reindex_whose_node_dies_fails_fast_keeps_the_alias_and_leaves_no_index_behind(node, tmp_path):
    n = 20000
    alias = "reidx-faults"
    d = tmp_path / "d"
    path = mf.write_many_iso2709(tmp_path / "many.mrc", n)
    r = cli("ingest", "--data-dir", d, "--es-url", node.url, "--es-index", alias, "--library", "a", "--quiet", path)
    assert r.returncode == 0, r.stdout + r.stderr
    old = alias_target(node.url, alias)
    assert count(node.url, old) == n
    # small chunks one at a time: the build takes long enough to be caught in the middle;
    # three seconds of unavailability and it gives up
    write_config(d / "unioncat.toml", node.url, alias, retry_seconds=3.0, bulk_chunk=100, bulk_concurrency=1)
    proc = subprocess.Popen([*UNIONCAT, "reindex", "--data-dir", str(d)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        building = None
        while time.monotonic() < deadline and proc.poll() is None:
            new = [i for i in indexes(node.url, alias) if i != old]
            if new and indexed_so_far(node.url, new[0]) >= 1000:
                building = new[0]
                break
            time.sleep(0.1)
        assert building is not None and proc.poll() is None, "the reindex ended before the node could be stopped"
        node.stop()
        out, err = proc.communicate(timeout=120)  # with a budget per chunk this took 200 x 3 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 75, out + err
    assert "unioncat reindex: failed: Elasticsearch unavailable for 3 s" in err, err
    assert f"the alias still points at {old}" in err and f"({building}) is deleted by the next reindex" in err
    assert "reindexed" not in out
    assert_quiet(err)
    assert store_meta(d, "es_abandoned") == [building]  # noted, so that nothing is left behind
    node.restart()
    assert alias_target(node.url, alias) == old and count(node.url, old) == n  # searches never noticed
    r = cli("stats", "--data-dir", d)
    assert r.returncode == 0 and f"elasticsearch: {n} documents, 0 waiting in the outbox, 0 rejected" in r.stdout
    assert "does not match" not in r.stdout
    # the next command that talks to the cluster deletes the leftover
    r = cli("sync", "--data-dir", d)
    assert r.returncode == 0, r.stderr
    assert set(indexes(node.url, alias)) == {old} and store_meta(d, "es_abandoned") == []
    # and a reindex on a healthy node completes, verified, and replaces the old index
    r = cli("reindex", "--data-dir", d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"reindexed {n} union records" in r.stdout and f"(replaced {old})" in r.stdout
    assert_quiet(r.stderr)
    new = alias_target(node.url, alias)
    assert new != old and indexes(node.url, alias) == {new: n}


def test_a_reindex_that_cannot_verify_its_index_does_not_move_the_alias(node, tmp_path):
    """The alias moves only when the new index holds every union record of the store:
    a store whose union table lost a row (its record would be missing from a rebuild)
    fails the check, and the half-built index is deleted."""
    up(node)
    alias = "reidx-verify"
    d = tmp_path / "d"
    path = mf.write_iso2709(tmp_path / "a.mrc", [mf.make_record(control_number=f"v{i}", title=f"Verified {i}")
                                                 for i in range(300)])
    r = cli("ingest", "--data-dir", d, "--es-url", node.url, "--es-index", alias, "--library", "a", path)
    assert r.returncode == 0, r.stdout + r.stderr
    old = alias_target(node.url, alias)
    conn = sqlite3.connect(d / "catalog.sqlite")
    conn.execute("INSERT INTO es_failed(union_id, reason, at) VALUES (1, 'kept', 0)")  # must survive a failure
    conn.execute("DELETE FROM union_rec WHERE id = (SELECT MAX(id) FROM union_rec)")
    conn.commit()
    conn.close()
    r = cli("reindex", "--data-dir", d)
    assert r.returncode == 75, r.stdout + r.stderr
    assert ("unioncat reindex: failed: the new index holds 299 documents but the store has 300 union records; "
            f"the alias still points at {old}; the index it was building (") in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith(") was deleted")
    assert_quiet(r.stderr)
    assert alias_target(node.url, alias) == old and indexes(node.url, alias) == {old: 300}
    assert store_count(d, "SELECT COUNT(*) FROM es_failed") == 1 and store_meta(d, "es_abandoned") == []


# ------------------------------------------------------------------ ingest
def test_an_ingest_whose_node_dies_counts_every_document_that_got_in(node, tmp_path):
    """The report used to say "indexed 0" when the cluster went away after thousands
    of acknowledged documents: they are counted as they are acknowledged now, and
    what is counted plus what waits in the outbox is every union record."""
    up(node)
    n = 12000
    alias = "ingest-dies"
    d = tmp_path / "d"
    path = mf.write_many_iso2709(tmp_path / "many.mrc", n)
    cfg = write_config(tmp_path / "es.toml", node.url, alias, retry_seconds=2.0)
    proc = subprocess.Popen([*UNIONCAT, "ingest", "--data-dir", str(d), "--config", str(cfg), "--library", "a",
                             "--json", "--quiet", str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    seen = 0
    while time.monotonic() < deadline and proc.poll() is None and seen < 2000:
        time.sleep(0.2)
        try:
            seen = count(node.url, alias)
        except (urllib.error.URLError, OSError):
            seen = 0
    assert proc.poll() is None and seen >= 2000, "the ingest ended before the node could be stopped"
    node.stop()
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 75, out + err  # stored; the rest waits in the outbox
    assert_quiet(err)
    report = json.loads(out.strip().splitlines()[-1])
    es = report["elasticsearch"]
    unions = store_count(d, "SELECT COUNT(*) FROM union_rec")
    assert report["added"] == n and unions == n
    # what was seen in the index was counted, but for the chunks in flight when the node went
    # away (2 requests of 500): those stay in the outbox, as if never sent
    assert es["indexed"] >= seen - IN_FLIGHT > 0
    assert es["indexed"] + es["pending"] == unions  # every union record: acknowledged once, or waiting
    assert store_count(d, "SELECT COUNT(*) FROM es_outbox") == es["pending"] > 0
    node.restart()
    r = cli("sync", "--data-dir", d, "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert count(node.url, alias) == n and store_count(d, "SELECT COUNT(*) FROM es_outbox") == 0


def test_an_interrupted_ingest_reports_what_got_into_the_index(node, tmp_path):
    """Ctrl-C while the pusher is sending: its drain is cancelled, what was
    acknowledged is counted and leaves the outbox, the rest waits there."""
    import signal

    up(node)
    n = 12000
    alias = "ingest-interrupted"
    d = tmp_path / "d"
    path = mf.write_many_iso2709(tmp_path / "many.mrc", n)
    proc = subprocess.Popen([*UNIONCAT, "ingest", "--data-dir", str(d), "--es-url", node.url, "--es-index", alias,
                             "--library", "a", "--json", "--quiet", str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    seen = 0
    while time.monotonic() < deadline and proc.poll() is None and seen < 2000:
        time.sleep(0.2)
        try:
            seen = count(node.url, alias)
        except (urllib.error.URLError, OSError):
            seen = 0
    assert proc.poll() is None and seen >= 2000, "the ingest ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    assert_quiet(err)
    report = json.loads(out.strip().splitlines()[-1])
    es = report["elasticsearch"]
    unions = store_count(d, "SELECT COUNT(*) FROM union_rec")
    # (the interruption may come while records are stored or during the final push)
    assert report["interrupted"] and report["added"] == unions <= n and unions % 1000 == 0
    assert es["indexed"] >= seen - IN_FLIGHT > 0 and es["indexed"] + es["pending"] == unions
    assert store_count(d, "SELECT COUNT(*) FROM es_outbox") == es["pending"]
    r = cli("sync", "--data-dir", d)
    assert r.returncode == 0, r.stderr
    assert count(node.url, alias) == unions and store_count(d, "SELECT COUNT(*) FROM es_outbox") == 0
