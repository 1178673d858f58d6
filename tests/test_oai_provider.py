"""Our OAI-PMH 2.0 provider at /oai (connectors/oai/provider.py, gateway/oai.py):

* every response valid against the official OAI-PMH.xsd (from pyoai's sdist on PyPI,
  tools/oai_schema.py) and MARCXML metadata against MARC21slim.xsd (../shared/standards);
* harvested with a harvester others wrote (PyPI's sickle): formats, sets, records in
  pages of 4 with resumption tokens, GetRecord, from/until at seconds;
* persistent deletions: a withdrawn union record stays a deleted header, and a record a
  library no longer holds is a deleted header in that library's set;
* the OAI-PMH error codes for bad arguments;
* the round trip: our /oai harvested into a second data directory by our own harvester
  gives the same search results, and a withdrawal travels with the next incremental run.
"""
from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from lxml import etree

from connectors.harvest.config import parse_source
from connectors.harvest.runner import harvest
from connectors.harvest.sources import Retrying
from connectors.oai.provider import OAI_DC_NS, Provider, Settings
from gateway.demo import write_demo_files
from gateway.oai import OAI_PROVIDER
from indexers.ingest import ingest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import oai_schema  # noqa: E402
from live_server import Server  # noqa: E402

OAI = "http://www.openarchives.org/OAI/2.0/"
NS = {"o": OAI, "m": "http://www.loc.gov/MARC21/slim", "oai_dc": OAI_DC_NS}
STANDARDS = REPO.parent / "shared" / "standards"


@pytest.fixture(scope="module")
def schemas():
    import xmlschema

    try:
        oai = xmlschema.XMLSchema(str(oai_schema.path()))
    except oai_schema.Unavailable as e:
        pytest.fail(f"the OAI-PMH schema could not be had from PyPI: {e}")
    marc_xsd = STANDARDS / "marcxml" / "MARC21slim.xsd"
    if not marc_xsd.exists():
        pytest.skip(f"{marc_xsd} not there (../shared/standards)")
    return oai, xmlschema.XMLSchema(str(marc_xsd))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    data = tmp_path_factory.mktemp("oai-cat")
    files = write_demo_files(data / "in")
    for lib, path in files.items():
        assert ingest(data, lib, [path], full=True, quiet=True, workers=0).error is None
    return data


@pytest.fixture(scope="module")
def server(catalog):
    srv = Server(catalog)
    p: Provider = srv.app[OAI_PROVIDER]
    p.settings = dataclasses.replace(p.settings, page_size=4, base_url=srv.base + "/oai")
    yield srv


def get(server, schemas=None, **params) -> etree._Element:
    status, body, ctype = server.get("/oai", **params)
    assert status == 200 and ctype.startswith("text/xml")
    root = etree.fromstring(body)
    if schemas is not None:
        oai, marc = schemas
        oai.validate(root)
        for rec in root.iterfind(".//m:record", NS):
            marc.validate(rec)
    return root


def error_code(root) -> str | None:
    e = root.find("o:error", NS)
    return e.get("code") if e is not None else None


def union_count(data: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(data / "catalog.sqlite")
    try:
        return conn.execute("SELECT COUNT(*) FROM union_rec").fetchone()[0]
    finally:
        conn.close()


def test_every_verb_is_valid_against_the_official_schema(server, schemas, catalog):
    ident = get(server, schemas, verb="Identify")
    assert ident.findtext("o:Identify/o:granularity", namespaces=NS) == "YYYY-MM-DDThh:mm:ssZ"
    assert ident.findtext("o:Identify/o:deletedRecord", namespaces=NS) == "persistent"
    formats = get(server, schemas, verb="ListMetadataFormats")
    assert [e.text for e in formats.iterfind(".//o:metadataPrefix", NS)] == ["oai_dc", "marc21"]
    sets = get(server, schemas, verb="ListSets")
    assert {"iizuka", "komae", "hiroshima-u"} <= {e.text for e in sets.iterfind(".//o:setSpec", NS)}
    first = get(server, schemas, verb="ListRecords", metadataPrefix="marc21")
    token = first.find(".//o:resumptionToken", NS)
    assert len(first.findall(".//o:record", NS)) == 4
    assert token.get("completeListSize") == str(union_count(catalog)) and token.get("cursor") == "0"
    nxt = get(server, schemas, verb="ListRecords", resumptionToken=token.text)
    assert nxt.find(".//o:resumptionToken", NS).get("cursor") == "4"
    ident_one = first.findtext(".//o:header/o:identifier", namespaces=NS)
    rec = get(server, schemas, verb="GetRecord", identifier=ident_one, metadataPrefix="oai_dc")
    assert rec.find(".//oai_dc:dc", NS) is not None
    ids = get(server, schemas, verb="ListIdentifiers", metadataPrefix="oai_dc", set="komae")
    assert ids.findall(".//o:header", NS) and all(
        "komae" in [s.text for s in h.iterfind("o:setSpec", NS)] for h in ids.iterfind(".//o:header", NS))
    for params in ({"verb": "Nope"}, {"verb": "ListRecords"}, {"verb": "ListRecords", "metadataPrefix": "mods"},
                   {"verb": "ListRecords", "resumptionToken": "junk"}):
        get(server, schemas, **params)


def test_sickle_harvests_everything_in_pages_with_tokens(server, catalog):
    from sickle import Sickle

    s = Sickle(server.base + "/oai")
    records = list(s.ListRecords(metadataPrefix="marc21"))
    assert len(records) == union_count(catalog)
    assert len({r.header.identifier for r in records}) == len(records)          # no record twice across pages
    assert all(r.metadata is not None or r.header.deleted for r in records)
    komae = list(s.ListIdentifiers(metadataPrefix="oai_dc", set="komae"))
    assert 0 < len(komae) < len(records)
    one = s.GetRecord(identifier=records[0].header.identifier, metadataPrefix="oai_dc")
    assert one.metadata.get("title")
    assert s.Identify().granularity == "YYYY-MM-DDThh:mm:ssZ"
    # from/until at seconds: nothing in the future, everything up to now
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    assert len(list(s.ListIdentifiers(metadataPrefix="oai_dc", until=now))) == len(records)
    status, body, _ = server.get("/oai", verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": now})
    assert b'code="noRecordsMatch"' in body


@pytest.mark.parametrize("params, code", [
    ({}, "badVerb"),
    ({"verb": "Frobnicate"}, "badVerb"),
    ({"verb": "Identify", "extra": "1"}, "badArgument"),
    ({"verb": "ListRecords"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "marc21", "from": "yesterday"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "marc21", "from": "2026-01-01", "until": "2026-02-01T00:00:00Z"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "marc21", "from": "2026-02-01", "until": "2026-01-01"}, "badArgument"),
    ({"verb": "ListRecords", "resumptionToken": "x", "metadataPrefix": "marc21"}, "badArgument"),
    ({"verb": "ListRecords", "resumptionToken": "bm90IGEgdG9rZW4"}, "badResumptionToken"),
    ({"verb": "ListRecords", "metadataPrefix": "mods"}, "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "identifier": "oai:unioncat:999999", "metadataPrefix": "marc21"}, "idDoesNotExist"),
    ({"verb": "GetRecord", "identifier": "oai:elsewhere:1", "metadataPrefix": "marc21"}, "idDoesNotExist"),
    ({"verb": "ListRecords", "metadataPrefix": "marc21", "set": "no-such-library"}, "noRecordsMatch"),
])
def test_error_codes(server, schemas, params, code):
    root = get(server, schemas, **params)
    assert error_code(root) == code
    req = root.find("o:request", NS)
    if code in ("badVerb", "badArgument"):
        assert not req.attrib                              # the base URL only, as the protocol says


def test_repeated_argument_and_post(server):
    status, body, _ = server._open(__import__("urllib.request").request.Request(
        server.base + "/oai?verb=Identify&verb=Identify"))
    assert b'code="badVerb"' in body
    status, body, _ = server.post("/oai", verb="Identify")
    assert status == 200 and b"<Identify>" in body


def test_deletions_persist_as_deleted_headers_also_per_set(tmp_path, schemas):
    data = tmp_path / "cat"
    files = write_demo_files(data / "in")
    for lib, path in files.items():
        ingest(data, lib, [path], full=True, quiet=True, workers=0)
    srv = Server(data)
    before = {h.findtext("o:identifier", namespaces=NS): h
              for h in get(srv, schemas, verb="ListIdentifiers", metadataPrefix="marc21").iterfind(".//o:header", NS)}
    komae_before = {h.findtext("o:identifier", namespaces=NS) for h in
                    get(srv, verb="ListIdentifiers", metadataPrefix="marc21", set="komae").iterfind(".//o:header", NS)}
    # komae withdraws everything: records only komae held are gone, shared ones leave komae's set
    empty = tmp_path / "empty.mrc"
    empty.write_bytes(b"")
    time.sleep(1.05 - time.time() % 1)       # a second of its own: from= this second leaves the loading out
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert ingest(data, "komae", [empty], full=True, quiet=True, workers=0).counts.withdrawn > 0
    after = get(srv, schemas, verb="ListIdentifiers", metadataPrefix="marc21", **{"from": since})
    deleted = {h.findtext("o:identifier", namespaces=NS) for h in after.iterfind(".//o:header[@status='deleted']",
                                                                                  NS)}
    live_changed = {h.findtext("o:identifier", namespaces=NS) for h in after.iterfind(".//o:header", NS)} - deleted
    assert deleted and deleted <= komae_before and live_changed <= komae_before
    assert deleted | live_changed == komae_before          # every komae record shows the change
    komae_after = get(srv, schemas, verb="ListIdentifiers", metadataPrefix="marc21", set="komae")
    assert {h.findtext("o:identifier", namespaces=NS) for h in komae_after.iterfind(".//o:header[@status='deleted']",
                                                                                      NS)} == komae_before
    gone = sorted(deleted)[0]
    rec = get(srv, schemas, verb="GetRecord", identifier=gone, metadataPrefix="marc21")
    assert rec.find(".//o:header", NS).get("status") == "deleted" and rec.find(".//o:metadata", NS) is None
    assert gone in before


def _titles(data: Path, cql: str) -> tuple[int, list[str]]:
    from indexers.backends.sqlite_index import SqliteCatalog
    from sru.cql import parse_cql

    cat = SqliteCatalog(data / "catalog.sqlite")

    async def go():
        res = await cat.search(parse_cql(cql, cat.config))
        recs = await cat.fetch(await cat.page(res, 0, 200))
        return res.total, sorted(r.marc["245"].value() for r in recs)

    try:
        return asyncio.run(go())
    finally:
        cat.close()


QUERIES = ["dc.title=図書館", "dc.title=としょかん", "dc.title=library", "dc.creator=山田", "dc.date>2000",
           "cql.allRecords=1", "dc.subject=history", "bath.isbn=9784004310013"]


def test_round_trip_our_oai_into_a_second_gateway(tmp_path):
    first = tmp_path / "first"
    files = write_demo_files(first / "in")
    for lib, path in files.items():
        ingest(first, lib, [path], full=True, quiet=True, workers=0)
    srv = Server(first)
    srv.app[OAI_PROVIDER].settings = dataclasses.replace(srv.app[OAI_PROVIDER].settings, page_size=5)
    second = tmp_path / "second"
    src = parse_source("network", {"protocol": "oai-pmh", "url": srv.base + "/oai"})
    rep = harvest(second, src, retrying=Retrying(attempts=2, backoff=0))
    assert rep.outcome == "complete" and rep.counts["added"] == union_count(first) and rep.pages > 1
    for q in QUERIES:
        assert _titles(second, q) == _titles(first, q), q
    # a withdrawal travels with the next incremental harvest (a deleted header)
    one_lib = tmp_path / "komae-empty.mrc"
    one_lib.write_bytes(b"")
    ingest(first, "komae", [one_lib], full=True, quiet=True, workers=0)
    time.sleep(1.1)          # seconds granularity: the next harvest's from must pass the change's second
    rep = harvest(second, src, retrying=Retrying(attempts=2, backoff=0))
    assert rep.outcome == "complete" and rep.counts["withdrawn"] > 0
    for q in QUERIES:
        assert _titles(second, q) == _titles(first, q), q
    assert union_count(second) == union_count(first)
    # the second gateway serving what it harvested answers SRU as the first does
    srv2 = Server(second)
    try:
        for q in QUERIES:
            assert _sru_titles(srv2, q) == _sru_titles(srv, q) and _sru_titles(srv, q)[0] > 0, q
    finally:
        srv2.stop()
        srv.stop()


def _sru_titles(server, cql: str) -> tuple[int, list[str]]:
    status, body, _ = server.get("/sru", version="1.2", operation="searchRetrieve", query=cql,
                                 maximumRecords=200, recordSchema="marcxml")
    root = etree.fromstring(body)
    srw = {"s": "http://www.loc.gov/zing/srw/", **NS}
    total = int(root.findtext("s:numberOfRecords", namespaces=srw))
    titles = sorted(" ".join(sf.text or "" for sf in df.iterfind("m:subfield", NS))
                    for df in root.iterfind(".//m:datafield[@tag='245']", NS))
    return total, titles


def test_a_set_is_one_member_librarys_records(server, catalog):
    import sqlite3

    from sickle import Sickle

    conn = sqlite3.connect(catalog / "catalog.sqlite")
    komae = conn.execute("SELECT COUNT(DISTINCT union_id) FROM source WHERE library='komae'").fetchone()[0]
    conn.close()
    got = list(Sickle(server.base + "/oai").ListIdentifiers(metadataPrefix="marc21", set="komae"))
    assert len(got) == komae


def test_provider_core_never_fails_on_odd_tokens():
    class Empty:
        def earliest(self):
            return None

        def sets(self):
            return []

        def list(self, **kw):
            return []

        def count(self, **kw):
            return 0

        def entry(self, uid):
            return None

        def records(self, ids):
            return {}

    p = Provider(Empty(), Settings(base_url="http://x/oai"))
    for tok in ("", "=", "eyJ2IjoiTGlzdFJlY29yZHMifQ", "e30", "%%%", "\u00e9", "W10"):
        body = p.handle({"verb": ["ListRecords"], "resumptionToken": [tok]}, 0.0)
        assert b'code="badResumptionToken"' in body, tok
    assert b'code="noRecordsMatch"' in p.handle({"verb": ["ListRecords"], "metadataPrefix": ["marc21"]}, 0.0)
    assert urllib.parse.quote("x")


def test_the_oai_table_sets_what_identify_says_and_bad_settings_stop_serve(catalog, tmp_path, capsys):
    from gateway.cli import main
    from gateway.oai import OaiConfigError, load_oai_settings

    cfg = tmp_path / "unioncat.toml"
    cfg.write_text('[oai]\nbase_url = "https://union.example.jp/oai"\nadmin_email = "union@example.jp"\n'
                   'repository_identifier = "union.example.jp"\npage_size = 7\n', encoding="utf-8")
    srv = Server(catalog, oai=load_oai_settings(cfg))
    try:
        ident = get(srv, verb="Identify")
        assert ident.findtext(".//o:baseURL", namespaces=NS) == "https://union.example.jp/oai"
        assert ident.findtext(".//o:adminEmail", namespaces=NS) == "union@example.jp"
        assert ident.findtext("o:request", namespaces=NS) == "https://union.example.jp/oai"
        page = get(srv, verb="ListIdentifiers", metadataPrefix="marc21")
        ids = [h.findtext("o:identifier", namespaces=NS) for h in page.iterfind(".//o:header", NS)]
        assert len(ids) == 7 and all(i.startswith("oai:union.example.jp:") for i in ids)
    finally:
        srv.stop()
    for text, msg in (('[oai]\ncolour = "red"\n', "unknown setting 'colour'"),
                      ('[oai]\npage_size = 0\n', "page_size must be from 1 to 1000"),
                      ('[oai]\nbase_url = "union.example.jp"\n', "http:// or https://"),
                      ('[oai]\nadmin_email = "nobody"\n', "not an e-mail address")):
        cfg.write_text(text, encoding="utf-8")
        with pytest.raises(OaiConfigError, match=msg):
            load_oai_settings(cfg)
        assert main(["serve", "--data-dir", str(catalog), "--config", str(cfg), "--port", "0"]) == 2
        assert msg.split("'")[0] in capsys.readouterr().err
