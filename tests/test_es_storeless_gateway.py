"""A gateway in front of an Elasticsearch index with a data directory of its own that
holds no record store (another machine ran the ingest): searches and records come
from the index; what needs the record store says so instead of failing."""
from __future__ import annotations

import uuid
from xml.etree import ElementTree as ET

import pytest

from connectors.oai.repository import StoreRepository, StoreUnavailable
from gateway.demo import write_demo_files
from indexers.ingest import ingest
from live_server import Server

SRW = "{http://www.loc.gov/zing/srw/}"
DIAG = "{http://www.loc.gov/zing/srw/diagnostic/}"


@pytest.fixture(scope="module")
def gateways(es_url, tmp_path_factory):
    from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
    from indexers.backends.elasticsearch_index import EsConfig

    cfg = EsConfig(urls=[es_url], index=f"storeless-{uuid.uuid4().hex[:8]}", request_timeout=20.0)
    ingest_dir = tmp_path_factory.mktemp("ingest-host")
    for lib, path in write_demo_files(ingest_dir / "in").items():
        res = ingest(ingest_dir, lib, [path], quiet=True, es=cfg)
        assert res.index_pending == 0, res.index_error
    gateway_dir = tmp_path_factory.mktemp("gateway-host")          # empty: no catalog.sqlite
    home = Server(ingest_dir, catalog=ElasticsearchCatalog(cfg))
    bare = Server(gateway_dir, catalog=ElasticsearchCatalog(cfg))
    yield home, bare, gateway_dir
    bare.stop()
    home.stop()


def _search(server, query: str, **extra):
    status, body, _ = server.get("/sru", operation="searchRetrieve", version="1.2", query=query, **extra)
    assert status == 200
    return ET.fromstring(body)


def test_search_and_records_come_from_the_index(gateways):
    home, bare, gateway_dir = gateways
    a = _search(home, "dc.title = history", maximumRecords="3")
    b = _search(bare, "dc.title = history", maximumRecords="3")
    n = int(b.findtext(f"{SRW}numberOfRecords"))
    assert n > 0 and n == int(a.findtext(f"{SRW}numberOfRecords"))
    records = [ET.tostring(r) for r in b.iter(f"{SRW}recordData")]
    assert records and records == [ET.tostring(r) for r in a.iter(f"{SRW}recordData")]
    assert not (gateway_dir / "catalog.sqlite").exists()


def test_new_arrivals_say_they_need_the_record_store(gateways):
    home, bare, _ = gateways
    q = 'local.added >= "iizuka 2000-01-01"'
    assert int(_search(home, q, maximumRecords="0").findtext(f"{SRW}numberOfRecords")) > 0
    diag = _search(bare, q, maximumRecords="0").find(f"{SRW}diagnostics/{DIAG}diagnostic")
    assert diag is not None
    assert diag.findtext(f"{DIAG}uri") == "info:srw/diagnostic/1/16"        # not "temporarily unavailable"
    assert "record store" in diag.findtext(f"{DIAG}message")


def test_oai_is_where_the_record_store_is(gateways):
    home, bare, gateway_dir = gateways
    status, body, _ = home.get("/oai", verb="Identify")
    assert status == 200 and b"<Identify>" in body
    status, _, _ = bare.get("/oai", verb="Identify")
    assert status == 404                                   # not mounted; never a 500
    assert not (gateway_dir / "catalog.sqlite").exists()   # and asking created no empty store


def test_a_repository_without_a_store_raises_its_own_error(tmp_path):
    repo = StoreRepository(tmp_path / "catalog.sqlite")
    with pytest.raises(StoreUnavailable):
        repo.earliest()
    assert not (tmp_path / "catalog.sqlite").exists()
