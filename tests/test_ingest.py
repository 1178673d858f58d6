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


# ---------------------------------------------------------------- damaged bytes: never silently altered
def _flip_base() -> list[bytes]:
    """Records of every kind the reader decodes differently: UTF-8 with Japanese in
    880 or 245, plain ASCII, MARC-8 (ANSEL + EACC) and MARC-8 under a leader that
    says UTF-8.  Control numbers differ in at least two bytes, so one damaged byte
    cannot make two records one."""
    return [
        mf.iso_record_bytes(mf.make_record(control_number="aa1111", vernacular_in_880=True)),
        mf.iso_record_bytes(mf.make_record(control_number="bb2222", place="Tokyo", title="Plain",
                                           author="Smith, John")),
        mf.marc8_record_bytes("cc3333"),
        mf.iso_record_bytes(mf.make_record(control_number="dd4444", vernacular_in_245=True)),
        mf.marc8_record_bytes("ee5555", leader9="a"),
    ]


def assert_never_silently_altered(data: bytes, data_dir: Path, counts: dict) -> dict:
    """Every record of ``data`` that ingest read is stored byte for byte as it was
    read, or quarantined with a reason and its exact bytes, or stored and listed in
    the run's repaired file with what was changed and its exact bytes, or (MARC-8)
    stored as pymarc's MARC-8 conversion of its exact bytes.  Returns the outcome
    counts."""
    import base64
    import io

    import pymarc

    from indexers.marc_items import ReadRecord as RR
    from indexers.marc_items import field_key
    from indexers.marc_reader import decode_stored, read_marc

    def lines(kind: str) -> list[dict]:
        files = sorted((data_dir / "quarantine").glob(f"a-run*{kind}.jsonl")) if (data_dir / "quarantine").exists() \
            else []
        return [json.loads(x) for f in files for x in f.read_text(encoding="utf-8").splitlines()]

    quarantined = lines("[0-9]")
    repaired = lines("-repaired")
    for q in quarantined + repaired:
        raw = base64.b64decode(q["raw_base64"])
        assert raw and data[q["offset"]: q["offset"] + len(raw)] == raw, q  # the bytes as they were
    assert all(q["reason"] for q in quarantined)
    assert all(r["warnings"] for r in repaired)
    assert counts["quarantined"] == len(quarantined) and counts["repaired"] == len(repaired)
    assert counts["read"] == sum(counts[k] for k in ("quarantined", "added", "updated", "unchanged", "withdrawn",
                                                      "deleted_unknown"))
    conn = sqlite3.connect(data_dir / "catalog.sqlite")
    stored = dict(conn.execute("SELECT local_id, marc FROM source"))
    conn.close()
    reported = {r["local_id"] for r in repaired}
    assert reported <= set(stored)
    marc8_frames: dict[str, list[bytes]] = {}
    for it in read_marc(io.BytesIO(data), fmt="iso2709"):
        if isinstance(it, RR) and it.encoding == "marc-8" and not it.warnings and it.record["001"] is not None:
            marc8_frames.setdefault(it.record["001"].data.strip(), []).append(it.raw)
    outcome = {"as read": 0, "reported": 0, "marc-8": 0}
    for local_id, marc in stored.items():
        if local_id in reported:
            outcome["reported"] += 1
        elif marc in data:
            outcome["as read"] += 1
        else:  # only a MARC-8 record may differ unreported: by the conversion alone
            want = [[field_key(f) for f in pymarc.Record(data=raw, to_unicode=True, force_utf8=False,
                                                         hide_utf8_warnings=True).fields]
                    for raw in marc8_frames.get(local_id, [])]
            got = [field_key(f) for f in decode_stored(marc).fields]
            assert got in want, (local_id, marc, "altered without a word")
            outcome["marc-8"] += 1
    return outcome


def test_records_with_flipped_bytes_are_stored_as_read_quarantined_or_reported(tmp_path):
    """The issue's run: 50 records with one byte flipped each, through the real
    command (records prepared in worker processes)."""
    import random

    rng = random.Random(15)
    base = _flip_base()
    out = bytearray()
    for i in range(50):
        raw = bytearray(base[i % len(base)])
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        out += raw
    path = tmp_path / "flipped.mrc"
    path.write_bytes(bytes(out))
    r = run_cli("ingest", "--data-dir", tmp_path / "d", "--library", "a", "--json", "--workers", "1", path)
    assert r.returncode == 0, r.stderr
    c = counts_of(r.stdout)
    outcome = assert_never_silently_altered(bytes(out), tmp_path / "d", c)
    assert c["quarantined"] > 0 and outcome["as read"] > 0  # (a check that can fail both ways)
    if c["repaired"]:
        assert c["repaired_file"] and "repaired" in c["repaired_file"]


def test_property_flipped_bytes_never_silently_alter_a_record(tmp_path_factory):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    from indexers.ingest import ingest

    data0 = b"".join(_flip_base())
    seen = {"as read": 0, "reported": 0, "marc-8": 0}

    @hypothesis.settings(max_examples=120, deadline=None, derandomize=True)
    @hypothesis.given(st.lists(st.tuples(st.integers(0, len(data0) - 1), st.integers(1, 255)), min_size=1,
                               max_size=4))
    def run(flips):
        data = bytearray(data0)
        for at, x in flips:
            data[at] ^= x
        d = tmp_path_factory.mktemp("flip")
        (d / "in.mrc").write_bytes(bytes(data))
        res = ingest(d / "d", "a", [d / "in.mrc"], quiet=True, workers=0)
        outcome = assert_never_silently_altered(bytes(data), d / "d", res.counts.as_dict())
        for k, v in outcome.items():
            seen[k] += v

    run()
    assert all(seen.values()), seen  # every outcome occurred: the property was really exercised


def test_wrong_lengths_and_records_over_99999_bytes_are_stored_whole_and_reported(tmp_path):
    import base64

    from indexers.marc_reader import decode_stored
    from indexers.marc_structure import check_structure

    big = mf.build_iso(mf.big_record_fields("big-utf8"), declared_length="00000")
    big_m8 = mf.build_iso(mf.big_record_fields("big-marc8"), leader9=" ")  # plain ASCII, converted
    small = mf.iso_record_bytes(mf.make_record(control_number="wronglen"))
    wrong = b"%05d" % (len(small) + 7) + small[5:]
    path = tmp_path / "in.mrc"
    path.write_bytes(big + wrong + big_m8)
    r = run_cli("ingest", "--data-dir", tmp_path / "d", "--library", "a", "--json", path)
    assert r.returncode == 0, r.stderr
    c = counts_of(r.stdout)
    assert (c["added"], c["quarantined"], c["repaired"]) == (3, 0, 3)
    conn = sqlite3.connect(tmp_path / "d" / "catalog.sqlite")
    stored = dict(conn.execute("SELECT local_id, marc FROM source"))
    conn.close()
    assert stored["big-utf8"] == big  # the length cannot be written: kept as read
    assert stored["wronglen"] == small  # the length corrected, nothing else
    m8 = stored["big-marc8"]
    assert len(m8) > 99_999 and m8[:5] == b"99999" and m8[9:10] == b"a"  # a 24-byte leader, not 25
    check_structure(m8)
    for cn in ("big-utf8", "big-marc8"):
        rec = decode_stored(stored[cn])
        assert rec["001"].data == cn and len(rec.get_fields("505")) == 12
    reports = {q["local_id"]: q for q in map(json.loads, Path(c["repaired_file"]).read_text().splitlines())}
    assert set(reports) == {"big-utf8", "wronglen", "big-marc8"}
    assert reports["big-utf8"]["stored_as_read"] is True and reports["wronglen"]["stored_as_read"] is False
    assert base64.b64decode(reports["wronglen"]["raw_base64"]) == wrong
    assert all(w.startswith("record length wrong") for q in reports.values() for w in q["warnings"])
    r = run_cli("ingest", "--data-dir", tmp_path / "d2", "--library", "a", path)
    assert ", repaired 3 (" in r.stdout and "-repaired.jsonl" in r.stdout


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


def _proc_start(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process from /proc, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[19])


def _children(pid: int) -> dict[int, int]:
    """{child pid: start time} of a process's children."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out[int(name)] = int(fields[19])
    return out


def _still_running(procs: dict[int, int]) -> list[int]:
    """The processes of procs (pid: start time) that are still alive (a zombie is dead;
    a new process that got the same pid is not ours)."""
    alive = []
    for pid, start in procs.items():
        st = _proc_start(pid)
        if st is not None and st[1] == start and st[0] not in ("Z", "X"):
            alive.append(pid)
    return alive


def _wait_gone(procs: dict[int, int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while _still_running(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _still_running(procs)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_preparing_workers_die_with_a_killed_ingest(tmp_path):
    path = mf.write_many_iso2709(tmp_path / "many.mrc", 30000)
    d = tmp_path / "d"
    proc = subprocess.Popen([*UNIONCAT, "ingest", "--data-dir", str(d), "--library", "a", "--workers", "2",
                             str(path)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: dict[int, int] = {}
    try:
        db = d / "catalog.sqlite"
        deadline = time.monotonic() + 120
        committed = 0
        while time.monotonic() < deadline and proc.poll() is None and (len(workers) < 2 or committed < 1000):
            time.sleep(0.1)
            workers = _children(proc.pid)
            if db.exists():
                try:
                    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                    committed = conn.execute("SELECT COUNT(*) FROM source").fetchone()[0]
                    conn.close()
                except sqlite3.Error:
                    pass
        assert proc.poll() is None and len(workers) == 2, "the ingest ended too soon; make the file bigger"
        # one worker cannot notice anything by itself (stopped), the other is busy: both
        # must end with the ingest, by the kernel's word, not by finishing their blocks
        stopped = min(workers)
        os.kill(stopped, signal.SIGSTOP)
        proc.kill()
        proc.wait(30)
        assert _wait_gone(workers, 30) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for pid in _still_running(workers):  # (only when the test failed)
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_parent_watch_ends_a_worker_whose_parent_died(tmp_path):
    """The portable half of die_with_parent (no prctl): a grandchild watching its
    parent ends when the parent is SIGKILLed."""
    ready = tmp_path / "ready"
    child = ("import sys, time\n"
             "from indexers.ingest import die_with_parent\n"
             "die_with_parent(int(sys.argv[1]), use_prctl=False, interval=0.05)\n"
             "open(sys.argv[2], 'w').close()\n"
             "time.sleep(600)\n")
    parent = ("import os, subprocess, sys, time\n"
              f"p = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid()), sys.argv[1]])\n"
              "print(p.pid, flush=True)\n"
              "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent, str(ready)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    grandchild: dict[int, int] = {}
    try:
        pid = int(proc.stdout.readline())
        st = _proc_start(pid)
        assert st is not None
        grandchild = {pid: st[1]}
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        proc.kill()
        proc.wait(30)
        assert _wait_gone(grandchild, 30) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for p in _still_running(grandchild):
            os.kill(p, signal.SIGKILL)


@pytest.mark.parametrize("whom", ["ingest", "group"])
def test_interrupt_keeps_committed_batches(tmp_path, whom):
    """Ctrl-C sent to the ingest alone, or to its whole process group as a terminal
    does (then its preparing workers get it too: they leave it to the ingest, print
    nothing and end with it)."""
    path = mf.write_many_iso2709(tmp_path / "many.mrc", 20000)
    d = tmp_path / "d"
    proc = subprocess.Popen([*UNIONCAT, "ingest", "--data-dir", str(d), "--library", "a", "--workers", "2",
                             str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    db = d / "catalog.sqlite"
    workers: dict[int, int] = {}
    for _ in range(600):
        time.sleep(0.1)
        if len(workers) < 2:
            workers = _children(proc.pid)
        if db.exists():
            try:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                if conn.execute("SELECT COUNT(*) FROM source").fetchone()[0] >= 1000:
                    conn.close()
                    break
                conn.close()
            except sqlite3.Error:
                pass
    assert len(workers) == 2, "the ingest ended before its workers were seen; make the file bigger"
    if whom == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 130 and "interrupted" in out, out + err
    assert "Traceback" not in err, err
    assert _wait_gone(workers, 30) == []
    _integrity(db)


# ---------------------------------------------------------------- a full disk, an unwritable directory
def _run_row(db: Path, library: str) -> tuple:
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT finished, counts, outcome FROM run WHERE library=? ORDER BY id DESC LIMIT 1",
                       (library,)).fetchone()
    conn.close()
    return row[0], json.loads(row[1]) if row[1] else None, row[2]


def _sources(db: Path, library: str) -> int:
    conn = sqlite3.connect(db)
    n = conn.execute("SELECT COUNT(*) FROM source WHERE library=?", (library,)).fetchone()[0]
    conn.close()
    return n


def _integrity_check(db: Path) -> None:
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def _quarantine_lines(d: Path, library: str) -> int:
    return sum(len(f.read_text(encoding="utf-8").splitlines())
               for f in (d / "quarantine").glob(f"{library}-run*[0-9].jsonl")) \
        if (d / "quarantine").is_dir() else 0


def _good_bad_good(path: Path, tmp: Path) -> tuple[Path, int, int]:
    """6,000 good records with the 20 records of mf.bad_file (8 bad) after the 1,500th:
    (path, records read, records bad)."""
    good = mf.write_many_iso2709(tmp / "good.mrc", 6000).read_bytes()
    cut = 0
    for _ in range(1500):
        cut = good.index(b"\x1d", cut) + 1
    bad_path, expected = mf.bad_file(tmp / "bad.mrc")
    path.write_bytes(good[:cut] + bad_path.read_bytes() + good[cut:])
    return path, 6000 + len(expected), sum(1 for _, s in expected if s == "bad")


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_completes(tmp_path, monkeypatch, capsys):
    """SQLite's max_page_count gives the real "database or disk is full" without root
    or a small file system: the store may grow by about one batch of records."""
    import indexers.ingest as ingest_mod
    from gateway.cli import main

    d = tmp_path / "d"
    first = mf.write_many_iso2709(tmp_path / "first.mrc", 2000)
    assert main(["ingest", "--data-dir", str(d), "--library", "a", "--workers", "0", "--quiet", str(first)]) == 0
    db = d / "catalog.sqlite"
    conn = sqlite3.connect(db)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    real_connect = ingest_mod.connect

    def capped(path, **kw):
        conn = real_connect(path, **kw)
        conn.execute(f"PRAGMA max_page_count={int(pages * 1.6)}")
        return conn

    monkeypatch.setattr(ingest_mod, "connect", capped)
    path, n, n_bad = _good_bad_good(tmp_path / "second.mrc", tmp_path)
    capsys.readouterr()
    rc = main(["ingest", "--data-dir", str(d), "--library", "b", "--workers", "0", "--json", str(path)])
    out, err = capsys.readouterr()
    assert rc == 74, out + err
    assert "stopped: database or disk is full (record store " in err and "Traceback" not in err
    printed = json.loads(out.strip().splitlines()[-1])
    stored = _sources(db, "b")
    assert 0 < stored < n and stored % 1000 == 0, stored  # whole batches only
    finished, counts, outcome = _run_row(db, "b")
    assert finished is not None and outcome.startswith("failed: database or disk is full")
    assert counts == {k: printed[k] for k in counts}  # the run row says what was printed
    assert counts["added"] == stored and counts["read"] == stored + counts["quarantined"]
    assert _quarantine_lines(d, "b") == counts["quarantined"]  # lines of the rolled-back batch are gone
    _integrity_check(db)
    _integrity(db)
    monkeypatch.setattr(ingest_mod, "connect", real_connect)
    r = run_cli("ingest", "--data-dir", d, "--library", "b", "--json", path)
    assert r.returncode == 0, r.stderr
    c = counts_of(r.stdout)
    assert (c["read"], c["unchanged"], c["added"], c["quarantined"]) == (n, stored, n - n_bad - stored, n_bad)
    assert _run_row(db, "b")[2] == "complete"
    _integrity_check(db)
    assert _integrity(db)[0] == 2000 + n - n_bad


@pytest.mark.parametrize("case", ["data dir is a file", "writer.lock is a directory", "quarantine is a file",
                                  "read-only directory"])
def test_an_unwritable_data_directory_gives_a_clear_message_and_a_closed_run(tmp_path, case):
    """Reproductions that hold for root too (chmod does not bind root): a file where
    the data directory or quarantine/ should be, a directory where writer.lock should
    be; the real read-only directory only when not root."""
    d = tmp_path / "d"
    path, n, n_bad = _good_bad_good(tmp_path / "in.mrc", tmp_path)
    if case == "data dir is a file":
        d.write_text("not a directory")
    elif case == "writer.lock is a directory":
        (d / "writer.lock").mkdir(parents=True)
    else:
        seed = mf.write_iso2709(tmp_path / "seed.mrc", [mf.make_record(control_number="seed")])
        assert run_cli("ingest", "--data-dir", d, "--library", "a", seed).returncode == 0
        if case == "quarantine is a file":
            (d / "quarantine").write_text("not a directory")
        else:
            if os.geteuid() == 0:
                pytest.skip("root writes to read-only directories")
            d.chmod(0o555)
    try:
        r = run_cli("ingest", "--data-dir", d, "--library", "b", "--json", path)
    finally:
        if d.is_dir():
            d.chmod(0o755)
    assert r.returncode == 74, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3, r.stderr
    if case == "data dir is a file":
        assert r.stderr.strip() == f"unioncat ingest: cannot write to {d}: Not a directory: {d}"
        return
    if case == "writer.lock is a directory":
        assert f"unioncat ingest: cannot write to {d}: Is a directory: {d / 'writer.lock'}" in r.stderr
        assert not (d / "catalog.sqlite").exists()
        return
    if case == "read-only directory":
        assert "Permission denied" in r.stderr
        return
    # quarantine/ cannot be created when the first bad record comes: the run stops there
    assert f"unioncat ingest: stopped: Not a directory: {d / 'quarantine'}\n" in r.stderr, r.stderr
    db = d / "catalog.sqlite"
    printed = counts_of(r.stdout)
    finished, counts, outcome = _run_row(db, "b")
    assert finished is not None and outcome.startswith("failed: ") and counts["added"] == printed["added"]
    assert _sources(db, "b") == counts["added"] == 1000  # the batch with the first bad record rolled back
    _integrity_check(db)
    (d / "quarantine").unlink()
    r = run_cli("ingest", "--data-dir", d, "--library", "b", "--json", path)
    assert r.returncode == 0, r.stderr
    c = counts_of(r.stdout)
    assert (c["unchanged"], c["added"], c["quarantined"]) == (1000, n - n_bad - 1000, n_bad)
    assert _quarantine_lines(d, "b") == n_bad
    _integrity_check(db)


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
