"""The stored display records (indexers/store.py, table ``display``): written with
every union record in the ingest's transaction, read by a Z39.50 USMARC Present in
one statement, equal to splicing the source records, and never used when they may
be stale (a store from before them, a writer that does not keep them, other
holdings tags)."""
from __future__ import annotations

import sqlite3

import pymarc

from gateway.demo import write_demo_files
from indexers.ingest import ingest
from indexers.store import _splice_display, connect, display_format_cached, load_display_iso2709


def _ids(conn) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM union_rec ORDER BY id")]


def _stamp(conn) -> str:
    return conn.execute("SELECT value FROM meta WHERE key='display'").fetchone()[0]


def _demo(tmp_path):
    files = write_demo_files(tmp_path / "in")
    for lib, path in files.items():
        ingest(tmp_path, lib, [path], quiet=True, workers=0 if lib == "iizuka" else 1)
    return files


def test_stored_display_equals_the_splice_and_is_what_a_present_reads(tmp_path):
    _demo(tmp_path)
    conn = connect(tmp_path / "catalog.sqlite")
    ids = _ids(conn)
    assert len(ids) >= 10
    stored = dict(conn.execute("SELECT union_id, iso FROM display"))
    assert sorted(stored) == ids                          # one row per union record, none left over
    assert stored == _splice_display(conn, ids)           # merged records (several libraries) too
    assert load_display_iso2709(conn, ids) == stored
    generation = conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0]
    assert _stamp(conn) == f"{display_format_cached()}@{generation}"
    # the reader takes the stored bytes (not a splice): a marked row comes back as stored
    conn.execute("UPDATE display SET iso=X'00' WHERE union_id=?", (ids[0],))
    assert load_display_iso2709(conn, ids[:2])[ids[0]] == b"\x00"
    assert load_display_iso2709(conn, []) == {}
    assert load_display_iso2709(conn, [10 ** 9]) == {}  # unknown ids absent


def test_a_writer_that_does_not_keep_them_or_other_tags_make_readers_splice(tmp_path):
    _demo(tmp_path)
    conn = connect(tmp_path / "catalog.sqlite")
    ids = _ids(conn)
    conn.execute("UPDATE display SET iso=X'00'")
    assert set(load_display_iso2709(conn, ids).values()) == {b"\x00"}
    # an older writer commits a batch: the generation moves, the stamp does not
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
    assert load_display_iso2709(conn, ids) == _splice_display(conn, ids)
    # a stamp made for other holdings tags
    conn.execute("UPDATE meta SET value = 'other' || substr(value, instr(value, '@')) WHERE key='display'")
    assert load_display_iso2709(conn, ids) == _splice_display(conn, ids)


def test_updates_withdrawals_and_merges_keep_them_current(tmp_path):
    files = _demo(tmp_path)
    # iizuka again, its first record changed (title, holdings) and one record left out (withdrawn)
    recs = list(pymarc.MARCReader(files["iizuka"].read_bytes(), to_unicode=True, force_utf8=True))
    first = recs[0]
    first.get_fields("245")[0].add_subfield("b", "changed subtitle")
    for f in first.get_fields("852"):
        f.add_subfield("p", "NEW-BARCODE")
    out = tmp_path / "iizuka2.mrc"
    out.write_bytes(b"".join(r.as_marc() for r in [first] + recs[2:]))
    ingest(tmp_path, "iizuka", [out], full=True, quiet=True, workers=0)
    conn = connect(tmp_path / "catalog.sqlite")
    ids = _ids(conn)
    stored = dict(conn.execute("SELECT union_id, iso FROM display"))
    assert sorted(stored) == ids
    assert stored == _splice_display(conn, ids)
    assert any(b"changed subtitle" in v for v in stored.values() if v)
    assert load_display_iso2709(conn, ids) == stored


def test_a_catalog_from_before_them_is_read_by_splicing_and_filled_by_the_next_ingest(tmp_path):
    files = _demo(tmp_path)
    conn = connect(tmp_path / "catalog.sqlite")
    ids = _ids(conn)
    expected = _splice_display(conn, ids)
    conn.execute("DROP TABLE display")
    conn.execute("DELETE FROM meta WHERE key='display'")
    assert load_display_iso2709(conn, ids) == expected          # no table: spliced
    conn.close()
    ingest(tmp_path, "komae", [files["komae"]], quiet=True, workers=0)   # nothing changes but the fill
    conn = connect(tmp_path / "catalog.sqlite")
    assert dict(conn.execute("SELECT union_id, iso FROM display")) == expected
    generation = conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0]
    assert _stamp(conn) == f"{display_format_cached()}@{generation}"
    assert load_display_iso2709(conn, ids) == expected


def test_readers_on_a_read_only_connection(tmp_path):
    _demo(tmp_path)
    ro = connect(tmp_path / "catalog.sqlite", readonly=True)
    ids = _ids(ro)
    assert load_display_iso2709(ro, ids) == dict(sqlite3.connect(tmp_path / "catalog.sqlite").execute(
        "SELECT union_id, iso FROM display"))
