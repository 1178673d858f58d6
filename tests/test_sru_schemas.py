"""The project's SRU/record XML Schemas (sru/schemas/) and the reusable checker
tests/sru_validation.py: they accept well-formed responses written by hand
from the specifications, and reject wrong element order, wrong namespaces and
missing mandatory elements -- otherwise the protocol tests would prove little.
"""
from __future__ import annotations

import pytest

from sru_validation import load_schema, validate_record, validate_sru

DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
SRW = 'xmlns:srw="http://www.loc.gov/zing/srw/"'
SRWD = 'xmlns:d="http://www.loc.gov/zing/srw/diagnostic/"'
SRU = 'xmlns:sru="http://docs.oasis-open.org/ns/search-ws/sruResponse"'
SRUD = 'xmlns:d="http://docs.oasis-open.org/ns/search-ws/diagnostic"'
FACET = 'xmlns:f="http://docs.oasis-open.org/ns/search-ws/facetedResults"'
SCAN = 'xmlns:scan="http://docs.oasis-open.org/ns/search-ws/scan"'

MARC = ('<record xmlns="http://www.loc.gov/MARC21/slim">'
        '<leader>00000nam a2200000 a 4500</leader>'
        '<controlfield tag="001">x1</controlfield>'
        '<datafield tag="245" ind1="0" ind2="0"><subfield code="a">図書館</subfield>'
        '</datafield></record>')


def b(text: str) -> bytes:
    return (DECL + text).encode("utf-8")


def rejects(xml: str, version: str) -> str:
    with pytest.raises(AssertionError) as info:
        validate_sru(b(xml), version)
    return str(info.value)


# ---------------------------------------------------------------- SRU 1.1/1.2
SR12 = (f'<srw:searchRetrieveResponse {SRW}>'
        '<srw:version>{v}</srw:version><srw:numberOfRecords>1</srw:numberOfRecords>'
        '<srw:resultSetId>a</srw:resultSetId><srw:resultSetIdleTime>60</srw:resultSetIdleTime>'
        '<srw:records><srw:record><srw:recordSchema>info:srw/schema/1/marcxml-v1.1'
        '</srw:recordSchema><srw:recordPacking>xml</srw:recordPacking>'
        '<srw:recordData>' + MARC + '</srw:recordData>'
        '<srw:recordPosition>1</srw:recordPosition></srw:record></srw:records>'
        '</srw:searchRetrieveResponse>')


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_valid_1x_response(version):
    tree = validate_sru(b(SR12.replace("{v}", version)), version)
    assert tree.getroot().findtext("{http://www.loc.gov/zing/srw/}numberOfRecords") == "1"


def test_1x_wrong_order():
    bad = SR12.replace("{v}", "1.2").replace(
        "<srw:resultSetId>a</srw:resultSetId><srw:resultSetIdleTime>60</srw:resultSetIdleTime>",
        "<srw:resultSetIdleTime>60</srw:resultSetIdleTime><srw:resultSetId>a</srw:resultSetId>")
    assert "resultSetIdleTime" in rejects(bad, "1.2")


def test_1x_missing_mandatory():
    assert "numberOfRecords" in rejects(
        SR12.replace("{v}", "1.2").replace(
            "<srw:numberOfRecords>1</srw:numberOfRecords>", ""), "1.2")
    assert rejects(SR12.replace("<srw:version>{v}</srw:version>", ""), "1.2")
    # recordPacking is mandatory in a 1.x record
    assert rejects(SR12.replace("{v}", "1.2").replace(
        "<srw:recordPacking>xml</srw:recordPacking>", ""), "1.2")


def test_1x_wrong_namespace_and_version():
    assert rejects(SR12.replace("{v}", "1.2").replace(
        "http://www.loc.gov/zing/srw/", "http://www.loc.gov/zing/srw/v1.0/"), "1.2")
    assert rejects(SR12.replace("{v}", "2.0"), "1.2")  # 2.0 is not a 1.x version
    # the version element must say the version being checked
    with pytest.raises(AssertionError):
        validate_sru(b(SR12.replace("{v}", "1.1")), "1.2")


def test_1x_2_0_elements_rejected():
    bad = SR12.replace("{v}", "1.2").replace(
        "</srw:searchRetrieveResponse>",
        "<srw:resultCountPrecision>x</srw:resultCountPrecision></srw:searchRetrieveResponse>")
    assert rejects(bad, "1.2")


def test_1x_diagnostic_shape():
    ok = (f'<srw:searchRetrieveResponse {SRW} {SRWD}><srw:version>1.2</srw:version>'
          '<srw:numberOfRecords>0</srw:numberOfRecords><srw:diagnostics><d:diagnostic>'
          '<d:uri>info:srw/diagnostic/1/7</d:uri><d:details>query</d:details>'
          '<d:message>m</d:message></d:diagnostic></srw:diagnostics>'
          '</srw:searchRetrieveResponse>')
    validate_sru(b(ok), "1.2")
    # details before uri
    assert rejects(ok.replace("<d:uri>info:srw/diagnostic/1/7</d:uri><d:details>query</d:details>",
                              "<d:details>query</d:details><d:uri>info:srw/diagnostic/1/7</d:uri>"),
                   "1.2")
    # the 2.0 diagnostic namespace in a 1.2 response
    assert rejects(ok.replace("http://www.loc.gov/zing/srw/diagnostic/",
                              "http://docs.oasis-open.org/ns/search-ws/diagnostic"), "1.2")
    # missing uri
    assert rejects(ok.replace("<d:uri>info:srw/diagnostic/1/7</d:uri>", ""), "1.2")


def test_1x_scan_and_explain_shapes():
    scan = (f'<srw:scanResponse {SRW}><srw:version>1.2</srw:version><srw:terms><srw:term>'
            '<srw:value>a</srw:value><srw:numberOfRecords>3</srw:numberOfRecords>'
            '<srw:displayTerm>A</srw:displayTerm></srw:term></srw:terms></srw:scanResponse>')
    validate_sru(b(scan), "1.2")
    assert rejects(scan.replace("<srw:value>a</srw:value><srw:numberOfRecords>3</srw:numberOfRecords>",
                                "<srw:numberOfRecords>3</srw:numberOfRecords><srw:value>a</srw:value>"),
                   "1.2")
    explain = (f'<srw:explainResponse {SRW}><srw:version>1.2</srw:version>'
               '</srw:explainResponse>')
    assert "record" in rejects(explain, "1.2")


# ---------------------------------------------------------------- SRU 2.0
SR20 = (f'<sru:searchRetrieveResponse {SRU} {FACET}>'
        '<sru:numberOfRecords>1</sru:numberOfRecords><sru:resultSetId>a</sru:resultSetId>'
        '<sru:records><sru:record><sru:recordSchema>info:srw/schema/1/marcxml-v1.1'
        '</sru:recordSchema><sru:recordXMLEscaping>xml</sru:recordXMLEscaping>'
        '<sru:recordData>' + MARC + '</sru:recordData>'
        '<sru:recordPosition>1</sru:recordPosition></sru:record></sru:records>'
        '<sru:resultSetTTL>60</sru:resultSetTTL>'
        '<sru:resultCountPrecision>info:srw/vocabulary/resultCountPrecision/1/exact'
        '</sru:resultCountPrecision>'
        '<sru:facetedResults><f:facet><f:facetDisplayLabel>Language</f:facetDisplayLabel>'
        '<f:index>dc.language</f:index><f:terms><f:term><f:actualTerm>jpn</f:actualTerm>'
        '<f:query>dc.language == jpn</f:query><f:count>1</f:count></f:term></f:terms>'
        '</f:facet></sru:facetedResults></sru:searchRetrieveResponse>')


def test_valid_2_0_response():
    validate_sru(b(SR20), "2.0")


def test_2_0_wrong_order():
    # resultSetTTL belongs after the 1.2-era elements
    bad = SR20.replace("<sru:resultSetTTL>60</sru:resultSetTTL>", "").replace(
        "<sru:resultSetId>a</sru:resultSetId>",
        "<sru:resultSetId>a</sru:resultSetId><sru:resultSetTTL>60</sru:resultSetTTL>")
    assert rejects(bad, "2.0")
    # facet term: count before actualTerm
    bad = SR20.replace("<f:actualTerm>jpn</f:actualTerm><f:query>dc.language == jpn</f:query>"
                       "<f:count>1</f:count>",
                       "<f:count>1</f:count><f:actualTerm>jpn</f:actualTerm>")
    assert rejects(bad, "2.0")


def test_2_0_wrong_namespace():
    # facet children in the response namespace instead of facetedResults
    bad = SR20.replace("<f:facet>", "<sru:facet>").replace("</f:facet>", "</sru:facet>")
    assert rejects(bad, "2.0")
    # a 1.2 response checked as 2.0
    assert rejects(SR12.replace("{v}", "1.2"), "2.0")
    # 1.x recordPacking values in a 2.0 record
    assert rejects(SR20.replace("<sru:recordXMLEscaping>xml</sru:recordXMLEscaping>",
                                "<sru:recordPacking>xml</sru:recordPacking>"), "2.0")


def test_2_0_removed_and_missing_elements():
    # version and resultSetIdleTime were removed in 2.0
    assert rejects(SR20.replace("<sru:numberOfRecords>",
                                "<sru:version>2.0</sru:version><sru:numberOfRecords>"), "2.0")
    assert rejects(SR20.replace("<sru:resultSetTTL>60</sru:resultSetTTL>",
                                "<sru:resultSetIdleTime>60</sru:resultSetIdleTime>"), "2.0")
    assert rejects(SR20.replace("<sru:numberOfRecords>1</sru:numberOfRecords>", ""), "2.0")
    assert rejects(SR20.replace("<sru:recordSchema>info:srw/schema/1/marcxml-v1.1"
                                "</sru:recordSchema>", ""), "2.0")
    # a facet needs its terms
    assert rejects(SR20.replace("<f:terms><f:term><f:actualTerm>jpn</f:actualTerm>"
                                "<f:query>dc.language == jpn</f:query><f:count>1</f:count>"
                                "</f:term></f:terms>", ""), "2.0")


def test_2_0_scan_namespace():
    ok = (f'<scan:scanResponse {SCAN}><scan:terms><scan:term><scan:value>a</scan:value>'
          '<scan:numberOfRecords>2</scan:numberOfRecords></scan:term></scan:terms>'
          '</scan:scanResponse>')
    validate_sru(b(ok), "2.0")
    assert rejects(ok.replace("<scan:terms>", "<scan:version>2.0</scan:version><scan:terms>"),
                   "2.0")
    assert rejects(ok.replace('<scan:value>a</scan:value>', ''), "2.0")


# ---------------------------------------------------------------- record contents
def test_record_contents_are_checked_inside_responses():
    bad_marc = MARC.replace('<controlfield tag="001">x1</controlfield>', "").replace(
        "</record>", '<controlfield tag="001">x1</controlfield></record>')
    with pytest.raises(AssertionError):
        validate_sru(b(SR12.replace("{v}", "1.2").replace(MARC, bad_marc)), "1.2")
    # and when packed as a string
    escaped = bad_marc.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    string_packed = SR12.replace("{v}", "1.2").replace(
        "<srw:recordPacking>xml", "<srw:recordPacking>string").replace(MARC, escaped)
    with pytest.raises(AssertionError):
        validate_sru(b(string_packed), "1.2")
    good = SR12.replace("{v}", "1.2").replace(
        "<srw:recordPacking>xml", "<srw:recordPacking>string").replace(
        MARC, MARC.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    validate_sru(b(good), "1.2")


@pytest.mark.parametrize("bad,why", [
    (MARC.replace("http://www.loc.gov/MARC21/slim", "http://www.loc.gov/MARC21/fat"),
     "namespace"),
    (MARC.replace("<leader>00000nam a2200000 a 4500</leader>", ""), "no leader"),
    (MARC.replace('ind1="0"', 'ind1="00"'), "indicator"),
    (MARC.replace('tag="245"', 'tag="001"'), "control tag on a datafield"),
    (MARC.replace('<subfield code="a">', '<subfield code="ab">'), "subfield code"),
])
def test_marcxml_schema_rejects(bad, why):
    with pytest.raises(AssertionError):
        validate_record(bad, "info:srw/schema/1/marcxml-v1.1", "1.2")


def test_dc_schema():
    ok = ('<srw_dc:dc xmlns:srw_dc="info:srw/schema/1/dc-schema" '
          'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>t</dc:title>'
          '<dc:creator>c</dc:creator><dc:title>t2</dc:title></srw_dc:dc>')
    validate_record(ok, "info:srw/schema/1/dc-v1.1", "1.2")
    with pytest.raises(AssertionError):  # not a DC element
        validate_record(ok.replace("dc:creator", "dc:author"), "info:srw/schema/1/dc-v1.1",
                        "1.2")
    with pytest.raises(AssertionError):  # DC elements in the container's namespace
        validate_record(ok.replace('xmlns:dc="http://purl.org/dc/elements/1.1/"',
                                   'xmlns:dc="info:srw/schema/1/dc-schema"'),
                        "info:srw/schema/1/dc-v1.1", "1.2")


def test_mods_schema():
    ok = ('<mods xmlns="http://www.loc.gov/mods/v3" version="3.4"><titleInfo><title>t</title>'
          '</titleInfo><name type="personal"><namePart>n</namePart></name>'
          '<identifier type="isbn">1</identifier></mods>')
    validate_record(ok, "info:srw/schema/1/mods-v3.4", "2.0")
    with pytest.raises(AssertionError):  # order
        validate_record(ok.replace('<name type="personal"><namePart>n</namePart></name>', "")
                        .replace("</mods>", '<name type="personal"><namePart>n</namePart>'
                                            '</name></mods>'),
                        "info:srw/schema/1/mods-v3.4", "2.0")
    with pytest.raises(AssertionError):  # subTitle before title
        validate_record(ok.replace("<title>t</title>", "<subTitle>s</subTitle><title>t</title>"),
                        "info:srw/schema/1/mods-v3.4", "2.0")


ZEEREX = ('<explain xmlns="http://explain.z3950.org/dtd/2.0/"><serverInfo protocol="SRU">'
          '<host>h</host><port>80</port><database>db</database></serverInfo>'
          '<indexInfo><set name="dc" identifier="info:srw/cql-context-set/1/dc-v1.1"/>'
          '<index><title>Title</title><map><name set="dc">title</name></map></index>'
          '</indexInfo><configInfo><default type="numberOfRecords">10</default>'
          '<supports type="relation">=</supports></configInfo></explain>')


def test_zeerex_schema():
    validate_record(ZEEREX, "http://explain.z3950.org/dtd/2.0/", "1.2")
    with pytest.raises(AssertionError):  # serverInfo needs host, port, database in order
        validate_record(ZEEREX.replace("<host>h</host><port>80</port>",
                                       "<port>80</port><host>h</host>"),
                        "http://explain.z3950.org/dtd/2.0/", "1.2")
    with pytest.raises(AssertionError):  # index without a map
        validate_record(ZEEREX.replace('<map><name set="dc">title</name></map>', ""),
                        "http://explain.z3950.org/dtd/2.0/", "1.2")
    with pytest.raises(AssertionError):  # indexInfo before serverInfo
        validate_record(ZEEREX.replace("<explain xmlns=\"http://explain.z3950.org/dtd/2.0/\">",
                                       "<explain xmlns=\"http://explain.z3950.org/dtd/2.0/\">"
                                       "<indexInfo/>"),
                        "http://explain.z3950.org/dtd/2.0/", "1.2")
    with pytest.raises(AssertionError):  # the ZeeRex 1.x namespace
        validate_record(ZEEREX.replace("dtd/2.0/", "dtd/1.1/"),
                        "http://explain.z3950.org/dtd/2.0/", "1.2")


def test_json_record_check():
    validate_record('{"leader":"00000nam a2200000 a 4500","fields":[{"001":"x"},'
                    '{"245":{"ind1":"0","ind2":"0","subfields":[{"a":"t"}]}}]}',
                    "info:unioncat/schema/marc-in-json-1", "2.0")
    with pytest.raises(AssertionError):
        validate_record('{"leader":"short","fields":[]}',
                        "info:unioncat/schema/marc-in-json-1", "2.0")


def test_unknown_record_schema_is_an_error():
    with pytest.raises(AssertionError):
        validate_record(MARC, "info:srw/schema/1/onix", "1.2")


@pytest.mark.parametrize("name", ["sru-1.2.xsd", "sru-2.0.xsd", "sru-2.0-scan.xsd",
                                  "facetedResults.xsd", "zeerex-2.0.xsd", "marcxml-slim.xsd",
                                  "dc.xsd", "mods-subset.xsd", "srw-diagnostic.xsd",
                                  "sru-2.0-diagnostic.xsd"])
def test_schemas_compile(name):
    assert load_schema(name) is not None
