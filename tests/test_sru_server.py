"""The SRU service over real HTTP (aiohttp on loopback), every response checked
against the project's SRU schemas for its version."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


# ------------------------------------------------------------------ what real clients send (issue 15)
import logging  # noqa: E402
import socket  # noqa: E402

from sru_validation import validate_official_2_0  # noqa: E402


@pytest.fixture
def clean_log(caplog):
    """Fails the test if the server logged an error or a traceback meanwhile."""
    caplog.set_level(logging.INFO)
    yield caplog
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in bad)


def raw_request(server, data: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (what curl sends), read the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def raw_get(server, target: bytes) -> tuple[int, bytes]:
    return raw_request(server, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")


def test_raw_utf8_in_the_url_as_curl_sends_it(server, clean_log):
    """The README's first example, byte for byte as curl sends it."""
    status, body = raw_get(server, "/sru?query=dc.title%3D図書館&maximumRecords=3".encode())
    assert status == 200
    tree = validate_sru(body, "2.0")
    assert count(tree) == 3 and len(tree.xpath("//*[local-name()='recordPosition']")) == 3
    status, body = raw_get(server, "/sru?version=1.2&operation=searchRetrieve&query=dc.creator=夏目".encode())
    assert count(validate_sru(body, "1.2")) == 1


@pytest.mark.parametrize("target", [
    b"/sru?version=1.2&operation=searchRetrieve&query=dc.title%3D%FF",
    b"/sru?version=1.2&operation=searchRetrieve&query=dc.title%3D%ED%A0%80",        # an encoded surrogate
    b"/sru?version=1.2&operation=searchRetrieve&query=dc.title%3D\xff\xfe",          # raw bytes, not UTF-8
    b"/sru?version=1.2&operation=searchRetrieve&query=dc.title%3D%E5%9B",            # cut in the middle
    b"/sru?version=1.2&operation=searchRetrieve&query=x&%FF=1",                      # in a name
])
def test_bytes_that_are_not_utf8_get_diagnostic_6_not_a_guess(server, clean_log, target):
    status, body = raw_get(server, target)
    assert status == 200
    tree = validate_sru(body, "1.2")
    assert diag_codes(tree) == [6] and count(tree) == 0
    assert "UTF-8" in tree.xpath("string(//diag:message)", namespaces=NS)


def test_bytes_that_are_not_utf8_in_a_post_body(server, clean_log):
    body = b"version=1.2&operation=searchRetrieve&query=dc.title%3D%FF"
    status, answer = raw_request(server, b"POST /sru HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert status == 200 and diag_codes(validate_sru(answer, "1.2")) == [6]


def test_a_post_body_over_1_mb_is_413_with_a_diagnostic(server, clean_log):
    big = b"version=1.2&operation=searchRetrieve&query=" + b"a" * (1024 * 1024 + 10)
    status, answer = raw_request(server, b"POST /sru HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                                 b"Content-Length: " + str(len(big)).encode() + b"\r\n\r\n" + big)
    assert status == 413
    tree = etree.fromstring(answer)
    assert tree.tag.endswith("searchRetrieveResponse")            # not an explain response
    assert [u.rsplit("/", 1)[1] for u in tree.xpath("//*[local-name()='uri']/text()")] == ["6"]


@pytest.mark.parametrize("start", ["99", "4294967296", "99999999999999999999999999999999999999999"])
def test_start_record_beyond_the_hits_is_61_however_large(server, start):
    assert diag_codes(sru(server, "1.2", query="dc.title=図書館", startRecord=start)) == [61]
    assert diag_codes(sru(server, "2.0", query="dc.title=図書館", startRecord=start)) == [61]


def test_huge_maximum_records_is_lowered_not_refused(server):
    tree = sru(server, "1.2", query="cql.allRecords=1", maximumRecords="9" * 40)
    assert diag_codes(tree) == [] and len(tree.xpath("//srw:record", namespaces=NS)) == count(tree)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_explain_record_says_the_version_of_the_response(server, version):
    status, body, _ = server.get(version=version, operation="explain")
    tree = validate_sru(body, version)
    assert tree.xpath("string(//zr:serverInfo/@version)", namespaces=NS) == version


# ------------------------------------------------------------------ PQF over SRU (x-pquery, queryType=pqf)
PQF_AND_CQL = [
    ("@attr 1=4 図書館", "dc.title=図書館"),
    ("@attr 1=1003 夏目", "dc.creator=夏目"),
    ("@and @attr 1=4 introduction @attr 1=1003 manning", "dc.title=introduction and dc.creator=manning"),
    ("@attr 1=4 @attr 5=1 introduc", "dc.title=introduc*"),
    ("@attr 1=31 @attr 2=5 2005", "dc.date>2005"),
]


@pytest.mark.parametrize("pqf,cql", PQF_AND_CQL)
def test_pqf_through_x_pquery_and_query_type_pqf_finds_what_cql_finds(server, pqf, cql):
    expected = count(sru(server, "1.2", query=cql))
    assert count(sru(server, "1.1", **{"x-pquery": pqf})) == expected
    assert count(sru(server, "1.2", **{"x-pquery": pqf})) == expected
    status, body, _ = server.post(version="1.2", operation="searchRetrieve", **{"x-pquery": pqf})
    assert count(validate_sru(body, "1.2")) == expected
    tree = sru(server, "2.0", query=pqf, queryType="pqf")
    assert count(tree) == expected
    assert tree.xpath("string(//sru2:echoedSearchRetrieveRequest/sru2:queryType)", namespaces=NS) == "pqf"


@pytest.mark.parametrize("pqf,code", [
    ('@attr 1=4 "unterminated', 10), ("@and x", 10), ("@attr 1=9999 x", 16), ("@attr 2=100 @attr 1=4 x", 19),
    ("@attrset exp1 @attr 1=1 x", 15), ("@attr 5=102 @attr 1=4 x", 28), ("@attr 1=4 @attr 4=9 x", 48),
])
def test_pqf_errors_are_sru_diagnostics(server, pqf, code):
    assert diag_codes(sru(server, "1.2", **{"x-pquery": pqf})) == [code]
    assert diag_codes(sru(server, "2.0", query=pqf, queryType="pqf")) == [code]


# ------------------------------------------------------------------ long queries (fts5 parser stack, ES nesting)
@pytest.mark.parametrize("op", ["and", "or"])
@pytest.mark.parametrize("terms", [93, 250])
def test_a_query_of_many_terms_runs(server, clean_log, op, terms):
    one = count(sru(server, "1.2", query="dc.title=図書館"))
    assert count(sru(server, "1.2", query=f" {op} ".join(["dc.title=図書館"] * terms))) == one
    assert count(sru(server, "1.2", query=f" {op} ".join(["dc.date>1900"] * terms))) == \
        count(sru(server, "1.2", query="dc.date>1900"))
    mixed = f" {op} ".join(["dc.title=図書館", "dc.date>1900"] * (terms // 2))
    single = f"dc.title=図書館 {op} dc.date>1900"
    assert count(sru(server, "1.2", query=mixed)) == count(sru(server, "1.2", query=single))


def test_a_long_not_chain_runs(server, clean_log):
    query = "cql.allRecords=1" + " not dc.title=図書館" * 120 + " not dc.date<1900" * 120
    expected = count(sru(server, "1.2", query="cql.allRecords=1 not (dc.title=図書館 or dc.date<1900)"))
    assert count(sru(server, "1.2", query=query)) == expected > 0


def test_deeply_nested_queries_run_or_get_a_diagnostic(server, request, clean_log):
    """Alternating and/or 60 levels deep: the embedded index runs it (parts nested
    too deeply are run on their own first); Elasticsearch refuses queries nested
    more than 30 levels, which is said as diagnostic 48, never a server error."""
    query = "dc.title=図書館"
    for _ in range(60):
        query = f"(dc.title=図書館 and (dc.date>2000 or {query}))"
    tree = sru(server, "1.2", query=query)
    if "elasticsearch" in request.node.callspec.id:
        assert diag_codes(tree) in ([], [48])
        if diag_codes(tree):
            return
    assert diag_codes(tree) == [] and count(tree) == count(sru(server, "1.2", query="dc.title=図書館"))


def test_many_terms_over_pqf(server):
    """96 terms (type-1 trees may be 100 levels deep)."""
    pqf = "@and " * 95 + "@attr 1=4 図書館 " * 96
    assert count(sru(server, "1.2", **{"x-pquery": pqf})) == count(sru(server, "1.2", query="dc.title=図書館"))


# ------------------------------------------------------------------ fuzzing the HTTP binding


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.lists(st.one_of(st.sampled_from([b"query=", b"version=", b"operation=", b"&", b"=", b"%", b"%FF",
                                               b"%C3%A9", "図書館".encode(), b"x-pquery=", b"+", b"startRecord="]),
                              st.binary(min_size=1, max_size=3)), max_size=12).map(b"".join))
def test_fuzzed_query_strings_get_sru_answers_and_no_traceback(server, caplog, raw):
    caplog.set_level(logging.INFO)
    target = b"/sru?" + bytes(b if b in _ALLOWED else 0x25 for b in raw)
    status, body = raw_get(server, target)
    assert status in (200, 400), (target, status)
    if status == 200:
        etree.fromstring(body)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


_ALLOWED = frozenset(b for b in range(256) if b not in b" \r\n#\t\x00")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.sampled_from(["dc.title", "dc.date", "cql.allRecords", "bath.isbn", "dc.creator", "x"]).flatmap(
    lambda index: st.lists(st.tuples(st.sampled_from(["=", "==", "<", ">=", "all", "any", "adj", "within"]),
                                     st.text(min_size=1, max_size=6),
                                     st.sampled_from([" and ", " or ", " not ", " prox "])),
                           min_size=1, max_size=8).map(
        lambda parts: "".join(f'{index} {rel} "{term.replace(chr(92), "").replace(chr(34), "")}"{op}'
                              for rel, term, op in parts) + "cql.allRecords=1")))
def test_fuzzed_cql_reaches_the_index_and_gets_an_answer(server, caplog, query):
    """Queries that parse reach the index: every one gets hits or a diagnostic."""
    caplog.set_level(logging.INFO)
    status, body, _ = server.get(version="1.2", operation="searchRetrieve", query=query, maximumRecords="1")
    assert status == 200
    validate_sru(body, "1.2")
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


def test_official_schemas_are_used_for_2_0_when_present(server):
    tree = sru(server, "2.0", query="dc.title=図書館")
    from sru_validation import OFFICIAL_SRU2_DIR
    assert validate_official_2_0(tree) == (OFFICIAL_SRU2_DIR / "sruResponse.xsd").is_file()
