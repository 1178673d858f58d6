"""The display fast path: union records written as ISO 2709 by splicing the stored
bytes (indexers.store.display_iso2709) equal the decode + re-encode path
(z3950.records.iso2709_bytes(display_record(...).marc)) byte for byte."""
from __future__ import annotations

import sqlite3

from gateway.demo import write_demo_files
from indexers.ingest import ingest
from indexers.marc_display import iso2709_assemble, splice_iso2709
from indexers.records import Holding
from indexers.store import display_iso2709, display_record, union_display_parts
from z3950.records import iso2709_bytes


def compare_all(db_path) -> tuple[int, int]:
    """(records compared, records the fast path declined); asserts equality."""
    conn = sqlite3.connect(db_path)
    ids = [r[0] for r in conn.execute("SELECT DISTINCT union_id FROM source ORDER BY union_id")]
    compared = declined = 0
    for i in range(0, len(ids), 500):
        for uid, (marc, lib, holdings, members) in union_display_parts(conn, ids[i:i + 500]).items():
            fast = display_iso2709(marc, lib, holdings)
            if fast is None:
                declined += 1
                continue
            assert fast == iso2709_bytes(display_record(uid, marc, lib, holdings, members).marc), uid
            compared += 1
    conn.close()
    return compared, declined


def test_demo_catalog_fast_path_equals_decode_and_encode(tmp_path):
    for lib, path in write_demo_files(tmp_path / "in").items():
        ingest(tmp_path, lib, [path], quiet=True)
    compared, declined = compare_all(tmp_path / "catalog.sqlite")
    assert compared >= 10 and declined == 0


def _iso(fields, leader="00000nam a2200000 a 4500"):
    return iso2709_assemble(leader, fields)


def _same(raw):
    return splice_iso2709(raw, frozenset(), b"852", [])


def _tags(raw):
    d = raw[24:int(raw[12:17]) - 1]
    return [d[i:i + 3] for i in range(0, len(d), 12)]


def test_canonical_records_pass_unchanged_and_the_rest_are_declined():
    good = _iso([(b"001", b"x1"), (b"245", b"10\x1faTitle\x1fbsub"), (b"500", b"  ")])
    assert _same(good) == good
    assert _same(_iso([(b"245", b"1")])) is None                     # one indicator
    assert _same(_iso([(b"245", b"10Title")])) is None               # text before the first subfield
    assert _same(_iso([(b"245", b"10\x1f\x1faT")])) is None          # empty subfield
    assert _same(_iso([(b"245", b"10\x1f\xe3\x81\x82T")])) is None   # non-ASCII subfield code
    assert _same(_iso([(b"001", b"a\x1fb")])) is None                # separator in a control field
    assert _same(_iso([(b"24$", b"10\x1faT")])) is None              # tag not alphanumeric
    assert _same(_iso([(b"245", b"10\x1faT"), (b"005", b"x")])) is None   # control field after a data field
    assert _same(good[:-30]) is None                                 # truncated
    assert _same(b"garbage") is None
    swapped = bytearray(good)                                        # directory not in data order
    d = 24
    swapped[d + 12:d + 24], swapped[d + 24:d + 36] = good[d + 24:d + 36], good[d + 12:d + 24]
    assert _same(bytes(swapped)) is None


def test_holdings_are_spliced_where_add_ordered_field_puts_them():
    stored = _iso([(b"001", b"x1"), (b"245", b"10\x1faT"), (b"852", b"  \x1faold"), (b"900", b"  \x1fal"),
                   (b"9XX", b"  \x1fal")])
    hs = [Holding("iizuka", "x1", "honami", "913.6", "一般", "1001"), Holding("komae", "k9")]
    out = display_iso2709(stored, "iizuka", hs)
    assert _tags(out) == [b"001", b"245", b"852", b"852", b"900", b"9XX"]
    assert "  \x1faiizuka\x1fbhonami\x1fc一般\x1fh913.6\x1fp1001\x1e  \x1fakomae\x1e".encode() in out
    assert out == iso2709_bytes(display_record(1, stored, "iizuka", hs, []).marc)


def test_a_record_too_big_for_iso2709_is_declined():
    stored = _iso([(b"245", b"10\x1fa" + b"x" * 9000)] * 11)
    assert len(stored) < 99999                      # fits, until the holdings are added
    assert display_iso2709(stored, "iizuka", []) == stored
    assert display_iso2709(stored, "iizuka", [Holding("iizuka", "1", "b" * 3000)] * 3) is None
