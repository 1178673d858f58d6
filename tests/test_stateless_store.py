"""The record store in PostgreSQL (issue 18): ingests on two machines write one store
(--store-db) and push to one Elasticsearch index; two `unioncat serve` processes, each with
a data directory that holds only a unioncat.toml, serve `/oai` and `local.added` from that
store, requests alternating between them; reindex, sync and stats read it."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from lxml import etree

from gateway.demo import write_demo_files
from indexers.ingest import ingest
from test_sru_workers import Served, count, diag_codes, sru

OAI = {"o": "http://www.openarchives.org/OAI/2.0/"}
ROOT = Path(__file__).resolve().parent.parent


def _oai(port: int, **params) -> etree._Element:
    url = f"http://127.0.0.1:{port}/oai?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
        return etree.fromstring(r.read())


def _identifiers(port: int, **params) -> list[str]:
    """Every identifier of a ListIdentifiers, resumption tokens followed."""
    out: list[str] = []
    tree = _oai(port, verb="ListIdentifiers", metadataPrefix="marc21", **params)
    while True:
        out += tree.xpath("//o:header/o:identifier/text()", namespaces=OAI)
        token = tree.xpath("string(//o:resumptionToken)", namespaces=OAI)
        if not token:
            return out
        tree = _oai(port, verb="ListIdentifiers", resumptionToken=token)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "TZ": "UTC"})


@pytest.fixture(scope="module")
def network(es_url, pg_url, tmp_path_factory):
    import postgres_node
    from indexers.backends.elasticsearch_index import EsConfig

    database = postgres_node.unique_database_name("store")
    postgres_node.admin_sql(pg_url, f'CREATE DATABASE "{database}"')
    store = postgres_node.database_url(pg_url, database)
    cfg = EsConfig(urls=[es_url], index=f"pgstore-{uuid.uuid4().hex[:8]}", request_timeout=30.0)
    host_a = tmp_path_factory.mktemp("ingest-a")
    files = write_demo_files(host_a / "in")
    for lib in ("iizuka", "komae"):
        res = ingest(host_a, lib, [files[lib]], quiet=True, es=cfg, store_url=store)
        assert res.error is None and res.index_pending == 0, (res.error, res.index_error)
    gateways = []
    try:
        for name in ("gateway-a", "gateway-b"):
            d = tmp_path_factory.mktemp(name)
            (d / "unioncat.toml").write_text(f'backend = "elasticsearch"\n[elasticsearch]\nurls = ["{es_url}"]\n'
                                             f'index = "{cfg.index}"\nrequest_timeout = 30\n')
            gateways.append(Served(d, tmp_path_factory.mktemp("log") / f"{name}.log", workers=0,
                                   extra=("--store-db", store)))
            gateways[-1].data_dir = d
        yield gateways, store, cfg, files, tmp_path_factory
    finally:
        for g in gateways:
            g.stop()
        postgres_node.drop_database(pg_url, database)
    for g in gateways:
        text = g.log.read_text()
        assert "Traceback" not in text, text


def test_oai_is_served_by_every_gateway_from_the_shared_store(network):
    (a, b), *_ = network
    ids = _identifiers(a.port)
    assert len(ids) > 10 and ids == _identifiers(b.port)
    assert _identifiers(b.port, set="komae") == _identifiers(a.port, set="komae") != []
    for ident in (ids[0], ids[-1]):
        here, there = (_oai(g.port, verb="GetRecord", identifier=ident, metadataPrefix="marc21").find(".//o:record",
                                                                                                     OAI)
                       for g in (a, b))
        assert here.find("o:metadata", OAI) is not None and len(here.find("o:metadata", OAI)) == 1
        assert etree.tostring(here) == etree.tostring(there)


def test_new_arrivals_come_from_the_shared_store_on_every_gateway(network):
    (a, b), *_ = network
    q = 'local.added >= "iizuka 2000-01-01"'
    got = [sru(g.port, query=q, maximumRecords="0") for g in (a, b)]
    assert [diag_codes(t) for t in got] == [[], []]
    assert count(got[0]) == count(got[1]) == 11          # the demo's eleven iizuka records


def test_an_ingest_on_another_machine_is_seen_in_oai_and_arrivals(network):
    (a, b), store, cfg, files, tmp = network
    host_b = tmp.mktemp("ingest-b")
    res = ingest(host_b, "hiroshima-u", [files["hiroshima-u"]], quiet=True, es=cfg, store_url=store)
    assert res.error is None and res.index_pending == 0, (res.error, res.index_error)
    q = 'local.added >= "hiroshima-u 2000-01-01"'
    assert [count(sru(g.port, query=q, maximumRecords="0")) for g in (a, b)] == [7, 7]
    assert _identifiers(a.port, set="hiroshima-u") == _identifiers(b.port, set="hiroshima-u") != []
    assert not (host_b / "catalog.sqlite").exists()


def test_reindex_sync_and_stats_read_the_shared_store(network, tmp_path):
    (a, _b), store, cfg, *_ = network
    opts = ("--data-dir", tmp_path, "--store-db", store, "--es-url", cfg.urls[0], "--es-index", cfg.index)
    stats = _cli("stats", *opts)
    assert stats.returncode == 0, stats.stderr
    unions = int(stats.stdout.split("union records: ")[1].split()[0])
    assert unions > 10 and "iizuka: 11 records" in stats.stdout
    assert ", 0 waiting in the outbox, 0 rejected" in stats.stdout
    rep = _cli("reindex", *opts, "--workers", "2")
    assert rep.returncode == 0, rep.stderr
    assert f"reindexed {unions} union records" in rep.stdout
    sync = _cli("sync", *opts)
    assert sync.returncode == 0 and "indexed 0, deleted 0, rejected 0" in sync.stdout, sync.stderr
    assert count(sru(a.port, query="cql.allRecords = 1", maximumRecords="0")) == unions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["writer.lock"]


def test_store_db_is_refused_where_it_cannot_work(network, tmp_path):
    _, store, *_ = network
    files = write_demo_files(tmp_path / "in")
    bad = _cli("ingest", "--data-dir", tmp_path / "d", "--store-db", "sqlite:///x.db", "--library", "iizuka",
               files["iizuka"])
    assert bad.returncode == 2 and "a postgresql:// URL is needed" in bad.stderr
    # (without --backend the store's own meta names the cluster, as a data directory's store does)
    embedded = _cli("ingest", "--data-dir", tmp_path / "d", "--backend", "sqlite", "--store-db", store,
                    "--library", "iizuka", files["iizuka"])
    assert embedded.returncode == 2 and "Elasticsearch backend" in embedded.stderr
    serve = _cli("serve", "--data-dir", tmp_path / "d", "--backend", "sqlite", "--store-db", store)
    assert serve.returncode == 2 and "--store-db is for the Elasticsearch backend" in serve.stderr
    gw = tmp_path / "gw"                 # harvests write the data directory's store: not with --store-db
    gw.mkdir()
    (gw / "unioncat.toml").write_text('backend = "elasticsearch"\n[elasticsearch]\nurls = ["http://127.0.0.1:9"]\n'
                                      '[harvest.kyoto-u]\nprotocol = "oai-pmh"\nurl = "http://127.0.0.1:9/oai"\n')
    harvesting = _cli("serve", "--data-dir", gw, "--store-db", store)
    assert harvesting.returncode == 2 and "[harvest.*] sources are not run with --store-db" in harvesting.stderr
    assert "Traceback" not in bad.stderr + embedded.stderr + serve.stderr + harvesting.stderr


def test_the_gateways_keep_nothing_of_their_own(network):
    gateways, *_ = network
    for g in gateways:
        assert sorted(p.name for p in g.data_dir.iterdir()) == ["unioncat.toml"]
