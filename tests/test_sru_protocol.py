"""SRU protocol core (sru/protocol.py, sru/record_schemas.py, sru/explain.py):
request parsing and every diagnostic path per version, and responses of SRU
1.1, 1.2 and 2.0 validated against the project's schemas (tests/sru_validation.py).
"""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pymarc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from pymarc import Field, Indicators, Subfield

from indexers.query_model import SortKey
from indexers.records import FacetValue, Holding, ScanTerm, UnionRecord
from sru import protocol as p
from sru.binding import decode_form, merge
from sru.diagnostics import Diagnostic, SRUDiagnosticError, from_query_error
from sru.explain import ZEEREX_NS, explain_record
from sru.record_schemas import (
    DC,
    DC_NS,
    JSON,
    MARC_NS,
    MARCXML,
    MODS,
    MODS_NS,
    OPAC,
    RenderedRecord,
    dc_values,
    marc_json,
    render_record,
    resolve_schema,
)
from sru_validation import validate_record, validate_sru

VERSIONS = ("1.1", "1.2", "2.0")
SRW = "http://www.loc.gov/zing/srw/"
SRU2 = p.SRU2_NS


# --------------------------------------------------------------------------
# Test records
# --------------------------------------------------------------------------
def _df(tag, ind, *subs):
    return Field(tag=tag, indicators=Indicators(*ind),
                 subfields=[Subfield(c, v) for c, v in subs])


def japanese_record() -> UnionRecord:
    """LoC convention: romanized 245 with the kanji in a linked 880; held by two
    libraries (three items)."""
    r = pymarc.Record(force_utf8=True)
    r.leader = pymarc.leader.Leader("00865cam a22002774a 4500")
    r.add_field(Field(tag="001", data="   00271342 "))
    r.add_field(Field(tag="003", data="DLC"))
    r.add_field(Field(tag="005", data="20070827115333.0"))
    r.add_field(Field(tag="008", data="000104s1999    ja a          000 0 jpn  "))
    r.add_field(_df("010", "  ", ("a", "   00271342 ")))
    r.add_field(_df("020", "  ", ("a", "4639015925")))
    r.add_field(_df("084", "  ", ("a", "779.12"), ("2", "njb/09")))
    r.add_field(_df("100", "1 ", ("6", "880-01"), ("a", "Abe, Kazue,"), ("d", "1909-")))
    r.add_field(_df("245", "10", ("6", "880-02"), ("a", "Dentō wagei kōdan no subete /"),
                    ("c", "Abe Kazue.")))
    r.add_field(_df("260", "  ", ("6", "880-03"), ("a", "Tōkyō :"), ("b", "Yūzankaku,"),
                    ("c", "Heisei 11 [1999]")))
    r.add_field(_df("300", "  ", ("a", "10, 291 p. :"), ("b", "ill. ;"), ("c", "20 cm.")))
    r.add_field(_df("650", " 0", ("a", "Oral tradition"), ("z", "Japan.")))
    r.add_field(_df("650", " 0", ("a", "Storytelling"), ("z", "Japan.")))
    r.add_field(_df("880", "1 ", ("6", "100-01/$1"), ("a", "阿部主計,"), ("d", "1909-")))
    r.add_field(_df("880", "10", ("6", "245-02/$1"), ("a", "伝統話芸・講談のすべて /"),
                    ("c", "阿部主計.")))
    r.add_field(_df("880", "  ", ("6", "260-03/$1"), ("a", "東京 :"), ("b", "雄山閣,"),
                    ("c", "平成 11 [1999]")))
    holdings = [
        Holding("iizuka", "IZ-1", "chikuho", "779/A12", "general", "1000001"),
        Holding("iizuka", "IZ-1", "honkan", "779/A12", "", "1000002"),
        Holding("komae", "KO-77", "central", "779.1/ア", "reference", ""),
    ]
    for h in holdings:
        r.add_field(_df("852", "  ", ("a", h.library), ("b", h.branch), ("h", h.call_number)))
    return UnionRecord(42, r, holdings, [("iizuka", "IZ-1"), ("komae", "KO-77")])


def ndl_record() -> UnionRecord:
    """NDL convention: kanji in 245, the reading in the linked 880."""
    r = pymarc.Record(force_utf8=True)
    r.leader = pymarc.leader.Leader("00500nam a2200169 i 4500")
    r.add_field(Field(tag="001", data="JP20001234"))
    r.add_field(Field(tag="008", data="200101s2020    ja            000 0 jpn  "))
    r.add_field(_df("245", "00", ("6", "880-01"), ("a", "図書館の歴史")))
    r.add_field(_df("880", "00", ("6", "245-01/$1"), ("a", "トショカン ノ レキシ")))
    return UnionRecord(43, r, [Holding("hiroshima", "H1", "chuo", "010.2/ト")],
                       [("hiroshima", "H1")])


def control_char_record() -> UnionRecord:
    """Like the LoC record whose 001 ends in 0x1F; other controls elsewhere."""
    r = pymarc.Record(force_utf8=True)
    r.leader = pymarc.leader.Leader("00880cam a2200277 a 4500")
    r.add_field(Field(tag="001", data="   00038361\x1f"))
    r.add_field(Field(tag="008", data="000104s1999    xxu           000 0 eng  "))
    r.add_field(_df("245", "00", ("a", "Bells\x07 & <whistles> \"quoted\" \x0b")))
    return UnionRecord(44, r, [], [("komae", "x")])


class _Broken:
    """A record that makes every renderer fail."""

    id = 99

    @property
    def marc(self):
        raise RuntimeError("store returned garbage")


@pytest.fixture()
def jrec():
    return japanese_record()


def sr(version: str, **params) -> p.SearchRetrieveRequest:
    q = {"query": ["dc.title = 図書館"]}
    if version != "2.0":
        q["operation"] = ["searchRetrieve"]
    q["version"] = [version]
    for k, v in params.items():
        q[k] = [v] if isinstance(v, str) else v
    req = p.parse_request(q)
    assert isinstance(req, p.SearchRetrieveRequest)
    return req


def diag_of(params, **kw) -> SRUDiagnosticError:
    with pytest.raises(SRUDiagnosticError) as info:
        p.parse_request(params, **kw)
    return info.value


# --------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------
class TestOperationAndVersion:
    def test_no_parameters_is_explain_in_2_0(self):
        req = p.parse_request({})
        assert isinstance(req, p.ExplainRequest)
        assert req.version == "2.0" and req.record_packing == "xml"

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_1x_explain(self, version):
        req = p.parse_request({"operation": ["explain"], "version": [version],
                               "recordPacking": ["string"]})
        assert isinstance(req, p.ExplainRequest)
        assert (req.version, req.record_packing) == (version, "string")

    def test_2_0_infers_operation(self):
        assert isinstance(p.parse_request({"query": ["x"]}), p.SearchRetrieveRequest)
        assert isinstance(p.parse_request({"scanClause": ["dc.title=a"]}), p.ScanRequest)
        assert isinstance(p.parse_request({"recordXMLEscaping": ["string"]}),
                          p.ExplainRequest)
        # an explicit operation is honoured in 2.0 too
        req = p.parse_request({"operation": ["searchRetrieve"], "version": ["2.0"],
                               "query": ["x"]})
        assert req.version == "2.0"

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_1x_operation_is_mandatory(self, version):
        e = diag_of({"version": [version], "query": ["x"]})
        assert (e.code, e.details, e.version) == (7, "operation", version)
        assert e.operation == "searchRetrieve"

    def test_1x_version_alone_is_explain(self):
        req = p.parse_request({"version": ["1.2"]})
        assert isinstance(req, p.ExplainRequest) and req.version == "1.2"

    def test_unsupported_operation(self):
        e = diag_of({"operation": ["update"], "version": ["1.2"]})
        assert (e.code, e.details, e.version, e.operation) == (4, "update", "1.2", None)

    @pytest.mark.parametrize("requested,answered", [
        ("1.1", "1.1"), ("1.2", "1.2"), ("2.0", "2.0"), ("1.5", "1.2"), ("3.0", "2.0"),
        ("2.1", "2.0")])
    def test_version_is_a_ceiling(self, requested, answered):
        req = p.parse_request({"operation": ["searchRetrieve"], "version": [requested],
                               "query": ["x"]})
        assert req.version == answered

    @pytest.mark.parametrize("bad", ["1.0", "0.9", "abc", "2", "1.2.3"])
    def test_unsupported_version_answered_in_highest(self, bad):
        e = diag_of({"operation": ["searchRetrieve"], "version": [bad], "query": ["x"]})
        assert (e.code, e.details, e.version, e.operation) == (5, "2.0", "2.0",
                                                               "searchRetrieve")
        body = p.error_response(e)
        tree = validate_sru(body, "2.0")
        assert tree.findtext(f".//{{{p.SRU2_DIAG_NS}}}uri") == "info:srw/diagnostic/1/5"


class TestParameters:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_defaults(self, version):
        settings = p.SRUSettings(default_maximum_records=7)
        q = {"version": [version], "query": ["cat"]}
        if version != "2.0":
            q["operation"] = ["searchRetrieve"]
        req = p.parse_request(q, defaults=settings)
        assert req.query == "cat" and req.start_record == 1
        assert req.maximum_records == 7
        assert req.record_schema == "marcxml" and req.record_packing == "xml"
        assert req.result_set_ttl is None and req.sort_keys is None
        assert req.facet_limit is None and req.stylesheet is None
        assert req.query_type == "cql" and req.extra == {}

    @pytest.mark.parametrize("version", VERSIONS)
    def test_every_parameter(self, version):
        packing = "recordXMLEscaping" if version == "2.0" else "recordPacking"
        req = sr(version, startRecord="11", maximumRecords="5", recordSchema="dc",
                 resultSetTTL="60", stylesheet="/style.xsl", **{packing: "string"},
                 **{"x-debug": ["1", "2"]})
        assert (req.start_record, req.maximum_records) == (11, 5)
        assert (req.record_schema, req.record_packing) == ("dc", "string")
        assert req.result_set_ttl == 60 and req.stylesheet == "/style.xsl"
        assert req.extra == {"x-debug": ["1", "2"]}

    def test_maximum_records_capped_and_zero_allowed(self):
        settings = p.SRUSettings(max_maximum_records=100)
        q = {"query": ["x"], "maximumRecords": ["5000"]}
        assert p.parse_request(q, defaults=settings).maximum_records == 100
        assert sr("2.0", maximumRecords="0").maximum_records == 0

    def test_result_set_ttl_capped(self):
        settings = p.SRUSettings(max_result_set_ttl=3600)
        req = p.parse_request({"query": ["x"], "resultSetTTL": ["99999"]}, defaults=settings)
        assert req.result_set_ttl == 3600

    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize("name,value", [
        ("startRecord", "abc"), ("startRecord", "0"), ("startRecord", "-3"),
        ("startRecord", "1.5"), ("maximumRecords", "-1"), ("maximumRecords", "ten"),
        ("resultSetTTL", "-5"), ("resultSetTTL", "x")])
    def test_bad_integers(self, version, name, value):
        q = {"version": [version], "query": ["x"], name: [value]}
        if version != "2.0":
            q["operation"] = ["searchRetrieve"]
        e = diag_of(q)
        assert (e.code, e.details, e.version, e.operation) == (6, name, version,
                                                               "searchRetrieve")

    @pytest.mark.parametrize("version", VERSIONS)
    def test_query_mandatory(self, version):
        q = {"version": [version], "operation": ["searchRetrieve"]}
        e = diag_of(q)
        assert (e.code, e.details) == (7, "query")
        # an empty value counts as not supplied
        e = diag_of({**q, "query": ["  "]})
        assert (e.code, e.details) == (7, "query")

    @pytest.mark.parametrize("version", VERSIONS)
    def test_unknown_parameter(self, version):
        q = {"version": [version], "operation": ["searchRetrieve"], "query": ["x"],
             "colour": ["red"]}
        e = diag_of(q)
        assert (e.code, e.details) == (8, "colour")

    def test_parameters_of_other_operations_are_unsupported(self):
        e = diag_of({"version": ["1.2"], "operation": ["scan"], "scanClause": ["a"],
                     "startRecord": ["1"]})
        assert (e.code, e.details, e.operation) == (8, "startRecord", "scan")
        e = diag_of({"version": ["1.2"], "operation": ["explain"], "query": ["a"]})
        assert (e.code, e.details) == (8, "query")

    def test_version_specific_parameters(self):
        # sortKeys: 1.1 and 2.0, not 1.2 (sorting moved into CQL sortby)
        assert sr("1.1", sortKeys="title,,0").parsed_sort_keys == (
            SortKey("title", False, "highValue"),)
        assert sr("2.0", sortKeys="date").parsed_sort_keys == (SortKey("date"),)
        assert diag_of({"version": ["1.2"], "operation": ["searchRetrieve"],
                        "query": ["x"], "sortKeys": ["title"]}).code == 8
        # recordXPath: a 1.1 parameter the server does not support
        e = diag_of({"version": ["1.1"], "operation": ["searchRetrieve"], "query": ["x"],
                     "recordXPath": ["/a"]})
        assert (e.code, e.details) == (72, "/a")
        assert diag_of({"version": ["1.2"], "operation": ["searchRetrieve"],
                        "query": ["x"], "recordXPath": ["/a"]}).code == 8
        # 2.0-only parameters in 1.2
        assert diag_of({"version": ["1.2"], "operation": ["searchRetrieve"],
                        "query": ["x"], "facetLimit": ["10"]}).code == 8
        assert diag_of({"version": ["1.2"], "operation": ["searchRetrieve"],
                        "query": ["x"], "recordXMLEscaping": ["xml"]}).code == 8

    def test_repeated_parameters(self):
        req = p.parse_request({"query": ["x", "x"]})
        assert req.query == "x"
        e = diag_of({"query": ["x", "y"]})
        assert (e.code, e.details) == (6, "query")

    def test_query_type(self):
        assert sr("2.0", queryType="cql").query_type == "cql"
        e = diag_of({"query": ["x"], "queryType": ["searchTerms"]})
        assert (e.code, e.details) == (6, "queryType")

    def test_rendered_by_and_http_accept(self):
        assert sr("2.0", renderedBy="client", httpAccept="application/sru+xml")
        assert diag_of({"query": ["x"], "renderedBy": ["server"]}).details == "renderedBy"
        e = diag_of({"query": ["x"], "httpAccept": ["application/json"]})
        assert (e.code, e.details) == (6, "httpAccept")

    def test_unsupported_facet_parameters(self):
        e = diag_of({"query": ["x"], "facetStart": ["2"]})
        assert (e.code, e.details) == (8, "facetStart")

    def test_facet_limit(self):
        assert sr("2.0", facetLimit="10:dc.language,5:dc.date").facet_limit == {
            "dc.language": 10, "dc.date": 5}
        assert sr("2.0", facetLimit="10").facet_limit == {"*": 10}
        assert sr("2.0", facetLimit="3,1000:dc.subject").facet_limit == {
            "*": 3, "dc.subject": 100}
        for bad in ("x", "10:", "-1:dc.date", ":dc.date", "²", "٣:dc.date"):
            e = diag_of({"query": ["x"], "facetLimit": [bad]})
            assert (e.code, e.details) == (6, "facetLimit"), bad

    def test_resolve_facet_limit(self):
        facets = {"language": SimpleNamespace(index="dc.language", title="Language"),
                  "date": SimpleNamespace(index="dc.date", title="Year")}
        assert p.resolve_facet_limit({"*": 5, "dc.date": 2}, facets) == {
            "language": 5, "date": 2}
        assert p.resolve_facet_limit({"language": 3}, facets) == {"language": 3}
        assert p.resolve_facet_limit(None, facets) == {}
        with pytest.raises(SRUDiagnosticError) as info:
            p.resolve_facet_limit({"dc.title": 3}, facets)
        assert info.value.code == 6


class TestSchemasAndPacking:
    @pytest.mark.parametrize("name,expected", [
        ("marcxml", MARCXML), ("MARC21", MARCXML), ("info:srw/schema/1/marcxml-v1.1", MARCXML),
        ("http://www.loc.gov/MARC21/slim", MARCXML), ("dc", DC),
        ("info:srw/schema/1/dc-v1.1", DC), ("mods", MODS),
        ("info:srw/schema/1/mods-v3.4", MODS), ("json", JSON), ("marcjson", JSON),
        (JSON.uri, JSON)])
    def test_schema_names_and_uris(self, name, expected):
        assert resolve_schema(name) is expected
        assert sr("1.2", recordSchema=name).record_schema == expected.name

    @pytest.mark.parametrize("version", VERSIONS)
    def test_unknown_schema(self, version):
        q = {"version": [version], "operation": ["searchRetrieve"], "query": ["x"],
             "recordSchema": ["info:srw/schema/1/onix"]}
        e = diag_of(q)
        assert (e.code, e.details, e.version) == (66, "info:srw/schema/1/onix", version)

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_1x_packing(self, version):
        assert sr(version, recordPacking="string").record_packing == "string"
        assert sr(version, recordPacking="XML").record_packing == "xml"
        e = diag_of({"version": [version], "operation": ["searchRetrieve"],
                     "query": ["x"], "recordPacking": ["packed"]})
        assert (e.code, e.details) == (71, "packed")

    def test_2_0_escaping_and_packing(self):
        assert sr("2.0", recordXMLEscaping="string").record_packing == "string"
        assert sr("2.0", recordPacking="packed").record_packing == "xml"
        # a 1.x habit, read as recordXMLEscaping
        assert sr("2.0", recordPacking="string").record_packing == "string"
        assert diag_of({"query": ["x"], "recordPacking": ["unpacked"]}).code == 71
        assert diag_of({"query": ["x"], "recordXMLEscaping": ["json"]}).code == 71

    @pytest.mark.parametrize("version", VERSIONS)
    def test_json_is_string_only(self, version):
        assert sr(version, recordSchema="json").record_packing == "string"
        packing = "recordXMLEscaping" if version == "2.0" else "recordPacking"
        q = {"version": [version], "operation": ["searchRetrieve"], "query": ["x"],
             "recordSchema": ["json"], packing: ["xml"]}
        e = diag_of(q)
        assert e.code == 71 and "only be sent with" in e.message and "string" in e.message


class TestScanParsing:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_scan(self, version):
        q = {"version": [version], "scanClause": ["dc.title = 図書"]}
        if version != "2.0":
            q["operation"] = ["scan"]
        req = p.parse_request(q)
        assert isinstance(req, p.ScanRequest)
        assert (req.scan_clause, req.response_position, req.maximum_terms) == (
            "dc.title = 図書", 1, 20)
        req = p.parse_request({**q, "responsePosition": ["0"], "maximumTerms": ["500"]})
        assert (req.response_position, req.maximum_terms) == (0, 100)

    def test_scan_diagnostics(self):
        base = {"version": ["1.2"], "operation": ["scan"]}
        assert diag_of(base).details == "scanClause"
        e = diag_of({**base, "scanClause": ["a"], "maximumTerms": ["0"]})
        assert (e.code, e.details) == (6, "maximumTerms")
        e = diag_of({**base, "scanClause": ["a"], "responsePosition": ["-1"]})
        assert (e.code, e.details) == (6, "responsePosition")
        e = diag_of({**base, "scanClause": ["a"], "maximumTerms": ["5"],
                     "responsePosition": ["7"]})
        assert (e.code, e.operation) == (120, "scan")


class TestSortKeys:
    def test_parse(self):
        assert p.parse_sort_keys("title,,0 dc.date,,1,0,lowValue creator") == [
            SortKey("title", False), SortKey("dc.date", True, "lowValue"),
            SortKey("creator")]

    @pytest.mark.parametrize("raw,code", [("title,,2", 90), ("title,,1,0,abort", 92),
                                           (",x", 6), ("a,b,1,0,highValue,extra", 6),
                                           ("title,,1,yes", 6)])
    def test_errors(self, raw, code):
        with pytest.raises(SRUDiagnosticError) as info:
            p.parse_sort_keys(raw)
        assert info.value.code == code

    def test_bad_sort_keys_in_request_carry_version(self):
        e = diag_of({"query": ["x"], "sortKeys": ["title,,5"]})
        assert (e.code, e.version, e.operation) == (90, "2.0", "searchRetrieve")

    def test_resolve_with_config(self):
        config = fake_config()
        keys = p.parse_sort_keys("title,,0 relevance date", config)
        assert keys == [SortKey("dc.title", False), SortKey("cql.relevance"),
                        SortKey("dc.date")]
        with pytest.raises(SRUDiagnosticError) as info:
            p.parse_sort_keys("subject", config)
        assert info.value.code == 80
        with pytest.raises(SRUDiagnosticError) as info:
            p.parse_sort_keys("nosuch", config)
        assert info.value.code == 16

    def test_effective_sort(self):
        q, d = p.effective_sort([SortKey("dc.title")], [SortKey("dc.date")])
        assert q == (SortKey("dc.title"),) and [x.code for x in d] == [94]
        assert p.effective_sort([], [SortKey("dc.date")]) == ((SortKey("dc.date"),), [])


def test_from_query_error():
    from indexers.query_model import QueryError
    e = from_query_error(QueryError(16, "dc.nosuch"), version="1.2", operation="scan")
    assert (e.code, e.details, e.message, e.version, e.operation) == (
        16, "dc.nosuch", "Unsupported index", "1.2", "scan")


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------
class TestRecords:
    def test_marcxml(self, jrec):
        rr = render_record(jrec, MARCXML)
        el = rr.as_element()
        validate_record(el, MARCXML.uri, "1.2")
        ns = {"m": MARC_NS}
        assert el.findtext("m:leader", namespaces=ns) == "00865cam a22002774a 4500"
        assert el.xpath("m:datafield[@tag='880']/m:subfield[@code='a']/text()",
                        namespaces=ns)[1] == "伝統話芸・講談のすべて /"
        # holdings of both libraries are in the 852s
        assert el.xpath("m:datafield[@tag='852']/m:subfield[@code='a']/text()",
                        namespaces=ns) == ["iizuka", "iizuka", "komae"]

    def test_marcxml_reorders_control_fields(self):
        r = pymarc.Record()
        r.leader = pymarc.leader.Leader("00000nam a2200000 a 4500")
        r.add_field(_df("245", "00", ("a", "x")))
        r.fields.append(Field(tag="001", data="late"))
        el = render_record(r, MARCXML).as_element()
        validate_record(el, MARCXML.uri, "2.0")
        assert [etree.QName(c).localname for c in el] == ["leader", "controlfield",
                                                          "datafield"]

    def test_control_characters_become_replacement_characters(self):
        rec = control_char_record()
        for schema in (MARCXML, DC, MODS):
            rr = render_record(rec, schema)
            assert rr.diagnostic is None
            text = rr.as_string()
            etree.fromstring(text.encode())  # well-formed
            validate_record(text, schema.uri, "1.2")
        xml = render_record(rec, MARCXML).as_string()
        assert "00038361\ufffd</controlfield>" in xml
        assert "&amp; &lt;whistles&gt;" in xml
        j = json.loads(render_record(rec, JSON).text)
        assert j["fields"][0] == {"001": "   00038361\x1f"}  # JSON escapes it itself

    def test_dc_prefers_vernacular(self, jrec):
        values = dc_values(jrec)
        titles = [v for k, v in values if k == "title"]
        assert titles == ["伝統話芸・講談のすべて", "Dentō wagei kōdan no subete"]
        assert [v for k, v in values if k == "creator"] == ["阿部主計, 1909-",
                                                            "Abe, Kazue, 1909-"]
        assert ("publisher", "雄山閣") in values and ("publisher", "Yūzankaku") in values
        assert ("identifier", "urn:isbn:4639015925") in values
        assert ("identifier", "info:lccn/00271342") in values
        assert ("language", "jpn") in values and ("type", "Text") in values
        assert ("subject", "Oral tradition -- Japan") in values
        assert ("date", "Heisei 11 [1999]") in values
        el = render_record(jrec, DC).as_element()
        validate_record(el, DC.uri, "1.2")
        assert el.findtext(f"{{{DC_NS}}}title") == "伝統話芸・講談のすべて"

    def test_dc_ndl_convention(self):
        titles = [v for k, v in dc_values(ndl_record()) if k == "title"]
        assert titles == ["図書館の歴史", "トショカン ノ レキシ"]

    def test_mods(self, jrec):
        el = render_record(jrec, MODS).as_element()
        validate_record(el, MODS.uri, "2.0")
        ns = {"m": MODS_NS}
        tis = el.findall("m:titleInfo", ns)
        assert [t.findtext("m:title", namespaces=ns) for t in tis] == [
            "伝統話芸・講談のすべて", "Dentō wagei kōdan no subete"]
        assert tis[0].get("altRepGroup") == tis[1].get("altRepGroup")
        assert (tis[0].get("script"), tis[1].get("script")) == ("Jpan", "Latn")
        assert el.xpath("m:name[@usage='primary']/m:namePart[not(@type)]/text()",
                        namespaces=ns) == ["阿部主計", "Abe, Kazue"]
        assert el.xpath("m:originInfo/m:publisher/text()", namespaces=ns) == [
            "雄山閣", "Yūzankaku"]
        assert el.xpath("m:identifier[@type='isbn']/text()", namespaces=ns) == ["4639015925"]
        assert el.xpath("m:identifier[@type='lccn']/text()", namespaces=ns) == ["00271342"]
        assert el.xpath("m:classification[@authority='ndc']/text()", namespaces=ns) == [
            "779.12"]
        locs = el.findall("m:location", ns)
        assert [lo.findtext("m:physicalLocation", namespaces=ns) for lo in locs] == [
            "iizuka", "komae"]
        copies = locs[0].findall("m:holdingSimple/m:copyInformation", ns)
        assert [c.findtext("m:subLocation", namespaces=ns) for c in copies] == [
            "chikuho", "honkan"]
        assert copies[0].findtext("m:shelfLocator", namespaces=ns) == "779/A12"
        assert el.xpath("m:recordInfo/m:recordIdentifier/@source", namespaces=ns) == [
            "unioncat", "iizuka", "komae"]

    def test_json(self, jrec):
        text = render_record(jrec, JSON).text
        validate_record(text, JSON.uri, "2.0")
        obj = json.loads(text)
        assert obj == marc_json(jrec.marc)
        assert obj["fields"][0] == {"001": "   00271342 "}
        f245 = next(f["245"] for f in obj["fields"] if "245" in f)
        assert f245["ind1"] == "1" and f245["subfields"][1] == {
            "a": "Dentō wagei kōdan no subete /"}

    def test_unrenderable_record_gives_surrogate(self):
        rr = render_record(_Broken(), MARCXML)
        assert rr.diagnostic.code == 67 and rr.diagnostic.details == "99"
        assert render_record(None, DC).diagnostic.code == 65

    def test_marcxml_rendering_grows_linearly(self):
        """Rendering cost per record does not grow with the number of records (speed
        itself is measured in bench/, not asserted): CPU time of this process for 30
        and for 300 records, so another process's load does not count."""
        def cpu(n: int) -> float:
            recs = [japanese_record() for _ in range(n)]
            t = time.process_time()
            for r in recs:
                render_record(r, MARCXML).as_string()
            return time.process_time() - t

        cpu(30)                                   # warm up
        small, large = min(cpu(30) for _ in range(3)), min(cpu(300) for _ in range(3))
        assert large < 30 * max(small, 1e-3), (small, large)


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------
def _records_of(tree, version):
    ns = SRU2 if version == "2.0" else SRW
    return tree.getroot().findall(f"{{{ns}}}records/{{{ns}}}record")


class TestSearchRetrieveResponse:
    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize("schema", ["marcxml", "dc", "mods", "json"])
    @pytest.mark.parametrize("packing", ["xml", "string"])
    def test_every_schema_and_packing(self, version, schema, packing, jrec):
        if schema == "json" and packing == "xml":
            pytest.skip("json travels as a string only")
        name = "recordXMLEscaping" if version == "2.0" else "recordPacking"
        req = sr(version, recordSchema=schema, maximumRecords="3", **{name: packing})
        body = p.searchretrieve_response(
            req, total=3, records=[jrec, ndl_record(), control_char_record()], start=1,
            result_set_id="rs1", result_set_ttl=300, next_position=None, facets=None)
        tree = validate_sru(body, version)
        recs = _records_of(tree, version)
        assert len(recs) == 3
        ns = SRU2 if version == "2.0" else SRW
        assert [r.findtext(f"{{{ns}}}recordPosition") for r in recs] == ["1", "2", "3"]
        assert {r.findtext(f"{{{ns}}}recordSchema") for r in recs} == {
            resolve_schema(schema).uri}
        assert "伝統話芸" in body.decode("utf-8")

    @pytest.mark.parametrize("version", VERSIONS)
    def test_next_record_position_and_result_set(self, version, jrec):
        req = sr(version, startRecord="1", maximumRecords="1")
        body = p.searchretrieve_response(
            req, total=2, records=[jrec], start=1, result_set_id="rs-7",
            result_set_ttl=300, next_position=p.next_record_position(1, 1, 2), facets=None)
        root = validate_sru(body, version).getroot()
        ns = SRU2 if version == "2.0" else SRW
        assert root.findtext(f"{{{ns}}}numberOfRecords") == "2"
        assert root.findtext(f"{{{ns}}}nextRecordPosition") == "2"
        assert root.findtext(f"{{{ns}}}resultSetId") == "rs-7"
        if version == "2.0":
            assert root.findtext(f"{{{ns}}}resultSetTTL") == "300"
            assert root.find(f"{{{ns}}}resultSetIdleTime") is None
            assert root.findtext(f"{{{ns}}}resultCountPrecision").endswith("/exact")
            echo = root.find(f"{{{ns}}}echoedSearchRetrieveRequest")
            assert echo.findtext(f"{{{ns}}}query") == "dc.title = 図書館"
            assert echo.findtext(f"{{{ns}}}maximumRecords") == "1"
        else:
            assert root.findtext(f"{{{ns}}}resultSetIdleTime") == "300"
            assert root.find(f"{{{ns}}}echoedSearchRetrieveRequest") is None
        # the last page: no nextRecordPosition
        req = sr(version, startRecord="2", maximumRecords="1")
        assert p.next_record_position(2, 1, 2) is None
        body = p.searchretrieve_response(req, total=2, records=[jrec], start=2,
                                         result_set_id=None, result_set_ttl=None,
                                         next_position=None, facets=None)
        root = validate_sru(body, version).getroot()
        assert root.find(f"{{{ns}}}nextRecordPosition") is None
        assert root.find(f"{{{ns}}}resultSetId") is None
        assert _records_of(etree.ElementTree(root), version)[0].findtext(
            f"{{{ns}}}recordPosition") == "2"

    @pytest.mark.parametrize("version", VERSIONS)
    def test_zero_hits_and_nonfatal_diagnostic(self, version):
        req = sr(version, startRecord="5")
        body = p.searchretrieve_response(
            req, total=3, records=[], start=5, result_set_id=None, result_set_ttl=None,
            next_position=None, facets=None,
            diagnostics=[Diagnostic(61, "5", "first record position 5 is beyond 3 hits")])
        root = validate_sru(body, version).getroot()
        ns = SRU2 if version == "2.0" else SRW
        assert root.findtext(f"{{{ns}}}numberOfRecords") == "3"
        assert root.find(f"{{{ns}}}records") is None
        dns = p.SRU2_DIAG_NS if version == "2.0" else p.SRW_DIAG_NS
        d = root.find(f"{{{ns}}}diagnostics/{{{dns}}}diagnostic")
        assert d.findtext(f"{{{dns}}}uri") == "info:srw/diagnostic/1/61"
        assert d.findtext(f"{{{dns}}}details") == "5"

    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize("packing", ["xml", "string"])
    def test_surrogate_diagnostics_never_drop_records(self, version, packing, jrec):
        name = "recordXMLEscaping" if version == "2.0" else "recordPacking"
        req = sr(version, recordSchema="mods", **{name: packing})
        body = p.searchretrieve_response(
            req, total=3, records=[jrec, _Broken(), None], start=1, result_set_id=None,
            result_set_ttl=None, next_position=None, facets=None)
        tree = validate_sru(body, version)
        recs = _records_of(tree, version)
        ns = SRU2 if version == "2.0" else SRW
        assert [r.findtext(f"{{{ns}}}recordSchema") for r in recs] == [
            MODS.uri, p.DIAGNOSTIC_RECORD_SCHEMA, p.DIAGNOSTIC_RECORD_SCHEMA]
        assert "info:srw/diagnostic/1/67" in body.decode()
        assert "info:srw/diagnostic/1/65" in body.decode()

    def test_prerendered_records(self, jrec):
        req = sr("1.2", recordSchema="dc")
        rendered = [render_record(jrec, DC),
                    RenderedRecord(None, diagnostic=Diagnostic(64, "42"))]
        body = p.searchretrieve_response(req, total=2, records=rendered, start=1,
                                         result_set_id=None, result_set_ttl=None,
                                         next_position=None, facets=None)
        validate_sru(body, "1.2")
        assert "info:srw/diagnostic/1/64" in body.decode()

    def test_facets_2_0(self, jrec):
        req = sr("2.0", query="dc.title = 図書館 sortby dc.date/sort.descending",
                 facetLimit="10:dc.language,5:bath.possessingInstitution")
        defs = fake_config().facets
        body = p.searchretrieve_response(
            req, total=12, records=[jrec], start=1, result_set_id="r", result_set_ttl=60,
            next_position=2, facet_defs=defs,
            facets={"language": [FacetValue("jpn", "jpn", 9), FacetValue("eng", "eng", 3)],
                    "library": [FacetValue("iizuka", "Iizuka City Library", 7)],
                    "subject": []})
        root = validate_sru(body, "2.0").getroot()
        fr = root.find(f"{{{SRU2}}}facetedResults")
        assert fr is not None and fr.getprevious().tag == f"{{{SRU2}}}resultCountPrecision"
        F = p.FACET_NS
        facets = fr.findall(f"{{{F}}}facet")
        assert [f.findtext(f"{{{F}}}index") for f in facets] == [
            "dc.language", "bath.possessingInstitution"]
        assert facets[0].findtext(f"{{{F}}}facetDisplayLabel") == "Language"
        terms = facets[0].findall(f"{{{F}}}terms/{{{F}}}term")
        assert [(t.findtext(f"{{{F}}}actualTerm"), t.findtext(f"{{{F}}}count"))
                for t in terms] == [("jpn", "9"), ("eng", "3")]
        assert terms[0].findtext(f"{{{F}}}query") == (
            '(dc.title = 図書館) and dc.language == "jpn" sortby dc.date/sort.descending')
        lib = facets[1].find(f"{{{F}}}terms/{{{F}}}term")
        assert lib.findtext(f"{{{F}}}actualTerm") == "Iizuka City Library"

    def test_stylesheet_processing_instruction(self, jrec):
        req = sr("1.2", stylesheet='/xsl/sru.xsl?a=1&b="2"')
        body = p.searchretrieve_response(req, total=0, records=[], start=1,
                                         result_set_id=None, result_set_ttl=None,
                                         next_position=None, facets=None)
        validate_sru(body, "1.2")
        assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet ')
        assert b'href="/xsl/sru.xsl?a=1&amp;b=&quot;2&quot;"' in body


class TestDiagnosticResponses:
    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize("operation", ["searchRetrieve", "scan", "explain", None])
    def test_diagnostic_only(self, version, operation):
        err = SRUDiagnosticError(7, "query", version=version)
        body = p.diagnostic_response(operation, version, err)
        root = validate_sru(body, version).getroot()
        dns = p.SRU2_DIAG_NS if version == "2.0" else p.SRW_DIAG_NS
        assert root.findtext(f".//{{{dns}}}uri") == "info:srw/diagnostic/1/7"
        assert root.findtext(f".//{{{dns}}}details") == "query"
        assert root.findtext(f".//{{{dns}}}message") == "Mandatory parameter not supplied"
        local = etree.QName(root).localname
        assert local == ("scanResponse" if operation == "scan" else "searchRetrieveResponse")

    @pytest.mark.parametrize("version", VERSIONS)
    def test_explain_diagnostic_with_record(self, version):
        record = explain_record(fake_config(), p.SRUSettings())
        body = p.diagnostic_response("explain", version, Diagnostic(235, "nosuch"),
                                     explain_record=record)
        root = validate_sru(body, version).getroot()
        assert etree.QName(root).localname == "explainResponse"
        assert b"info:srw/diagnostic/1/235" in body

    def test_every_parse_error_gives_a_valid_response(self):
        cases = [
            {"version": ["1.2"], "query": ["x"]},
            {"operation": ["searchRetrieve"], "version": ["1.0"]},
            {"operation": ["delete"], "version": ["1.1"]},
            {"version": ["1.1"], "operation": ["scan"]},
            {"query": ["x"], "startRecord": ["0"]},
            {"query": ["x"], "recordSchema": ["nope"]},
            {"query": ["x", "y"]},
            {"scanClause": ["a"], "responsePosition": ["99"]},
        ]
        for params in cases:
            with pytest.raises(SRUDiagnosticError) as info:
                p.parse_request(params)
            err = info.value
            body = p.error_response(err)
            validate_sru(body, err.version or "2.0")


class TestScanResponse:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_scan(self, version):
        q = {"version": [version], "scanClause": ["dc.title = 図書"],
             "responsePosition": ["2"], "maximumTerms": ["3"]}
        if version != "2.0":
            q["operation"] = ["scan"]
        req = p.parse_request(q)
        terms = [ScanTerm("としょ", "図書", 4), ScanTerm("としょかん", "図書館", 12),
                 ScanTerm("としょかんがく", "", 2)]
        body = p.scan_response(req, terms)
        root = validate_sru(body, version).getroot()
        ns = p.SRU2_SCAN_NS if version == "2.0" else SRW
        assert etree.QName(root).namespace == ns
        got = [(t.findtext(f"{{{ns}}}value"), t.findtext(f"{{{ns}}}numberOfRecords"),
                t.findtext(f"{{{ns}}}displayTerm"))
               for t in root.findall(f"{{{ns}}}terms/{{{ns}}}term")]
        assert got == [("としょ", "4", "図書"), ("としょかん", "12", "図書館"),
                       ("としょかんがく", "2", None)]

    @pytest.mark.parametrize("version", VERSIONS)
    def test_empty_scan(self, version):
        req = p.ScanRequest(version, "dc.title = zzz")
        body = p.scan_response(req, [], [Diagnostic(16, "dc.nosuch")])
        validate_sru(body, version)


# --------------------------------------------------------------------------
# Explain
# --------------------------------------------------------------------------
def fake_config():
    """An IndexConfig look-alike with the attributes explain/protocol use."""
    D = SimpleNamespace
    sets = {"cql": "info:srw/cql-context-set/1/cql-v1.2",
            "dc": "info:srw/cql-context-set/1/dc-v1.1",
            "bath": "http://zing.z3950.org/cql/bath/2.0/",
            "local": "info:unioncat/cql-context-set/local-1"}
    indexes = {
        "cql.serverChoice": D(name="cql.serverChoice", fields=("title",), title="Anywhere",
                              sort=None),
        "dc.title": D(name="dc.title", fields=("title",), title="Title", sort="title"),
        "dc.subject": D(name="dc.subject", fields=("subject",), title="Subject", sort=None),
        "dc.date": D(name="dc.date", fields=("date",), title="Year", sort="date"),
        "dc.language": D(name="dc.language", fields=("language",), title="Language",
                         sort=None),
        "bath.possessingInstitution": D(name="bath.possessingInstitution",
                                        fields=("library",), title="Library", sort=None),
        "local.ndc": D(name="local.ndc", fields=("ndc",), title="NDC", sort=None),
    }
    facets = {
        "language": D(name="language", field="language", index="dc.language",
                      title="Language"),
        "library": D(name="library", field="library", index="bath.possessingInstitution",
                     title="Library"),
        "subject": D(name="subject", field="subject", index="dc.subject", title="Subject"),
    }
    return D(sets=sets, indexes=indexes, facets=facets, sort={"title": "title",
                                                             "date": "date"},
             server_choice="cql.serverChoice")


class TestExplain:
    def test_explain_record(self):
        settings = p.SRUSettings(host="opac.example.jp", port=8080, path="/sru",
                                 database_title="Union catalog 総合目録")
        el = explain_record(fake_config(), settings,
                            relations_by_index={"dc.date": ["=", "<", "<=", ">", ">=", "<>",
                                                            "within", "=="]})
        validate_record(el, ZEEREX_NS, "1.2")
        Z = {"z": ZEEREX_NS}
        assert el.findtext("z:serverInfo/z:host", namespaces=Z) == "opac.example.jp"
        assert el.findtext("z:serverInfo/z:database", namespaces=Z) == "sru"
        assert el.findtext("z:databaseInfo/z:title", namespaces=Z) == "Union catalog 総合目録"
        assert el.xpath("z:indexInfo/z:set/@name", namespaces=Z) == ["cql", "dc", "bath",
                                                                     "local"]
        names = el.xpath("z:indexInfo/z:index/z:map/z:name", namespaces=Z)
        assert [(n.get("set"), n.text) for n in names][:2] == [("cql", "serverChoice"),
                                                              ("dc", "title")]
        assert el.xpath("z:indexInfo/z:index[@id='dc.title']/@sort", namespaces=Z) == ["true"]
        assert el.xpath("z:indexInfo/z:index[@id='dc.subject']/@sort", namespaces=Z) == [
            "false"]
        date_rel = el.xpath("z:indexInfo/z:index[@id='dc.date']/z:configInfo/z:supports"
                            "[@type='relation']/text()", namespaces=Z)
        assert "adj" not in date_rel and "<=" in date_rel
        assert el.xpath("z:schemaInfo/z:schema/@identifier", namespaces=Z) == [
            MARCXML.uri, DC.uri, MODS.uri, JSON.uri, OPAC.uri]
        rel = el.xpath("z:configInfo/z:supports[@type='relation']/text()", namespaces=Z)
        assert set(rel) == {"=", "==", "exact", "adj", "all", "any", "<", "<=", ">", ">=",
                            "<>", "within"}
        assert el.xpath("z:configInfo/z:default[@type='numberOfRecords']/text()",
                        namespaces=Z) == ["10"]
        assert el.xpath("z:configInfo/z:setting[@type='maximumRecords']/text()",
                        namespaces=Z) == ["100"]
        assert el.xpath("z:configInfo/z:supports[@type='facet']/text()", namespaces=Z) == [
            "dc.language", "bath.possessingInstitution", "dc.subject"]
        assert set(el.xpath("z:configInfo/z:supports[@type='relationModifier']/text()",
                            namespaces=Z)) == {"ignoreCase", "respectCase"}

    def test_explain_with_the_real_index_config(self):
        index_config = pytest.importorskip("indexers.index_config")
        config = index_config.load_index_config()
        el = explain_record(config, p.SRUSettings())
        validate_record(el, ZEEREX_NS, "2.0")
        ids = el.xpath("z:indexInfo/z:index/@id", namespaces={"z": ZEEREX_NS})
        assert set(ids) == set(config.indexes)

    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize("packing", ["xml", "string"])
    def test_explain_response(self, version, packing):
        params = {"version": [version]}
        if version == "2.0":
            params["recordXMLEscaping"] = [packing]
        else:
            params["operation"] = ["explain"]
            params["recordPacking"] = [packing]
        req = p.parse_request(params)
        record = explain_record(fake_config(), p.SRUSettings())
        body = p.explain_response(req, record)
        root = validate_sru(body, version).getroot()
        ns = SRU2 if version == "2.0" else SRW
        assert root.findtext(f"{{{ns}}}record/{{{ns}}}recordSchema") == ZEEREX_NS
        # the cached record is copied, not moved into the response
        assert record.getparent() is None
        assert p.explain_response(req, etree.tostring(record)) == body


# ----------------------------------------------------------------------------- the HTTP binding's parameters

def test_decode_form_reads_percent_escapes_raw_utf8_and_plus():
    raw = "query=dc.title%3D図書館+x&maximumRecords=3&empty=&bare&query=%E5%9B%B3".encode()
    assert decode_form(raw) == {"query": ["dc.title=図書館 x", "図"], "maximumRecords": ["3"], "empty": [""],
                                "bare": [""]}
    assert merge({"a": ["1"]}, {"a": ["2"], "b": ["3"]}) == {"a": ["1", "2"], "b": ["3"]}


@pytest.mark.parametrize("raw,details,version,operation", [
    (b"version=1.2&operation=scan&scanClause=%FF", "scanClause", "1.2", "scan"),
    (b"query=%ED%A0%80", "query", None, "searchRetrieve"),
    (b"version=1.1&operation=searchRetrieve&q\xff=1", "q\ufffd", "1.1", "searchRetrieve"),
    (b"version=9&query=%C3", "query", None, "searchRetrieve"),
])
def test_decode_form_refuses_what_is_not_utf8(raw, details, version, operation):
    with pytest.raises(SRUDiagnosticError) as e:
        decode_form(raw)
    assert (e.value.code, e.value.details, e.value.version, e.value.operation) == (6, details, version, operation)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.lists(st.sampled_from([
    b"version=", b"1.1", b"1.2", b"2.0", b"&", b"=", b"operation=", b"searchRetrieve", b"scan", b"explain",
    b"query=", b"x-pquery=", b"queryType=", b"pqf", b"cql", b"scanClause=", b"startRecord=", b"maximumRecords=",
    b"9999999999999999999999", b"-1", b"%FF", b"%E5%9B%B3", b"+", b"sortKeys=", b"facetLimit=", b"recordSchema=",
    b"recordPacking=", b"resultSetTTL=", b"responsePosition=", b"maximumTerms=", b"stylesheet=", b"@attr"]),
    max_size=20).map(b"".join))
def test_any_bytes_give_a_request_or_a_diagnostic(raw):
    """The SRU binding and request parser together: whatever a client sends, the
    answer is a parsed request or an SRU diagnostic, never another exception."""
    try:
        req = p.parse_request(decode_form(raw))
    except SRUDiagnosticError as e:
        assert 1 <= e.code < 1000 and e.version in (None, *p.SUPPORTED_VERSIONS)
        p.error_response(e)
        return
    assert req.version in p.SUPPORTED_VERSIONS
    if isinstance(req, p.SearchRetrieveRequest):
        assert req.query and req.query_type in ("cql", "pqf") and req.start_record >= 1


def test_x_pquery_and_query_type_pqf():
    r = p.parse_request({"version": ["1.2"], "operation": ["searchRetrieve"], "x-pquery": ["@attr 1=4 x"]})
    assert (r.query, r.query_type) == ("@attr 1=4 x", "pqf")
    r = p.parse_request({"x-pquery": ["@attr 1=4 x"]})                       # 2.0 infers searchRetrieve
    assert (r.operation, r.query_type, r.echo["queryType"]) == ("searchRetrieve", "pqf", "pqf")
    r = p.parse_request({"query": ["@attr 1=4 x"], "queryType": ["PQF"]})
    assert r.query_type == "pqf"
    r = p.parse_request({"query": ["dc.title=x"], "x-pquery": ["@attr 1=4 y"]})   # query wins
    assert (r.query, r.query_type) == ("dc.title=x", "cql")
    with pytest.raises(SRUDiagnosticError) as e:
        p.parse_request({"version": ["1.2"], "operation": ["searchRetrieve"], "x-pquery": ["a", "b"]})
    assert (e.value.code, e.value.details) == (6, "x-pquery")


def test_integers_of_any_length():
    r = p.parse_request({"query": ["x"], "startRecord": ["9" * 60], "maximumRecords": ["9" * 60]})
    assert r.start_record >= 10 ** 18 and r.maximum_records == p.SRUSettings().max_maximum_records
    with pytest.raises(SRUDiagnosticError):
        p.parse_request({"query": ["x"], "startRecord": ["-" + "9" * 60]})
