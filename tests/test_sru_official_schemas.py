"""SRU 2.0 responses against the official OASIS schemas (../shared/standards/sru2/),
which keep what the project's own schemas (sru/schemas/) leave out: the xs:any
extension points and the echoed request.  Every SRU test validates 2.0
responses against them too (tests/sru_validation.py) when the folder is there;
this module goes through the kinds of response one by one, and says clearly
when the folder is missing instead of passing silently."""
from __future__ import annotations

import pytest
from lxml import etree

from sru_validation import OFFICIAL_SRU2_DIR, validate_official_2_0, validate_sru

pytestmark = pytest.mark.skipif(
    not (OFFICIAL_SRU2_DIR / "sruResponse.xsd").is_file(),
    reason=f"the official SRU 2.0 schemas are not at {OFFICIAL_SRU2_DIR} (../shared/standards/sru2 beside the "
           "checkout); only the project's own schemas were checked")

REQUESTS = [
    {},                                                                   # explain
    {"operation": "explain", "recordXMLEscaping": "string", "stylesheet": "e.xsl"},
    {"query": "dc.title=図書館", "maximumRecords": "2"},
    {"query": "dc.title=図書館", "recordSchema": "dc", "recordXMLEscaping": "string"},
    {"query": "dc.title=図書館", "recordSchema": "mods", "startRecord": "2", "resultSetTTL": "30"},
    {"query": "dc.title=図書館", "recordSchema": "json", "recordXMLEscaping": "string"},
    {"query": "cql.allRecords=1", "facetLimit": "3", "sortKeys": "date,,0", "stylesheet": "s.xsl"},
    {"query": "cql.allRecords=1 sortby dc.date", "sortKeys": "title"},         # non-fatal diagnostic 94
    {"query": "dc.title=図書館", "startRecord": "99999999999999999999999"},     # 61
    {"query": "@attr 1=4 図書館", "queryType": "pqf"},
    {"query": "dc.nothing=x"},                                              # fatal diagnostic
    {"query": "x", "queryType": "nonsense"},
    {"scanClause": "dc.title=toshokan", "maximumTerms": "3", "responsePosition": "2"},
    {"scanClause": "dc.nothing=x"},
]


@pytest.mark.parametrize("params", REQUESTS, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()) or "explain")
def test_every_kind_of_2_0_response_is_valid_against_the_official_schemas(any_demo_server, params):
    status, body, ctype = any_demo_server.get(**params)
    assert status == 200 and "xml" in ctype
    tree = validate_sru(body, "2.0")                       # own schemas, records, and the official one
    assert validate_official_2_0(tree)


def test_the_official_schemas_do_catch_a_broken_response():
    """The check can fail: an element out of the official sequence is refused."""
    bad = (b'<sru:searchRetrieveResponse xmlns:sru="http://docs.oasis-open.org/ns/search-ws/sruResponse">'
           b'<sru:resultSetId>x</sru:resultSetId><sru:numberOfRecords>1</sru:numberOfRecords>'
           b'</sru:searchRetrieveResponse>')
    with pytest.raises(AssertionError, match="official OASIS schema"):
        validate_official_2_0(etree.ElementTree(etree.fromstring(bad)))
