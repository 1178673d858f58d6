"""End to end on real data: the 250,000 Library of Congress records of the
pymarc 5.4.0 sdist (pinned, checksummed; bench/loc_data.py), ingested through the
CLI, searched over SRU.  Marked slow: `make test-slow` (CI runs it)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pymarc
import pytest

from live_server import Server
from sru_validation import validate_sru

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from loc_data import loc_records_path  # noqa: E402

pytestmark = pytest.mark.slow
N_TWINS = 300


def _cli(*args):
    r = subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=ROOT, timeout=3000)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _ndl_twins(src: Path, out: Path, n: int) -> list[str]:
    """Japanese LoC records (romanized 245, kanji in the linked 880) rewritten in the
    NDL convention (kanji in 245, the other form in the linked 880) as another
    library's records; LCCN and NBN removed so only ISBN + title can merge them."""
    twins = []
    with open(src, "rb") as fh, open(out, "wb") as w:
        for rec in pymarc.MARCReader(fh, to_unicode=True, force_utf8=True):
            if rec is None or len(twins) >= n:
                if len(twins) >= n:
                    break
                continue
            if rec["008"] is None or rec["008"].data[35:38] != "jpn" or not rec.get_fields("020"):
                continue
            f245 = rec["245"]
            links = [f for f in rec.get_fields("880") if (f.get("6") or "").startswith("245")]
            if f245 is None or not links or not f245.get("6"):
                continue
            vern = links[0]
            new = pymarc.Record(force_utf8=True, leader=rec.leader)
            new.add_field(pymarc.Field(tag="001", data="ndl-" + rec["001"].data.strip()))
            for f in rec.fields:
                if f.tag in ("001", "010", "015", "016", "035", "852") or f is vern:
                    continue
                if f is f245:
                    subs = [pymarc.Subfield("6", "880-01")] + [s for s in vern.subfields if s.code != "6"]
                    new.add_field(pymarc.Field(tag="245", indicators=f245.indicators, subfields=subs))
                    subs = [pymarc.Subfield("6", "245-01/$1")] + [s for s in f245.subfields if s.code != "6"]
                    new.add_field(pymarc.Field(tag="880", indicators=f245.indicators, subfields=subs))
                    continue
                new.add_field(f)
            new.add_field(pymarc.Field(tag="852", indicators=pymarc.Indicators(" ", " "),
                                       subfields=[pymarc.Subfield("b", "中央図書館")]))
            w.write(new.as_marc())
            twins.append(rec["001"].data.strip())
    return twins


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    src = loc_records_path()
    d = tmp_path_factory.mktemp("loc")
    c1 = _cli("ingest", "--data-dir", d, "--library", "loc", "--json", src)
    twins_file = d / "ndl-twins.mrc"
    twins = _ndl_twins(src, twins_file, N_TWINS)
    c2 = _cli("ingest", "--data-dir", d, "--library", "iizuka", "--json", twins_file)
    server = Server(d)
    yield d, c1, c2, twins, server
    server.stop()


def _search(server, query, **kw):
    status, body, _ = server.get(version="1.2", operation="searchRetrieve", query=query, **kw)
    assert status == 200
    return validate_sru(body, "1.2")


def _count(tree) -> int:
    return int(tree.xpath("string(//*[local-name()='numberOfRecords'])"))


def test_all_records_read_and_bad_ones_quarantined_with_reasons(loaded):
    d, c1, _, _, _ = loaded
    assert c1["read"] == 250_000
    assert c1["added"] + c1["quarantined"] == 250_000
    assert c1["quarantined"] == 45  # 8 with 0x1F in 001, 37 with CR in Arabic-script 880s
    lines = Path(c1["quarantine_file"]).read_text(encoding="utf-8").splitlines()
    reasons = [json.loads(x)["reason"] for x in lines]
    assert sum("U+001F in field 001" in r for r in reasons) == 8
    assert sum("U+000D" in r for r in reasons) == 37


def test_twins_in_the_two_880_conventions_are_one_hit_with_two_holdings(loaded):
    _, _, c2, twins, server = loaded
    assert c2["added"] == len(twins) == N_TWINS
    assert c2["merged"] >= 0.95 * N_TWINS  # ISBN + agreeing vernacular titles
    for lccn_001 in twins[:40]:
        tree = _search(server, f'rec.identifier="{lccn_001}"', recordSchema="marcxml")
        assert _count(tree) == 1
        libs = set(tree.xpath("//*[local-name()='datafield'][@tag='852']/*[@code='a']/text()"))
        if "iizuka" in libs:
            assert libs == {"loc", "iizuka"}


def test_japanese_searches_on_real_records(loaded):
    _, _, _, _, server = loaded
    kanji = _count(_search(server, "dc.title=図書館"))
    assert kanji > 10
    # LoC's EACC-derived Chinese forms are found by the Japanese forms patrons type
    assert _count(_search(server, "dc.title=學")) == _count(_search(server, "dc.title=学"))
    assert _count(_search(server, "dc.language=jpn")) > 7000
    assert _count(_search(server, 'dc.title="nihon no"')) > 50


def test_english_searches_sorting_and_paging_on_real_records(loaded):
    _, _, _, _, server = loaded
    n = _count(_search(server, "dc.title=history and dc.date<1950"))
    assert n > 100
    tree = _search(server, "dc.title=history and dc.date<1950 sortby dc.date/sort.descending",
                   recordSchema="marcxml", maximumRecords="20")
    f008 = tree.xpath("//*[local-name()='controlfield'][@tag='008']/text()")
    years = [int(f[7:11]) for f in f008 if f[7:11].isdigit()]  # dc.date is 008/07-10 when numeric
    assert len(years) >= 15 and years == sorted(years, reverse=True) and years[0] <= 1949
    tree = _search(server, "dc.title=history and dc.date<1950", startRecord=str(n), maximumRecords="5")
    assert len(tree.xpath("//*[local-name()='recordPosition']")) == 1


# ------------------------------------------------------------------ Elasticsearch on the same records
@pytest.fixture(scope="module")
def loaded_es(loaded, es_url):
    """The same two libraries ingested into Elasticsearch (the session's node)."""
    import uuid

    from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
    from indexers.backends.elasticsearch_index import EsConfig

    d, _, _, _, _ = loaded
    es_dir = d.parent / (d.name + "-es")
    index = f"loc-{uuid.uuid4().hex[:8]}"
    args = ["--data-dir", es_dir, "--es-url", es_url, "--es-index", index, "--json"]
    c1 = _cli("ingest", *args, "--library", "loc", loc_records_path())
    c2 = _cli("ingest", *args, "--library", "iizuka", d / "ndl-twins.mrc")
    server = Server(es_dir, catalog=ElasticsearchCatalog(EsConfig(urls=[es_url], index=index, request_timeout=30.0)))
    yield c1, c2, server
    server.stop()


def test_elasticsearch_ingest_indexes_every_union_record(loaded, loaded_es):
    _, c1, c2, _, _ = loaded
    e1, e2 = loaded_es[0], loaded_es[1]
    for a, b in ((c1, e1), (c2, e2)):
        assert {k: a[k] for k in ("read", "added", "merged", "quarantined")} == \
            {k: b[k] for k in ("read", "added", "merged", "quarantined")}
    assert e1["elasticsearch"]["pending"] == 0 and e1["elasticsearch"]["failed"] == 0
    assert e1["elasticsearch"]["indexed"] == e1["added"]


def test_both_backends_give_the_same_hits_for_the_benchmark_workload(loaded, loaded_es):
    """The 50 queries of the benchmark (English and Japanese, every index and
    relation kind) on 250,000 real records: identical hit counts, and identical
    ids where the order is defined by a sort."""
    from workload import build_workload

    server, server_es = loaded[4], loaded_es[2]
    queries = [q.cql for q in build_workload(loc_records_path())]
    assert len(queries) == 50
    differ = []
    for q in queries:
        a, b = _count(_search(server, q)), _count(_search(server_es, q))
        if a != b:
            differ.append((q, a, b))
    assert differ == []
    q = "dc.title=history sortby dc.date/sort.descending dc.title"
    ids = [_search(s, q, maximumRecords="50", recordSchema="marcxml").xpath(
        "//*[local-name()='controlfield'][@tag='001']/text()") for s in (server, server_es)]
    assert ids[0] == ids[1] and len(ids[0]) >= 50


def test_display_fast_path_equals_decode_and_encode_on_every_record(loaded):
    """Z39.50 USMARC presents splice the stored ISO 2709 (indexers.store.display_iso2709):
    byte-equal to decoding and re-encoding, on all 250,000 records and the kanji twins."""
    from test_display_iso2709 import compare_all
    d = loaded[0]
    compared, declined = compare_all(d / "catalog.sqlite")
    assert compared > 200_000 and declined < compared / 1000, (compared, declined)
