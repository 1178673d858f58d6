"""z3950.pdu.search_fast: the SearchRequest read straight from its bytes gives what the
generic decoder (BER tree + operations_codec) gives, for every input -- the common shape
(read fast), every other shape (declined: the generic path answers), and mutated bytes
(declined unless the generic path reads the same request)."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_z3950_ber import mutate
from test_z3950_rpn import SMALL, queries
from z3950 import pdu as P
from z3950 import rpn
from z3950.ber import BERError, decode_all
from z3950.pdu.operations_codec import _dec_search_request
from z3950.pdu.search_fast import FAST_MAX_RPN_DEPTH, decode_search_request
from z3950.rpn import APT, AttributeElement, ResultSetRef, RPNOp, RPNQuery

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def generic(data: bytes) -> P.SearchRequest:
    """The reference: the generic BER tree, then the SearchRequest's walk."""
    element = decode_all(data, max_length=max(len(data), 1))
    assert element.tag == P.SEARCH_REQUEST
    return _dec_search_request(element, "utf-8")


def outcome(data: bytes):
    try:
        return generic(data)
    except BERError as e:
        return ("error", str(e))


# -- the common shape: numeric attributes, general terms, and/or/and-not, set names
TEXT = st.text(max_size=12)
ATTR = st.builds(AttributeElement, SMALL, SMALL)
COMMON_APT = st.builds(lambda attrs, term: APT(tuple(attrs), term, "general"), st.lists(ATTR, max_size=4), TEXT)
COMMON_OPERAND = COMMON_APT | COMMON_APT | st.builds(ResultSetRef, TEXT)
COMMON_TREE = st.recursive(COMMON_OPERAND, lambda c: st.builds(
    RPNOp, st.sampled_from(["and", "or", "and-not"]), c, c), max_leaves=8)
ESN = st.none() | TEXT
FIELDS = dict(
    database_names=st.lists(TEXT, min_size=1, max_size=3).map(tuple), result_set_name=TEXT,
    replace_indicator=st.booleans(), small_set_upper_bound=SMALL, large_set_lower_bound=SMALL,
    medium_set_present_number=SMALL, small_set_element_set_names=ESN, medium_set_element_set_names=ESN,
    preferred_record_syntax=st.none() | st.sampled_from(["1.2.840.10003.5.10", "1.2.840.10003.5.109.10",
                                                          "1.2.840.10003.5.101"]),
    reference_id=st.none() | st.binary(max_size=12), rpn_type=st.sampled_from([1, 101]),
)
COMMON = st.builds(P.SearchRequest, st.builds(RPNQuery, st.sampled_from([rpn.BIB1, "1.2.3"]), COMMON_TREE),
                   **FIELDS)


@_SETTINGS
@given(COMMON)
def test_common_shape_is_read_fast_and_equal(req):
    data = P.encode_pdu(req)
    fast = decode_search_request(data)
    assert fast is not None, "the common shape must take the fast path"
    assert fast == generic(data) == req
    assert P.decode_pdu(data) == req


# -- any query the model allows (complex attributes, attribute sets, every term type, prox,
#    database-specific element set names): read fast only when it is in the common shape
ANY_ESN = st.none() | TEXT | st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=2).map(tuple)


@_SETTINGS
@given(st.builds(P.SearchRequest, queries(), **{**FIELDS, "small_set_element_set_names": ANY_ESN}))
def test_any_search_request_same_as_generic(req):
    data = P.encode_pdu(req)
    reference = generic(data)
    fast = decode_search_request(data)
    assert fast is None or fast == reference
    assert P.decode_pdu(data) == reference


def test_the_fast_path_declines_what_it_does_not_read():
    base = P.SearchRequest(query=rpn.parse_pqf("@attr 1=4 history"))
    assert decode_search_request(P.encode_pdu(base)) is not None
    for query in ("@prox 0 1 0 2 k 2 a b", "@attr 1=title history", "@attr gils 1=4 x", "@term numeric 5"):
        data = P.encode_pdu(P.SearchRequest(query=rpn.parse_pqf(query)))
        assert decode_search_request(data) is None, query
        assert P.decode_pdu(data) == generic(data)
    cql = P.encode_pdu(P.SearchRequest(query=P.CQLQuery("dc.title=history")))
    assert decode_search_request(cql) is None
    assert P.decode_pdu(cql).query == P.CQLQuery("dc.title=history")
    deep = rpn.parse_pqf("@and " * (FAST_MAX_RPN_DEPTH + 1) + "a " * (FAST_MAX_RPN_DEPTH + 2))
    data = P.encode_pdu(P.SearchRequest(query=deep))
    assert decode_search_request(data) is None and P.decode_pdu(data).query == deep
    # not a SearchRequest, trailing bytes, a truncated one: declined, and the generic path says why
    assert decode_search_request(P.encode_pdu(P.Close(0))) is None
    good = P.encode_pdu(base)
    assert decode_search_request(good + b"\x00") is None
    assert decode_search_request(good[:-1]) is None
    # invalid UTF-8 in a term: declined, and decode_pdu raises the generic BERError
    bad = good.replace(b"history", b"hist\xffry")
    assert decode_search_request(bad) is None
    try:
        P.decode_pdu(bad)
    except BERError as e:
        assert "utf-8" in str(e)
    else:
        raise AssertionError("invalid UTF-8 was accepted")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(COMMON, st.randoms(use_true_random=False))
def test_mutated_requests_never_differ_from_generic(req, rnd: random.Random):
    data = P.encode_pdu(req)
    corpus = [data, P.encode_pdu(P.SearchRequest(query=rpn.parse_pqf("@or @attr 1=4 a @attr 1=1003 b")))]
    for _ in range(30):
        m = mutate(rnd, data, corpus)
        fast = decode_search_request(m)
        if fast is not None:
            assert outcome(m) == fast
        if m[:1] == b"\xb6":
            try:
                via_pdu = P.decode_pdu(m)
            except (BERError, P.UnsupportedAPDU) as e:
                via_pdu = ("error", str(e))
            assert via_pdu == outcome(m)
