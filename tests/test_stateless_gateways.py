"""Gateways that share nothing but the stores (issue 18): two `unioncat serve` processes,
each with a data directory of its own that holds only a unioncat.toml naming the
Elasticsearch index, and one PostgreSQL database for SRU's result sets
(--result-sets-db). Requests alternate between them: a result set made through one is
paged through the other (past the first page, where Elasticsearch's point in time the
first gateway opened is used by the second), a scan goes on where the other left it, an
ingest on a third machine is seen by both, and neither writes anything of its own."""
from __future__ import annotations

import uuid

import pytest

from gateway.demo import english, write_demo_files
from indexers.ingest import ingest
from test_sru_workers import NS, Served, control_numbers, count, diag_codes, sru

VOLUMES = 80                     # more than the first page Elasticsearch answers with the search (50)


def _volumes(path):
    with open(path, "wb") as fh:
        for i in range(VOLUMES):
            book = (f"97840000{i:05d}", f"Stateless gateway volume {i:02d}", "Gateway, Tester", "Unioncat Press",
                    str(1990 + i % 30), ["Distributed catalogs"])
            fh.write(english(i, book, "komae", 1).as_marc())
    return path


@pytest.fixture(scope="module")
def network(es_url, pg_url, tmp_path_factory):
    import postgres_node
    from indexers.backends.elasticsearch_index import EsConfig

    index = f"stateless-{uuid.uuid4().hex[:8]}"
    cfg = EsConfig(urls=[es_url], index=index, request_timeout=30.0)
    ingest_host = tmp_path_factory.mktemp("ingest-host")
    files = write_demo_files(ingest_host / "in")
    res = ingest(ingest_host, "iizuka", [files["iizuka"]], quiet=True, es=cfg)
    assert res.index_pending == 0, res.index_error
    res = ingest(ingest_host, "komae", [_volumes(ingest_host / "volumes.mrc")], quiet=True, es=cfg)
    assert res.index_pending == 0, res.index_error
    database = postgres_node.unique_database_name("gw")
    postgres_node.admin_sql(pg_url, f'CREATE DATABASE "{database}"')
    db_url = postgres_node.database_url(pg_url, database)
    gateways = []
    try:
        for name in ("gateway-a", "gateway-b"):
            d = tmp_path_factory.mktemp(name)
            (d / "unioncat.toml").write_text(f'backend = "elasticsearch"\n[elasticsearch]\nurls = ["{es_url}"]\n'
                                             f'index = "{index}"\nrequest_timeout = 30\n')
            gateways.append(Served(d, tmp_path_factory.mktemp("log") / f"{name}.log", workers=0,
                                   extra=("--result-sets-db", db_url)))
            gateways[-1].data_dir = d
        yield gateways, ingest_host, files, cfg
    finally:
        for g in gateways:
            g.stop()
        postgres_node.drop_database(pg_url, database)
    for g in gateways:
        text = g.log.read_text()
        assert "Traceback" not in text, text


def test_a_result_set_is_paged_through_the_other_gateway(network):
    (a, b), *_ = network
    for made, used in ((a, b), (b, a)):
        first = sru(made.port, query="dc.title = stateless", maximumRecords="10", resultSetTTL="600")
        rs_id = first.xpath("string(//srw:resultSetId)", namespaces=NS)
        assert rs_id and count(first) == VOLUMES
        for start in ("11", "51", "71"):          # inside the first page, and past it (a point in time)
            there = sru(used.port, query=f'cql.resultSetId="{rs_id}"', startRecord=start, maximumRecords="10")
            here = sru(made.port, query=f'cql.resultSetId="{rs_id}"', startRecord=start, maximumRecords="10")
            assert diag_codes(there) == [] and count(there) == VOLUMES
            assert control_numbers(there) == control_numbers(here) and len(control_numbers(there)) == 10
        within = sru(used.port, query=f'cql.resultSetId="{rs_id}" and dc.date = 1990')
        assert count(within) == 3                  # volumes 0, 30 and 60


def test_the_pages_of_both_gateways_make_up_the_whole_set_once(network):
    (a, b), *_ = network
    first = sru(a.port, query="dc.title = stateless", maximumRecords="0", resultSetTTL="600")
    rs_id = first.xpath("string(//srw:resultSetId)", namespaces=NS)
    seen: list[str] = []
    for page, start in enumerate(range(1, VOLUMES + 1, 20)):
        gateway = (a, b)[page % 2]
        seen += control_numbers(sru(gateway.port, query=f'cql.resultSetId="{rs_id}"', startRecord=str(start),
                                    maximumRecords="20"))
    assert len(seen) == VOLUMES and len(set(seen)) == VOLUMES


def test_a_scan_goes_on_through_the_other_gateway(network):
    (a, b), *_ = network

    def terms(port, start, n, position="1"):
        tree = sru(port, operation="scan", scanClause=f'dc.title = "{start}"', maximumTerms=str(n),
                   responsePosition=position)
        return tree.xpath("//*[local-name()='term']/*[local-name()='value']/text()")

    ten = terms(a.port, "stateless", 10)
    assert len(ten) == 10
    assert terms(b.port, ten[4], 6) == ten[4:]             # from the fifth term on, asked of the other


def test_unknown_sets_are_diagnostic_51_on_every_gateway(network):
    (a, b), *_ = network
    for g in (a, b):
        assert diag_codes(sru(g.port, query='cql.resultSetId="nosuchset"')) == [51]


def test_an_ingest_elsewhere_is_seen_by_every_gateway(network):
    (a, b), ingest_host, files, cfg = network
    query = "dc.title = basics"                          # only in hiroshima-u's records of the demo
    before = [count(sru(g.port, query=query, resultSetTTL="600")) for g in (a, b)]
    assert before == [0, 0]
    res = ingest(ingest_host, "hiroshima-u", [files["hiroshima-u"]], quiet=True, es=cfg)
    assert res.index_pending == 0, res.index_error
    after = [count(sru(g.port, query=query, resultSetTTL="600")) for g in (a, b)]
    assert after[0] > 0 and after[0] == after[1]


def test_the_gateways_keep_nothing_of_their_own(network):
    gateways, *_ = network
    for g in gateways:
        assert sorted(p.name for p in g.data_dir.iterdir()) == ["unioncat.toml"]
