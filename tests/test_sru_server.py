"""The SRU service over real HTTP (aiohttp on loopback), every response checked
against the project's SRU schemas for its version."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from lxml import etree

from sru_validation import validate_sru

NS = {
    "srw": "http://www.loc.gov/zing/srw/",
    "sru2": "http://docs.oasis-open.org/ns/search-ws/sruResponse",
    "diag": "http://www.loc.gov/zing/srw/diagnostic/",
    "diag2": "http://docs.oasis-open.org/ns/search-ws/diagnostic",
    "marc": "http://www.loc.gov/MARC21/slim",
    "zr": "http://explain.z3950.org/dtd/2.0/",
    "scan2": "http://docs.oasis-open.org/ns/search-ws/scan",
    "facet": "http://docs.oasis-open.org/ns/search-ws/facetedResults",
}
VERSIONS = ["1.1", "1.2", "2.0"]


@pytest.fixture
def server(any_demo_server):
    """Every test here runs against the embedded backend and against Elasticsearch."""
    return any_demo_server


def sru(server, version, **params):
    if version != "2.0" or "operation" in params:
        params.setdefault("operation", "searchRetrieve")
    params["version"] = version
    status, body, ctype = server.get(**params)
    assert status == 200 and "xml" in ctype
    tree = validate_sru(body, version)
    return tree


def count(tree) -> int:
    return int(tree.xpath("string(//*[local-name()='numberOfRecords'])"))


def diag_codes(tree) -> list[int]:
    return [int(u.rsplit("/", 1)[1]) for u in tree.xpath("//*[local-name()='diagnostic']/*[local-name()='uri']/text()")]


# ------------------------------------------------------------------ explain
@pytest.mark.parametrize("version", VERSIONS)
def test_explain_lists_working_indexes_and_schemas(server, version):
    status, body, _ = server.get(version=version, operation="explain")
    tree = validate_sru(body, version)
    names = set(tree.xpath("//zr:index/zr:map/zr:name/text()", namespaces=NS))
    assert {"title", "creator", "subject", "possessingInstitution", "date"} <= names
    schemas = set(tree.xpath("//zr:schemaInfo/zr:schema/@name", namespaces=NS))
    assert {"marcxml", "dc", "mods"} <= schemas


def test_no_parameters_is_an_sru_2_explain(server):
    status, body, _ = server.get()
    tree = validate_sru(body, "2.0")
    assert tree.getroot().tag == "{%s}explainResponse" % NS["sru2"]


# ------------------------------------------------------------------ searchRetrieve
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("schema", ["marcxml", "dc", "mods", "json"])
def test_search_in_every_version_and_schema(server, version, schema):
    packing = {"recordXMLEscaping": "string"} if version == "2.0" and schema == "json" else {}
    tree = sru(server, version, query="dc.title=図書館", maximumRecords="2", recordSchema=schema, **packing)
    assert count(tree) == 3
    assert len(tree.xpath("//*[local-name()='recordPosition']")) == 2
    assert tree.xpath("string(//*[local-name()='nextRecordPosition'])") == "3"


@pytest.mark.parametrize("version", VERSIONS)
def test_japanese_and_english_queries(server, version):
    assert count(sru(server, version, query="dc.title=としょかん")) == 3  # reading, hiragana
    assert count(sru(server, version, query="dc.title=學問")) == 1  # old form in the record, 学 typed
    assert count(sru(server, version, query='dc.title="information retrieval"')) == 1
    assert count(sru(server, version, query="dc.creator=夏目")) == 1


def test_two_conventions_merge_into_one_hit_with_holdings_of_each_library(server):
    tree = sru(server, "1.2", query="dc.title=図書館の歴史", recordSchema="marcxml")
    assert count(tree) == 1
    libs = tree.xpath("//marc:datafield[@tag='852']/marc:subfield[@code='a']/text()", namespaces=NS)
    assert set(libs) == {"iizuka", "hiroshima-u"}


def test_string_packing_1_2(server):
    tree = sru(server, "1.2", query="dc.title=図書館", recordPacking="string", maximumRecords="1")
    data = tree.xpath("//srw:recordData", namespaces=NS)[0]
    assert len(data) == 0 and "<record" in data.text


def test_paging_and_last_page(server):
    tree = sru(server, "1.2", query="cql.allRecords=1", maximumRecords="5")
    total = count(tree)
    assert total > 10
    last = sru(server, "1.2", query="cql.allRecords=1", startRecord=str(total), maximumRecords="5")
    assert len(last.xpath("//srw:record", namespaces=NS)) == 1
    assert not last.xpath("//srw:nextRecordPosition", namespaces=NS)
    assert last.xpath("string(//srw:recordPosition)", namespaces=NS) == str(total)


def test_start_beyond_the_result_is_diagnostic_61(server):
    tree = sru(server, "1.2", query="dc.title=図書館", startRecord="99")
    assert diag_codes(tree) == [61]


def test_result_set_id_can_be_searched_and_expires(server):
    tree = sru(server, "1.2", query="dc.title=図書館", resultSetTTL="1")
    rs_id = tree.xpath("string(//srw:resultSetId)", namespaces=NS)
    assert rs_id and tree.xpath("string(//srw:resultSetIdleTime)", namespaces=NS) == "1"
    again = sru(server, "1.2", query=f'cql.resultSetId="{rs_id}" and dc.title=歴史')
    assert count(again) == 1
    time.sleep(1.3)
    gone = sru(server, "1.2", query=f'cql.resultSetId="{rs_id}"')
    assert diag_codes(gone) == [51]


def test_sortby_and_sortkeys(server):
    t = sru(server, "1.2", query="dc.language=eng sortby dc.date/sort.descending", recordSchema="dc")
    dates = [int(d[:4]) for d in t.xpath("//*[local-name()='date']/text()")]
    assert dates == sorted(dates, reverse=True) and len(dates) >= 5
    t = sru(server, "1.1", query="dc.language=eng", sortKeys="date,,1", recordSchema="dc")
    dates = [int(d[:4]) for d in t.xpath("//*[local-name()='date']/text()")]
    assert dates == sorted(dates)


def test_virtual_database_per_library(server):
    status, body, _ = server.get("/sru/komae", version="1.2", operation="searchRetrieve", query="cql.allRecords=1")
    komae = count(validate_sru(body, "1.2"))
    status, body, _ = server.get("/sru/default", version="1.2", operation="searchRetrieve", query="cql.allRecords=1")
    assert 0 < komae < count(validate_sru(body, "1.2"))


def test_unknown_database_is_diagnostic_235(server):
    status, body, _ = server.get("/sru/nowhere", version="1.2", operation="searchRetrieve", query="x")
    assert status == 200 and diag_codes(validate_sru(body, "1.2")) == [235]


def test_post(server):
    status, body, _ = server.post(version="1.2", operation="searchRetrieve", query="dc.title=図書館")
    assert count(validate_sru(body, "1.2")) == 3


def test_facets_sru_2(server):
    tree = sru(server, "2.0", query="cql.allRecords=1", facetLimit="5:dc.language,3:bath.possessingInstitution")
    facets = tree.xpath("//facet:facet", namespaces=NS)
    by_index = {f.xpath("string(facet:index)", namespaces=NS): f for f in facets}
    assert set(by_index) == {"dc.language", "bath.possessingInstitution"}
    langs = {t.xpath("string(facet:actualTerm)", namespaces=NS): int(t.xpath("string(facet:count)", namespaces=NS))
             for t in by_index["dc.language"].xpath(".//facet:term", namespaces=NS)}
    assert langs["jpn"] >= 8 and langs["eng"] >= 6
    assert len(by_index["bath.possessingInstitution"].xpath(".//facet:term", namespaces=NS)) == 3


# ------------------------------------------------------------------ scan
@pytest.mark.parametrize("version", VERSIONS)
def test_scan_with_position(server, version):
    params = {"scanClause": "dc.title=introduction", "maximumTerms": "4", "responsePosition": "2",
              "version": version}
    if version != "2.0":
        params["operation"] = "scan"
    status, body, _ = server.get(**params)
    tree = validate_sru(body, version)
    values = tree.xpath("//*[local-name()='term']/*[local-name()='value']/text()")
    assert len(values) == 4 and values == sorted(values)
    assert values[1].startswith("introduction to")


def test_scan_from_the_start(server):
    status, body, _ = server.get(version="1.2", operation="scan", scanClause='dc.date=""', maximumTerms="3")
    values = validate_sru(body, "1.2").xpath("//srw:value/text()", namespaces=NS)
    assert values == ["1872", "1905", "1995"]


# ------------------------------------------------------------------ diagnostics
@pytest.mark.parametrize(
    "params,code",
    [
        ({"query": "dc.title=("}, 10),
        ({"query": "dc.nothing=x"}, 16),
        ({"query": "dc.title encloses x"}, 19),
        ({"query": "dc.title =/fuzzy x"}, 20),
        ({"query": "dc.title=x", "recordSchema": "nonsense"}, 66),
        ({"query": "dc.title=x", "recordPacking": "zip"}, 71),
        ({"query": "dc.title=x", "maximumRecords": "lots"}, 6),
        ({"query": "dc.title=x sortby dc.subject"}, 80),
        ({"query": "dc.title=x prox dc.creator=y"}, 39),
        ({}, 7),
    ],
)
def test_diagnostics_1_2(server, params, code):
    status, body, ctype = server.get(version="1.2", operation="searchRetrieve", **params)
    assert status == 200 and "xml" in ctype
    assert code in diag_codes(validate_sru(body, "1.2"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    version=st.sampled_from(["1.1", "1.2", "2.0", "", "9"]),
    op=st.sampled_from(["searchRetrieve", "scan", "explain", "", "bogus"]),
    query=st.text(max_size=40),
    extra=st.dictionaries(st.sampled_from(["startRecord", "maximumRecords", "recordSchema", "resultSetTTL",
                                           "scanClause", "sortKeys", "facetLimit", "responsePosition"]),
                          st.text(max_size=8), max_size=3),
)
def test_never_a_500_and_always_sru_xml(server, version, op, query, extra):
    params = {k: v for k, v in {"version": version, "operation": op, "query": query, **extra}.items() if v}
    status, body, ctype = server.get(**params)
    assert status == 200 and "xml" in ctype
    etree.fromstring(body)  # well-formed
