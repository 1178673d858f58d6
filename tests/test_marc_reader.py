"""Tests of indexers/marc_reader.py (streaming, never-crashing MARC reader)."""
from __future__ import annotations

import collections
import gzip
import io
import sys
import time
import tracemalloc
from pathlib import Path

import pymarc
import pytest

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import marc_fixtures as mf  # noqa: E402
from indexers import marc_reader  # noqa: E402
from indexers.marc_items import field_key  # noqa: E402
from indexers.marc_reader import BadRecord, ReadRecord, detect_format, read_marc  # noqa: E402

PAD = b" \t\r\n\x00\x0b\x0c\x1a"


def keys(record: pymarc.Record) -> list[tuple]:
    return [field_key(f) for f in record.fields]


def check_coverage(data: bytes, items) -> None:
    """ISO 2709 items must tile the file: each item's bytes are where its offset
    says, and anything between items is padding."""
    pos = 0
    for it in items:
        assert it.offset >= pos, (it, pos)
        assert all(b in PAD for b in data[pos : it.offset]), (pos, it.offset)
        if isinstance(it, BadRecord):
            assert it.raw == data[it.offset : it.offset + len(it.raw)]
            pos = it.offset + len(it.raw)
        else:
            assert it.raw_length > 0
            pos = it.offset + it.raw_length
    assert all(b in PAD for b in data[pos:])


# ---------------------------------------------------------------------------
# good input


def sample_records():
    return [
        mf.make_record(control_number="loc1", vernacular_in_880=True),
        mf.make_record(control_number="ndl1", vernacular_in_245=True, use_264=True),
        mf.make_record(
            control_number="hw1",
            title=mf.HALFWIDTH_TITLE,
            # decomposed o + combining macron must come back as written (no normalization)
            subtitle="To\u0304kyo\u0304",
            holdings=[
                dict(library="iizuka", branch="east", call_number="913.6/A", location="kids", barcode="2001"),
                dict(library="nogata", branch="main", call_number="913.6/A", location="open", barcode="3001"),
            ],
        ),
    ]


def test_utf8_iso2709(tmp_path):
    recs = sample_records()
    path = mf.write_iso2709(tmp_path / "good.mrc", recs)
    data = path.read_bytes()
    items = list(read_marc(path))
    assert [type(i) for i in items] == [ReadRecord] * 3
    offset = 0
    for pos, (item, rec) in enumerate(zip(items, recs), 1):
        raw = mf.iso_record_bytes(rec)
        assert item.position == pos
        assert item.offset == offset
        assert item.raw_length == len(raw)
        assert item.encoding == "utf-8"
        assert item.warnings == []
        assert item.record.leader[9] == "a"
        assert keys(item.record) == keys(rec)
        offset += len(raw)
    assert offset == len(data)
    r0, r1, r2 = (i.record for i in items)
    assert r0["245"]["a"] == "Tōkyō no rekishi /"
    assert r0.get_linked_fields(r0["245"])[0]["a"] == "東京の歴史 /"
    assert r1["245"]["a"] == "東京の歴史 /"
    assert r1.get_linked_fields(r1["245"])[0]["a"] == "トウキョウ ノ レキシ /"
    assert r2["245"]["a"] == "ﾄｳｷｮｳ ﾉ ﾚｷｼ :"
    assert r2["245"]["b"] == "To\u0304kyo\u0304 /"  # not normalized
    holdings = [(f["a"], f["b"], f["h"], f["c"], f["p"]) for f in r2.get_fields("852")]
    assert holdings == [("iizuka", "east", "913.6/A", "kids", "2001"), ("nogata", "main", "913.6/A", "open", "3001")]


@pytest.mark.parametrize("kind", ["path", "str", "fileobj", "nonseekable"])
def test_sources(tmp_path, kind):
    path = mf.write_iso2709(tmp_path / "good.mrc", sample_records())
    data = path.read_bytes()
    if kind == "path":
        src = path
    elif kind == "str":
        src = str(path)
    elif kind == "fileobj":
        src = io.BytesIO(data)
    else:
        class Pipe:
            def __init__(self, d):
                self._b = io.BytesIO(d)

            def read(self, n=-1):
                return self._b.read(min(n, 7) if n and n > 0 else 7)

        src = Pipe(data)
    reader = read_marc(src)
    items = list(reader)
    assert [i.record["001"].data for i in items] == ["loc1", "ndl1", "hw1"]
    assert reader.bytes_read == len(data)


def test_progress_counter(tmp_path):
    path = mf.write_many_iso2709(tmp_path / "many.mrc", 3000)
    size = path.stat().st_size
    seen = []
    reader = read_marc(path, progress=seen.append)
    assert reader.total_bytes == size
    n = 0
    for _ in reader:
        n += 1
        assert 0 < reader.bytes_read <= size
    assert n == 3000
    assert reader.bytes_read == size
    assert seen == sorted(seen) and seen[-1] == size and len(seen) >= 2


@pytest.mark.parametrize("variant", ["default-ns", "prefixed", "no-ns"])
def test_marcxml(tmp_path, variant):
    recs = sample_records()
    kw = {"default-ns": {}, "prefixed": {"prefix": "marc"}, "no-ns": {"namespace": False}}[variant]
    path = mf.write_marcxml(tmp_path / "good.xml", recs, **kw)
    items = list(read_marc(path))
    assert [type(i) for i in items] == [ReadRecord] * 3
    for pos, (item, rec) in enumerate(zip(items, recs), 1):
        assert item.position == pos
        assert item.offset == -1
        assert item.encoding == "utf-8"
        assert item.record.leader[9] == "a"
        assert str(item.record.leader) == str(rec.leader)
        assert keys(item.record) == keys(rec)


def test_gzip_iso_and_xml(tmp_path):
    recs = sample_records()
    iso = mf.write_iso2709_gz(tmp_path / "good.mrc.bin", recs)  # name says nothing: magic bytes decide
    xml = mf.write_marcxml_gz(tmp_path / "good.dat", recs)
    for path, fmt in ((iso, "iso2709"), (xml, "marcxml")):
        reader = read_marc(path)
        items = list(reader)
        assert reader.compressed and reader.format == fmt
        assert [keys(i.record) for i in items] == [keys(r) for r in recs]
        assert reader.bytes_read == path.stat().st_size
    # ISO offsets are offsets in the decompressed stream
    plain = gzip.decompress(iso.read_bytes())
    items = list(read_marc(iso))
    check_coverage(plain, items)
    # gzip given as a file object
    items = list(read_marc(io.BytesIO(iso.read_bytes())))
    assert len(items) == 3


def test_detect_format():
    assert detect_format(b"01234nam a2200133 i 4500") == "iso2709"
    assert detect_format(b"<?xml version='1.0'?><collection/>") == "marcxml"
    assert detect_format(b"\xef\xbb\xbf  \r\n<collection>") == "marcxml"
    assert detect_format(b"\n\n   <record>") == "marcxml"
    assert detect_format(b"\xff\xfe<\x00c\x00") == "marcxml"
    assert detect_format(b"") == "iso2709"
    assert detect_format(b"hello") == "iso2709"


def test_bom_and_padding_iso(tmp_path):
    recs = sample_records()
    raws = [mf.iso_record_bytes(r) for r in recs]
    data = b"\xef\xbb\xbf" + raws[0] + b"\r\n" + raws[1] + b"\n" + raws[2] + b"\n\x00\x00"
    items = list(read_marc(io.BytesIO(data)))
    assert [type(i) for i in items] == [ReadRecord] * 3
    assert items[0].offset == 3
    assert items[1].offset == 3 + len(raws[0]) + 2
    assert [keys(i.record) for i in items] == [keys(r) for r in recs]


# ---------------------------------------------------------------------------
# encodings


def test_marc8_decoding():
    raw = mf.marc8_record_bytes()
    assert raw[9:10] == b" " and b"\x1b$1" in raw and b"\xe5o" in raw
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, ReadRecord), item
    assert item.encoding == "marc-8"
    assert item.warnings == []
    rec = item.record
    assert rec.leader[9] == "a"
    assert rec["245"]["a"] == "Tōkyō no rekishi /"  # ANSEL combining macron before the letter
    assert rec["100"]["a"] == "Yamada, Tarō,"
    assert rec["880"]["a"] == "東京の歴史 /"  # EACC via ESC $ 1
    assert rec["880"]["6"] == "245-01/$1"
    assert rec["852"]["p"] == "1000000002"
    # the decoded record round-trips as UTF-8
    (again,) = list(read_marc(io.BytesIO(rec.as_marc())))
    assert keys(again.record) == keys(rec) and again.encoding == "utf-8"


def test_leader_says_utf8_but_marc8():
    raw = mf.marc8_record_bytes("lie1", leader9="a")
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, ReadRecord), item
    assert item.encoding == "marc-8 (leader says utf-8)"
    assert len(item.warnings) == 1 and "not valid UTF-8" in item.warnings[0]
    assert item.record["245"]["a"] == "Tōkyō no rekishi /"
    assert item.record["880"]["a"] == "東京の歴史 /"


def test_leader_says_marc8_but_utf8():
    rec = mf.make_record(control_number="lie2", vernacular_in_880=True)
    raw = mf.iso_record_bytes(rec, leader9=" ")
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, ReadRecord), item
    assert item.encoding == "utf-8 (leader says marc-8)"
    assert len(item.warnings) == 1 and "valid UTF-8" in item.warnings[0]
    assert keys(item.record) == keys(rec)
    assert item.record.leader[9] == "a"


def test_plain_ascii_marc8_record():
    rec = mf.make_record(control_number="ascii", place="Tokyo", title="Plain", author="Smith, John")
    raw = mf.iso_record_bytes(rec, leader9=" ")
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert item.encoding == "marc-8" and item.warnings == []
    assert keys(item.record) == keys(rec)


def test_neither_utf8_nor_marc8():
    raw = mf.build_iso([("001", b"x"), ("245", b"10\x1faBad \xff byte")], leader9=" ")
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, BadRecord)
    assert item.reason == "invalid characters: not valid MARC-8 (unmapped MARC-8 character 0xFF in field 245 at byte 8)"


def test_marc8_bad_escape():
    raw = mf.build_iso([("001", b"x"), ("245", b"10\x1faBad \x1b$Zescape\x1b(B")], leader9=" ")
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, BadRecord)
    assert "escape sequence to unknown character set 0x5A in field 245" in item.reason


def test_marc8_control_character():
    raw = mf.build_iso([("001", b"x"), ("245", b"10\x1faBad \x07 bell")], leader9=" ")
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, BadRecord)
    assert item.reason == "stray control character U+0007 in field 245 at byte 8"


# ---------------------------------------------------------------------------
# bad records


def test_bad_file_exact(tmp_path):
    path, expected = mf.bad_file(tmp_path / "bad.mrc")
    data = path.read_bytes()
    items = list(read_marc(path))
    got = [(i.position, "bad" if isinstance(i, BadRecord) else "good") for i in items]
    assert got == expected
    check_coverage(data, items)
    for item in items:
        note = mf.BAD_FILE_NOTES[item.position]
        if isinstance(item, BadRecord):
            assert note in item.reason, (item.position, item.reason)
        else:
            assert note in item.encoding or any(note in w for w in item.warnings), (item.position, item)


def test_bad_file_reasons_and_offsets(tmp_path):
    path, _expected = mf.bad_file(tmp_path / "bad.mrc")
    data = path.read_bytes()
    items = {i.position: i for i in read_marc(path)}
    # exact reasons of each kind
    assert items[2].reason == "bad directory: entry 5 (field 245) points past end of record"
    assert items[4].reason == (
        "invalid characters: invalid UTF-8 in field 245 at byte 11; "
        "not valid MARC-8 either (unmapped MARC-8 character 0xFF in field 245 at byte 11)"
    )
    assert items[5].reason == "stray control character U+001F in field 001 at byte 8"
    assert items[7].reason == "leader length is not numeric: 'ab123'"
    assert items[15].reason == "stray control character U+0085 in field 245 at byte 8"
    assert items[16].reason.startswith("record truncated (declared ")
    assert items[18].reason == "stray control character U+001E in field 245 at byte 9"
    last = items[20]
    assert last.reason.startswith("record truncated at end of file (declared ")
    assert last.reason.endswith(", 300 present)")
    # offsets point at the exact bytes (the quarantine copy is faithful)
    for i in (2, 4, 5, 7, 15, 16, 18, 20):
        bad = items[i]
        assert data[bad.offset : bad.offset + len(bad.raw)] == bad.raw
    assert items[5].raw[:5].isdigit() and b"ocm12345\x1f6" in items[5].raw
    assert data.endswith(last.raw) and len(last.raw) == 300
    # good records right after bad ones are all there
    ids = [items[i].record["001"].data for i in (3, 6, 8, 17, 19)]
    assert ids == ["good003", "good006", "good008", "good017", "good019"]
    assert items[14].record["245"]["a"] == mf.HALFWIDTH_TITLE + " /"


def test_big_records(tmp_path):
    path, _expected = mf.bad_file(tmp_path / "bad.mrc")
    items = {i.position: i for i in read_marc(path)}
    for pos, cn in ((12, "big00000"), (13, "bigwrong")):
        item = items[pos]
        assert isinstance(item, ReadRecord)
        assert item.raw_length > 99_999
        assert item.record["001"].data == cn
        assert len(item.record.get_fields("505")) == 12
        assert any("record length wrong" in w for w in item.warnings)
    # alone, at the end of a file, and followed by another record
    big = mf.build_iso(mf.big_record_fields("solo"), declared_length="99999")
    tail = mf.iso_record_bytes(mf.make_record(control_number="after"))
    items = list(read_marc(io.BytesIO(big + tail)))
    assert [type(i) for i in items] == [ReadRecord, ReadRecord]
    assert items[0].raw_length == len(big) and items[1].offset == len(big)
    assert items[1].record["001"].data == "after"


def test_resync_after_garbage():
    good = [mf.iso_record_bytes(mf.make_record(control_number=f"g{i}")) for i in range(3)]
    # junk with no terminator of its own, then a good record
    data = b"JUNKJUNKJUNK" + good[0] + b"xx\x1d" + good[1] + b"12345" + good[2]
    items = list(read_marc(io.BytesIO(data)))
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["BadRecord", "ReadRecord", "BadRecord", "ReadRecord", "BadRecord", "ReadRecord"], items
    check_coverage(data, items)
    assert items[0].raw == b"JUNKJUNKJUNK"
    assert items[0].reason == "leader length is not numeric: 'JUNKJ' (another record starts after 12 bytes)"
    assert items[2].raw == b"xx\x1d"
    assert items[4].raw == b"12345"
    assert items[4].reason == "record truncated (declared 12345 bytes, 5 present before the next record starts)"
    assert [i.record["001"].data for i in items if isinstance(i, ReadRecord)] == ["g0", "g1", "g2"]


def test_stray_control_in_001_and_del(tmp_path):
    raw1 = mf.build_iso([("001", b"abc\x1fdef"), ("245", b"10\x1faT")])
    raw2 = mf.build_iso([("001", b"abc"), ("245", b"10\x1faT\x7fitle")])
    raw3 = mf.build_iso([("001", b"abc"), ("245", b"10\x1faT\x1bitle")])
    items = list(read_marc(io.BytesIO(raw1 + raw2 + raw3)))
    assert [i.reason for i in items] == [
        "stray control character U+001F in field 001 at byte 3",
        "stray control character U+007F in field 245 at byte 5",
        "stray control character U+001B in field 245 at byte 5",
    ]


def test_odd_indicators_are_read_with_warning():
    raw = mf.build_iso([("001", b"abc"), ("245", b"1\x1faOne indicator"), ("500", b"  \x1faNote")])
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, ReadRecord)
    assert item.warnings == ["field 245: expected 2 indicators, found 1 ('1')"]
    assert item.record["245"]["a"] == "One indicator"
    want = pymarc.Record(data=raw, force_utf8=True)
    assert keys(item.record) == keys(want)


def test_more_structural_damage():
    good = mf.iso_record_bytes(mf.make_record(control_number="ok"))
    base = good[12:17]
    cases = {
        "base address of data is not numeric: 'x0100'": good[:12] + b"x0100" + good[17:],
        "bad directory: entry 2 is malformed: '008004X00009'": None,
        "record too short (21 bytes)": b"00021nam a2200000   \x1d",
        "bad directory: no field terminator before the base address": good[:12] + b"%05d" % (int(base) - 1) + good[17:],
    }
    # entry 2 (008) with a letter in its length
    i = good.index(b"0080041")
    cases["bad directory: entry 2 is malformed: '008004X00009'"] = good[:i] + b"008004X00009" + good[i + 12 :]
    for reason, raw in cases.items():
        items = list(read_marc(io.BytesIO(raw + good)))
        assert isinstance(items[0], BadRecord) and reason in items[0].reason, (reason, items[0])
        assert isinstance(items[1], ReadRecord) and items[1].record["001"].data == "ok"


def _with_entry(raw: bytes, i: int, entry: bytes) -> bytes:
    """raw with directory entry i (1-based) replaced by entry (12 bytes)."""
    at = 24 + 12 * (i - 1)
    return raw[:at] + entry + raw[at + 12 :]


def test_damaged_directories_that_still_end_at_terminators_are_bad():
    # one damaged byte in a directory can leave every entry ending at a field
    # terminator while the fields no longer say what the record said
    raw = mf.build_iso([("001", b"dir1"), ("245", b"10\x1faTitle"), ("500", b"  \x1faNote"), ("650", b" 0\x1faSubj")])
    good = mf.iso_record_bytes(mf.make_record(control_number="ok"))
    e3 = raw[48:60]  # 500: length 0010, start ...
    cases = {
        # a tag that is not letters and digits
        "bad directory: entry 2 has a malformed tag '2%5'": _with_entry(raw, 2, b"2%5" + raw[39:48]),
        # entry 3 points at the 650 too: the 500 is in no field, the 650 in two
        "bad directory: 9 bytes of data before entry 3 (field 500) belong to no field":
            _with_entry(raw, 3, e3[:3] + raw[63:72]),
        # entry 2 also covers the 500 (length of both): overlap
        "bad directory: entry 3 (field 500) overlaps another field":
            _with_entry(raw, 2, b"245" + b"%04d" % (int(raw[39:43]) + int(e3[3:7])) + raw[43:48]),
    }
    for reason, damaged in cases.items():
        assert len(damaged) == len(raw)
        items = list(read_marc(io.BytesIO(damaged + good)))
        assert isinstance(items[0], BadRecord) and items[0].reason == reason, (reason, items[0])
        assert isinstance(items[1], ReadRecord) and items[1].record["001"].data == "ok"
    # fields stored in another order than the directory's are fine
    fields = [("001", b"ord1"), ("245", b"10\x1faTitle"), ("500", b"  \x1faNote")]
    data = [f + b"\x1e" for _t, f in fields]
    order = [2, 0, 1]  # data area: 500, 001, 245
    starts, at = {}, 0
    for k in order:
        starts[k] = at
        at += len(data[k])
    directory = b"".join(t.encode() + b"%04d%05d" % (len(data[k]), starts[k]) for k, (t, _f) in enumerate(fields))
    base = 24 + len(directory) + 1
    body = b"".join(data[k] for k in order)
    rec = b"%05dnam a22%05d i 4500" % (base + len(body) + 1, base) + directory + b"\x1e" + body + b"\x1d"
    (item,) = list(read_marc(io.BytesIO(rec)))
    assert isinstance(item, ReadRecord), item
    assert [(f.tag, f.value()) for f in item.record.fields] == [("001", "ord1"), ("245", "Title"), ("500", "Note")]


def test_control_characters_in_the_leader_and_lost_subfield_delimiters_are_bad():
    raw = mf.build_iso([("001", b"ctl"), ("245", b"10\x1faTitle")])
    items = list(read_marc(io.BytesIO(raw[:6] + b"\x04" + raw[7:])))
    assert items[0].reason == "stray control character U+0004 in the leader at byte 6"
    # a damaged first subfield delimiter: the text would be taken for indicators and dropped
    raw = mf.build_iso([("001", b"ind"), ("245", b"10)aTitle\x1fbmore")])
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, BadRecord)
    assert item.reason == "field 245: 9 bytes before the first subfield ('10)aTitle'), expected 2 indicators"


def test_a_damaged_utf8_record_is_not_read_as_marc8():
    # the leader says UTF-8 and one byte is not: read as MARC-8 this would be
    # "00000406ÿ" (control fields as Latin-1) ...
    raw = mf.build_iso([("001", b"00000406\xff"), ("245", b"10\x1faTitle")], leader9="a")
    (item,) = list(read_marc(io.BytesIO(raw)))
    assert isinstance(item, BadRecord)
    assert item.reason == ("invalid characters: invalid UTF-8 in field 001 at byte 8; not valid MARC-8 either "
                           "(non-ASCII byte 0xFF in control field 001 at byte 8)")
    # ... and a Japanese record with one broken byte would lose its UTF-8
    # continuation bytes 0x8D etc. as MARC-8 joiners
    good = mf.iso_record_bytes(mf.make_record(control_number="jp", vernacular_in_880=True))
    at = good.index("東京".encode())
    damaged = good[:at] + b"\xff" + good[at + 1 :]
    (item,) = list(read_marc(io.BytesIO(damaged)))
    assert isinstance(item, BadRecord), item
    assert item.reason.startswith("invalid characters: invalid UTF-8 in field 880 at byte ")
    assert "not valid MARC-8 either" in item.reason
    # a genuine MARC-8 record under a lying leader is still read (test_leader_says_utf8_but_marc8)


def test_bad_marcxml_records(tmp_path):
    path, expected = mf.bad_marcxml_file(tmp_path / "bad.xml")
    items = list(read_marc(path))
    assert [(i.position, "bad" if isinstance(i, BadRecord) else "good") for i in items] == expected
    for item in items:
        if isinstance(item, BadRecord):
            assert mf.BAD_MARCXML_NOTES[item.position] in item.reason, item.reason
            assert item.raw.startswith(b"<record") and item.raw.endswith(b"</record>")
            assert item.offset == -1
    assert items[-1].record["001"].data == "x7"


def test_non_xml_files(tmp_path):
    # plain text is not MARC: one bad item, and the iterator ends
    text = tmp_path / "notes.txt"
    text.write_text("hello world\nthis is not a MARC file\n")
    items = list(read_marc(text))
    assert len(items) == 1 and isinstance(items[0], BadRecord)
    assert "leader length is not numeric: 'hello'" in items[0].reason
    assert items[0].raw == text.read_bytes()
    # ISO data read as MARCXML
    iso = mf.write_iso2709(tmp_path / "x.mrc", sample_records())
    items = list(read_marc(iso, fmt="marcxml"))
    assert len(items) == 1 and "not well-formed XML" in items[0].reason
    # an empty file has no records
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert list(read_marc(empty)) == []
    assert list(read_marc(empty, fmt="marcxml"))[0].reason.startswith("not well-formed XML")
    # random binary garbage
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 10)
    items = list(read_marc(junk))
    assert items and all(isinstance(i, BadRecord) for i in items)
    check_coverage(junk.read_bytes(), items)


def test_truncated_xml(tmp_path):
    path = mf.write_marcxml(tmp_path / "t.xml", sample_records())
    data = path.read_bytes()
    cut = data.index(b"<record", data.index(b"hw1") - 300)
    cut = data.index(b"<datafield", cut)
    items = list(read_marc(io.BytesIO(data[: cut + 40])))
    assert [type(i) for i in items] == [ReadRecord, ReadRecord, BadRecord]
    assert "not well-formed XML" in items[2].reason
    assert items[2].raw.startswith(b"<record")  # the partial record is kept for quarantine
    # broken markup in the middle: records before it are read, then one BadRecord
    second = data.index(b"</leader>", data.index(b"</leader>") + 1)
    broken = data[:second] + b"</lea der>" + data[second + 9 :]
    items = list(read_marc(io.BytesIO(broken)))
    assert [type(i) for i in items] == [ReadRecord, BadRecord]
    assert items[1].reason.startswith("not well-formed XML at line 4, column ")  # decl, collection, rec 1, rec 2
    assert items[1].raw.startswith(b"<record") and b"ndl1" not in items[1].raw


def test_truncated_gzip(tmp_path):
    path = mf.write_iso2709_gz(tmp_path / "t.mrc.gz", mf.many_records(200))
    data = path.read_bytes()
    items = list(read_marc(io.BytesIO(data[: len(data) // 2])))
    good = [i for i in items if isinstance(i, ReadRecord)]
    bad = [i for i in items if isinstance(i, BadRecord)]
    assert 10 < len(good) < 200
    assert [i.record["001"].data for i in good] == [f"r{n:07d}" for n in range(1, len(good) + 1)]
    assert bad[-1].reason.startswith("compressed input is damaged or truncated")


def test_rmarc_and_pymarc_agree(tmp_path):
    if not marc_reader.rmarc_available():
        pytest.skip("rmarc not available")
    path, _ = mf.bad_file(tmp_path / "bad.mrc")
    a = list(read_marc(path, decoder="rmarc"))
    b = list(read_marc(path, decoder="pymarc"))
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        if isinstance(x, ReadRecord):
            assert keys(x.record) == keys(y.record)
            assert str(x.record.leader) == str(y.record.leader)
            assert (x.encoding, x.warnings) == (y.encoding, y.warnings)
        else:
            assert (x.reason, x.raw) == (y.reason, y.raw)


# ---------------------------------------------------------------------------
# never raises: random damage


def test_random_damage_never_raises(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    base = b"".join(mf.iso_record_bytes(r) for r in sample_records()) + mf.marc8_record_bytes()

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(
        st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=8),
        st.integers(0, len(base)),
    )
    def run(edits, cut):
        data = bytearray(base)
        for at, value in edits:
            data[at] = value
        data = bytes(data[:cut])
        items = list(read_marc(io.BytesIO(data), fmt="iso2709"))
        check_coverage(data, items)
        assert [i.position for i in items] == list(range(1, len(items) + 1))

    run()

    xml = mf.write_marcxml(tmp_path / "x.xml", sample_records()).read_bytes()

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
    @hypothesis.given(st.lists(st.tuples(st.integers(0, len(xml) - 1), st.integers(0, 255)), max_size=5))
    def run_xml(edits):
        data = bytearray(xml)
        for at, value in edits:
            data[at] = value
        items = list(read_marc(io.BytesIO(bytes(data)), fmt="marcxml"))
        assert all(isinstance(i, (ReadRecord, BadRecord)) for i in items)

    run_xml()


# ---------------------------------------------------------------------------
# streaming


def test_streaming_memory_iso(tmp_path):
    path = mf.write_many_iso2709(tmp_path / "large.mrc", 20_000)
    assert path.stat().st_size > 8_000_000
    tracemalloc.start()
    try:
        n = 0
        for item in read_marc(path):
            assert isinstance(item, ReadRecord)
            n += 1
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 20_000
    # the file alone is over 8 MB and 20,000 decoded records would take far more
    assert peak < 20_000_000, peak


_RSS_SCRIPT = """
import resource, sys
sys.path.insert(0, sys.argv[2])
from indexers.marc_reader import read_marc
n = sum(1 for item in read_marc(sys.argv[1]) if type(item).__name__ == "ReadRecord")
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss(path) -> tuple[int, int]:
    """(records read, peak RSS in KiB) of a fresh interpreter reading path;
    counts C allocations too (libxml2's are invisible to tracemalloc)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(path), str(ROOT)],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.parametrize("fmt", ["iso2709", "marcxml"])
def test_streaming_rss_independent_of_size(tmp_path, fmt):
    write = mf.write_many_iso2709 if fmt == "iso2709" else mf.write_many_marcxml
    small = write(tmp_path / "small.gz", 2_000, gz=True)
    large = write(tmp_path / "large.gz", 40_000, gz=True)
    n_small, rss_small = _peak_rss(small)
    n_large, rss_large = _peak_rss(large)
    assert (n_small, n_large) == (2_000, 40_000)
    # twenty times the records, (almost) the same peak: a reader that kept the
    # parsed XML tree peaks at about 600 MB here instead of about 45 MB
    assert rss_large - rss_small < 8 * 1024, (rss_small, rss_large)


# ---------------------------------------------------------------------------
# the real data (250,000 LoC records), only when already cached


def _loc_path():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import loc_data
    finally:
        sys.path.remove(str(ROOT / "bench"))
    path = loc_data.cached_path()
    if not path.is_file():
        pytest.skip(f"LoC records not cached ({path}); run python bench/loc_data.py")
    if not loc_data.is_cached():
        pytest.skip(f"{path} has a wrong checksum; run python bench/loc_data.py")
    return path


@pytest.mark.slow
def test_loc_file(capsys):
    path = _loc_path()
    reader = read_marc(path)
    t0 = time.process_time()
    w0 = time.perf_counter()
    total = 0
    bad: list[BadRecord] = []
    encodings = collections.Counter()
    warned = 0
    jpn = 0
    with_880 = 0
    for item in reader:
        total += 1
        if isinstance(item, BadRecord):
            bad.append(item)
            continue
        encodings[item.encoding] += 1
        warned += bool(item.warnings)
        rec = item.record
        f008 = rec.get("008")
        if f008 is not None and f008.data[35:38] == "jpn":
            jpn += 1
        if rec.get("880") is not None:
            with_880 += 1
    cpu = time.process_time() - t0
    wall = time.perf_counter() - w0
    kinds = collections.Counter()
    for b in bad:
        kinds[b.reason.split(" at byte")[0]] += 1
    with capsys.disabled():
        print(
            f"\nLoC: {total} records via {reader.decoder} in {wall:.1f} s wall / {cpu:.1f} s CPU "
            f"({total / cpu:,.0f} records/s CPU); {len(bad)} bad, {warned} with warnings; "
            f"{dict(encodings)}; jpn {jpn}, with 880 {with_880}"
        )
        for reason, count in kinds.most_common():
            print(f"  {count:3d} x {reason}")
        for b in bad[:3]:
            print(f"  e.g. position {b.position} offset {b.offset}: {b.reason}")
    assert total == 250_000
    assert reader.bytes_read == path.stat().st_size
    # what is bad in this file: a 0x1F inside 001 (8 records) and a carriage
    # return inside an 880 (37 records); everything else reads cleanly
    assert kinds == {
        "stray control character U+001F in field 001": 8,
        "stray control character U+000D in field 880": 37,
    }
    assert encodings == {"utf-8": 250_000 - len(bad)}
    assert warned == 0
    # bad records are exact copies of the file's bytes
    with open(path, "rb") as f:
        for b in bad:
            f.seek(b.offset)
            assert f.read(len(b.raw)) == b.raw


@pytest.mark.slow
def test_loc_file_decoders_agree():
    """Every 20th LoC record decodes identically with rmarc and with pymarc."""
    path = _loc_path()
    if not marc_reader.rmarc_available():
        pytest.skip("rmarc not available")
    compared = 0
    with open(path, "rb") as f:
        for item in read_marc(path, decoder="rmarc"):
            if isinstance(item, BadRecord) or item.position % 20:
                continue
            f.seek(item.offset)
            raw = f.read(item.raw_length)
            want = pymarc.Record(data=raw, to_unicode=True, force_utf8=True)
            assert keys(item.record) == keys(want), item.position
            assert str(item.record.leader) == str(want.leader)
            compared += 1
    assert compared > 12_000
