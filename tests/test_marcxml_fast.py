"""SRU's MARCXML fast path: a union record's MARCXML written straight from its stored
display record (indexers.store.StoredUnionRecord.marcxml, indexers.marc_display.
marcxml_of_iso2709) equals the decode path (marcxml_string(display_record(...).marc))
character for character, and SRU responses built from either are the same bytes."""
from __future__ import annotations

import sqlite3

import pytest

from gateway.demo import write_demo_files
from indexers.ingest import ingest
from indexers.marc_decoder import decode_stored
from indexers.marc_display import iso2709_assemble, marcxml_of_iso2709, marcxml_string
from indexers.records import Holding, UnionRecord
from indexers.store import StoredUnionRecord, display_record, load_union_records, union_display_parts
from sru import protocol as sp
from sru.record_schemas import MARCXML, render_record


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    for lib, path in write_demo_files(d / "in").items():
        ingest(d, lib, [path], quiet=True)
    conn = sqlite3.connect(d / "catalog.sqlite")
    ids = [r[0] for r in conn.execute("SELECT DISTINCT union_id FROM source ORDER BY union_id")]
    yield conn, ids
    conn.close()


def _eager(conn, ids) -> list[UnionRecord]:
    parts = union_display_parts(conn, ids)
    return [display_record(uid, *parts[uid]) for uid in ids if uid in parts]


def test_every_demo_record_same_marcxml_from_the_display_table_and_from_the_splice(demo):
    conn, ids = demo
    stored = load_union_records(conn, ids)
    eager = _eager(conn, ids)
    assert [r.id for r in stored] == [r.id for r in eager] and len(stored) >= 10
    for s, e in zip(stored, eager):
        assert s.holdings == e.holdings and s.members == e.members
        want = marcxml_string(e.marc)
        assert s._display is not None                       # the stored display record was current
        assert s.marcxml() == want, s.id
        spliced = StoredUnionRecord(s.id, None, s.holdings, s.members, stored=s._stored, library=s._library)
        assert spliced.marcxml() == want, s.id
        assert render_record(s, MARCXML).text == render_record(e, MARCXML).text
        # the pymarc record, decoded on first use, is the display record
        assert marcxml_string(s.marc) == want
        assert s.marcxml() is None                          # once decoded (maybe changed), marc is rendered


def test_a_stored_record_copies_and_replaces_like_a_union_record(demo):
    import copy
    import dataclasses

    conn, ids = demo
    s = load_union_records(conn, ids[:1])[0]
    want = marcxml_string(_eager(conn, ids[:1])[0].marc)
    other = [Holding("komae", "k9")]
    r = dataclasses.replace(s, holdings=other)           # gateway/availability.py does this
    assert r.id == s.id and r.holdings == other and r.members == s.members
    assert marcxml_string(r.marc) == want and r.marcxml() is None    # the copy renders its marc
    fresh = load_union_records(conn, ids[:1])[0]         # (replace decoded s's marc)
    c = copy.copy(fresh)                                 # search/federation.py renumbers copies
    c.id = 10**9
    assert fresh.id == ids[0] and c.marcxml() == want


def test_missing_ids_are_skipped_in_the_order_given(demo):
    conn, ids = demo
    asked = [ids[3], 999_999, ids[0], ids[2]]
    assert [r.id for r in load_union_records(conn, asked)] == [ids[3], ids[0], ids[2]]
    assert load_union_records(conn, []) == []


@pytest.mark.parametrize("version", ["1.1", "1.2", "2.0"])
@pytest.mark.parametrize("packing", ["xml", "string"])
def test_sru_responses_are_the_same_bytes(demo, version, packing):
    conn, ids = demo
    key = "recordXMLEscaping" if version == "2.0" else "recordPacking"
    req = sp.parse_request({"operation": ["searchRetrieve"], "version": [version], "query": ["x"],
                            "recordSchema": ["marcxml"], key: [packing], "maximumRecords": ["50"]})
    for i in range(0, len(ids), 7):
        page = ids[i:i + 7]
        old = sp.searchretrieve_response(req, total=len(ids), records=_eager(conn, page), start=i + 1)
        new = sp.searchretrieve_response(req, total=len(ids), records=load_union_records(conn, page), start=i + 1)
        assert new == old


@pytest.mark.parametrize("version", ["1.1", "1.2", "2.0"])
@pytest.mark.parametrize("extra", [{}, {"stylesheet": ["/s.xsl?a=1&b=<2>"]}, {"recordSchema": ["dc"]}])
def test_records_written_as_text_are_the_bytes_lxml_writes(demo, monkeypatch, version, extra):
    from sru import records_text

    conn, ids = demo
    params = {"operation": ["searchRetrieve"], "version": [version], "query": ['dc.title = "a&b<c>"'],
              "recordSchema": ["marcxml"], "maximumRecords": ["50"], **extra}
    req = sp.parse_request(params)
    pages = [ids[i:i + 10] for i in range(0, len(ids), 10)]
    diags = [sp.Diagnostic(2, "x&y", "m<n>")] if version == "2.0" else []

    def responses():
        out = []
        for i, page in enumerate(pages):
            recs: list = load_union_records(conn, page)
            out.append(sp.searchretrieve_response(req, total=len(ids), records=recs, start=10 * i + 1,
                                                  result_set_id="r&1", result_set_ttl=60, next_position=99,
                                                  diagnostics=diags))
        # a withdrawn record (surrogate diagnostic) on the page: every record as elements
        out.append(sp.searchretrieve_response(req, total=3, records=[*load_union_records(conn, ids[:2]), None]))
        return out

    fast = responses()
    monkeypatch.setattr(records_text, "ENABLED", False)
    assert fast == responses()
    if "recordSchema" not in extra:
        assert fast[0].count(b"<record xmlns=") == min(10, len(ids))


def _both(iso: bytes) -> tuple[str | None, str]:
    leader = iso[:24].decode("ascii")
    return marcxml_of_iso2709(iso, leader), marcxml_string(decode_stored(iso))


CASES = {
    "plain": [(b"001", b"x1"), (b"008", b"200101s2020"), (b"245", b"10\x1faTitle /\x1fcby A.")],
    "markup in values": [(b"001", b"a&b<c>"), (b"245", b"10\x1faA & B <c> \"q\" 'r'\x1fb>")],
    "carriage return, tab, newline": [(b"245", b"10\x1fa1\r2\t3\n4")],
    "field without subfields": [(b"001", b"x"), (b"500", b"  "), (b"650", b" 0\x1faX")],
    "japanese": [(b"245", "00\x1fa日本の歴史 /\x1fc山田太郎".encode())],
    "many codes": [(b"100", b"1 \x1fa\x1fbb\x1fcc\x1f0zero\x1f9nine\x1f!x\x1f~y")],
    "no control fields": [(b"245", b"10\x1faT")],
    "non-numeric tag": [(b"001", b"x"), (b"245", b"10\x1faT"), (b"9XX", b"  \x1faL")],
}
DECLINED = {   # the fast path says None; the caller renders the decoded record
    "C0 control in a value": [(b"245", b"10\x1faA\x01B")],
    "C0 control in a control field": [(b"001", b"x\x02y"), (b"245", b"10\x1faT")],
    "U+FFFE": [(b"245", "10\x1faA\ufffeB".encode())],
    "U+FFFF": [(b"245", "10\x1faA\uffffB".encode())],
    "indicator XML escapes": [(b"245", b"&0\x1faT")],
    "second indicator a quote": [(b"245", b'1"\x1faT')],
    "code XML escapes": [(b"245", b"10\x1f<T")],
    "text before the first subfield": [(b"245", b"10Title\x1fbx")],
    "empty subfield": [(b"245", b"10\x1f\x1faT")],
    "separator in a control field": [(b"001", b"a\x1fb"), (b"245", b"10\x1faT")],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_writes_what_marcxml_string_writes(name):
    fast, slow = _both(iso2709_assemble("00000nam a2200000 a 4500", CASES[name]))
    assert fast is not None and fast == slow


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_what_the_fast_path_would_write_differently_is_declined(name):
    iso = iso2709_assemble("00000nam a2200000 a 4500", DECLINED[name])
    assert marcxml_of_iso2709(iso, iso[:24].decode("ascii")) is None


def test_not_iso2709_or_not_utf8_is_declined():
    good = iso2709_assemble("00000nam a2200000 a 4500", CASES["plain"])
    assert marcxml_of_iso2709(good, "short") is None
    assert marcxml_of_iso2709(good[:-1], good[:24].decode()) is None
    assert marcxml_of_iso2709(b"garbage", "x" * 24) is None
    bad = iso2709_assemble("00000nam a2200000 a 4500", [(b"245", b"10\x1faA\xff\xfeB")])
    assert marcxml_of_iso2709(bad, bad[:24].decode()) is None


def test_a_stored_record_that_cannot_take_the_fast_path_renders_the_same():
    # a stored record with a control character: spliced display is canonical, but the
    # MARCXML must carry U+FFFD as marcxml_string writes it
    stored = iso2709_assemble("00000nam a2200000 a 4500", [(b"001", b"x1"), (b"245", b"10\x1faA\x01B")])
    hs = [Holding("iizuka", "x1", "honami", "913.6", "一般", "1001")]
    s = StoredUnionRecord(7, None, hs, [("iizuka", "x1")], stored=stored, library="iizuka")
    e = display_record(7, stored, "iizuka", hs, [("iizuka", "x1")])
    assert s.marcxml() is None
    assert render_record(s, MARCXML).text == render_record(e, MARCXML).text
    assert "\ufffd" in render_record(s, MARCXML).text
