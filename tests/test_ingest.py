"""`unioncat ingest` as a user runs it: formats, quarantine and counts,
interruption and resume, a server answering while an ingest writes."""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lxml import etree

import marc_fixtures as mf
from catalog_builder import CatalogUnderTest
from live_server import Server

UNIONCAT = [sys.executable, "-m", "gateway.cli"]
ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*UNIONCAT, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def counts_of(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_bad_records_are_quarantined_with_offset_and_reason_and_counted(tmp_path):
    path, expected = mf.bad_file(tmp_path / "mixed.mrc")
    r = run_cli("ingest", "--data-dir", tmp_path / "d", "--library", "a", "--json", path)
    assert r.returncode == 0, r.stderr
    c = counts_of(r.stdout)
    n_bad = sum(1 for _, s in expected if s == "bad")
    assert c["read"] == len(expected)
    assert c["quarantined"] == n_bad and c["added"] == len(expected) - n_bad
    lines = [json.loads(x) for x in Path(c["quarantine_file"]).read_text(encoding="utf-8").splitlines()]
    assert len(lines) == n_bad
    data = path.read_bytes()
    for q in lines:
        assert q["reason"] and q["file"] == str(path)
        raw = __import__("base64").b64decode(q["raw_base64"])
        assert data[q["offset"]: q["offset"] + len(raw)] == raw  # the offset points at the bad bytes
    assert any("U+001F in field 001" in q["reason"] for q in lines)
    assert any("truncated at end of file" in q["reason"] for q in lines)


def test_marcxml_gzip_and_marc8_are_read(tmp_path):
    recs = [mf.make_record(control_number=f"x{i}", title=f"Gzipped xml title {i}") for i in range(3)]
    xml = mf.write_marcxml_gz(tmp_path / "a.xml.gz", recs)
    iso = tmp_path / "m8.mrc"
    iso.write_bytes(mf.marc8_record_bytes("m8-0001"))
    cat = CatalogUnderTest(tmp_path / "d")
    r = run_cli("ingest", "--data-dir", cat.data_dir, "--library", "a", "--json", xml, iso)
    assert counts_of(r.stdout)["added"] == 4, r.stdout + r.stderr
    assert cat.hits("dc.title=gzipped") == {"x0", "x1", "x2"}
    assert "m8-0001" in cat.hits("tokyo")  # MARC-8 combining macron: Tōkyō


def test_data_dir_from_environment_and_clear_error_without_one(tmp_path):
    path = mf.write_iso2709(tmp_path / "one.mrc", [mf.make_record(control_number="e1", title="Env title")])
    r = run_cli("ingest", "--library", "a", path, env={"UNIONCAT_DATA_DIR": str(tmp_path / "envd")})
    assert r.returncode == 0 and (tmp_path / "envd" / "catalog.sqlite").exists()
    env = {k: v for k, v in os.environ.items() if k != "UNIONCAT_DATA_DIR"}
    r = subprocess.run([*UNIONCAT, "ingest", "--library", "a", str(path)], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    assert r.returncode != 0 and "--data-dir" in r.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    r = run_cli("ingest", "--data-dir", tmp_path, "--library", "a", tmp_path / "nope.mrc")
    assert r.returncode == 2 and "no such file" in r.stderr


def _integrity(db: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(db)
    sources = conn.execute("SELECT COUNT(*) FROM source").fetchone()[0]
    docs = conn.execute("SELECT COUNT(*) FROM doc").fetchone()[0]
    ft = conn.execute("SELECT COUNT(*) FROM ft").fetchone()[0]
    # every source's union record is indexed, every indexed record has a source
    orphans = conn.execute("SELECT COUNT(*) FROM source s LEFT JOIN doc d ON d.union_id = s.union_id"
                           " WHERE d.union_id IS NULL").fetchone()[0]
    empty = conn.execute("SELECT COUNT(*) FROM doc d LEFT JOIN source s ON s.union_id = d.union_id"
                         " WHERE s.id IS NULL").fetchone()[0]
    conn.close()
    assert orphans == 0 and empty == 0 and docs == ft
    return sources, docs, ft


def test_killed_ingest_resumes_without_duplicates_or_half_records(tmp_path):
    n = 30000
    path = mf.write_many_iso2709(tmp_path / "many.mrc", n)
    d = tmp_path / "d"
    proc = subprocess.Popen([*UNIONCAT, "ingest", "--data-dir", str(d), "--library", "a", "--json", str(path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = d / "catalog.sqlite"
    deadline = time.time() + 120
    committed = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                committed = conn.execute("SELECT COUNT(*) FROM source").fetchone()[0]
                conn.close()
            except sqlite3.Error:
                continue
            if committed >= 2000:
                break
    assert proc.poll() is None, "ingest finished before it could be killed; make the file bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    sources, docs, _ = _integrity(db)
    assert 0 < sources < n and sources % 1000 == 0  # whole batches only
    r = run_cli("ingest", "--data-dir", d, "--library", "a", "--json", path)
    c = counts_of(r.stdout)
    assert c["unchanged"] == sources and c["added"] == n - sources
    assert _integrity(db) == (n, n, n)


def test_interrupt_keeps_committed_batches(tmp_path):
    path = mf.write_many_iso2709(tmp_path / "many.mrc", 20000)
    d = tmp_path / "d"
    proc = subprocess.Popen([*UNIONCAT, "ingest", "--data-dir", str(d), "--library", "a", str(path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = d / "catalog.sqlite"
    for _ in range(600):
        time.sleep(0.1)
        if db.exists():
            try:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                if conn.execute("SELECT COUNT(*) FROM source").fetchone()[0] >= 1000:
                    conn.close()
                    break
                conn.close()
            except sqlite3.Error:
                pass
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in out, out + err
    _integrity(db)


def _hits(body: bytes) -> int:
    tree = etree.fromstring(body)
    n = tree.xpath("string(//*[local-name()='numberOfRecords'])")
    assert n, body[:2000]
    return int(n)


def test_server_answers_during_ingest_and_sees_commits(tmp_path):
    d = tmp_path / "d"
    first = mf.write_iso2709(tmp_path / "first.mrc", [mf.make_record(control_number="f1", title="Seed record")])
    assert run_cli("ingest", "--data-dir", d, "--library", "a", first).returncode == 0
    big = mf.write_many_iso2709(tmp_path / "many.mrc", 20000)
    server = Server(d)
    try:
        proc = subprocess.Popen([*UNIONCAT, "ingest", "--data-dir", str(d), "--library", "b", str(big)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen = []
        while proc.poll() is None:
            status, body, _ = server.get(version="1.2", operation="searchRetrieve", query="dc.title=record",
                                         maximumRecords="0")
            assert status == 200
            seen.append(_hits(body))
            time.sleep(0.05)
        assert proc.returncode == 0
        assert seen == sorted(seen)  # never goes back
        assert len(set(seen)) > 2  # batches became visible while the ingest ran
        status, body, _ = server.get(version="1.2", operation="searchRetrieve", query="dc.title=record",
                                     maximumRecords="0")
        assert _hits(body) == 20001
    finally:
        server.stop()


def _run_in_pty(args) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(60)
    os.close(master)
    return out.decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_only(tmp_path):
    path = mf.write_many_iso2709(tmp_path / "many.mrc", 3000)
    tty = _run_in_pty([*UNIONCAT, "ingest", "--data-dir", str(tmp_path / "t"), "--library", "a", str(path)])
    assert "ingest:" in tty and "read 3000" in tty
    r = run_cli("ingest", "--data-dir", tmp_path / "p", "--library", "a", path)
    assert "ingest:" not in r.stderr and "read 3000" in r.stdout


@pytest.mark.parametrize("n_small,n_big", [(10000, 60000)])
def test_ingest_memory_does_not_grow_with_the_file(tmp_path, n_small, n_big):
    def peak(n):
        path = mf.write_many_iso2709(tmp_path / f"m{n}.mrc", n)
        code = ("import resource,sys; from pathlib import Path; from indexers.ingest import ingest;"
                f"ingest(Path({str(tmp_path / f'd{n}')!r}), 'a', [Path({str(path)!r})], quiet=True);"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr
        return int(r.stdout.strip())

    # the writer's page cache (32 MB) fills during the first ~10,000 records; after that
    # the peak must not move with the size of the file
    small, big = peak(n_small), peak(n_big)
    assert big < small * 1.1 + 8_000, (small, big)  # KiB
