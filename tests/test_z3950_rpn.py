"""z3950.rpn and z3950.diagnostics: type-1 (RPN) queries.

* BER: byte vectors captured from Debian's yaz-client 5.34 (a loopback listener
  answered its Init and recorded the searchRequest/scanRequest), a vector
  derived by hand from X.690, hypothesis round trips (decode(encode(q)) == q),
  and fuzzing (random bytes, mutations of valid encodings) that checks only
  BERError ever comes out.
* PQF: YAZ's documented examples, round trips (parse_pqf(to_pqf(q)) == q),
  escapes, and syntax errors with their positions.
* Mapping: the Bib-1 and Bath profile attribute combinations, each compared with
  the CQL query (sru.cql.parse_cql) that means the same thing; every Bib-1
  diagnostic path; Scan and Sort; the bib1.toml configuration; SRU -> Bib-1
  diagnostics.

The long fuzz run is marked slow: pytest -m slow tests/test_z3950_rpn.py
"""
from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexers.index_config import load_index_config
from indexers.query_model import Clause, Query, QueryError, SortKey
from sru.cql import parse_cql
from z3950.ber import (
    CONTEXT,
    GENERAL_STRING,
    NULL,
    OBJECT_IDENTIFIER,
    SEQUENCE,
    UNIVERSAL,
    BERError,
    decode_all,
    enc_bool,
    enc_explicit,
    enc_int,
    enc_null,
    enc_octets,
    enc_oid,
    enc_seq,
    enc_str,
    enc_tlv,
    encode,
)
from z3950.diagnostics import BIB1_DIAGNOSTIC_SET, MESSAGES, SRU_TO_BIB1, Bib1Diagnostic, from_query_error, message
from z3950.rpn import (
    APT,
    BIB1,
    MAX_RPN_DEPTH,
    AttributeElement,
    Bib1Mapping,
    PQFError,
    ProxSpec,
    ResultSetRef,
    RPNOp,
    RPNQuery,
    UseAttribute,
    apt_to_scan,
    decode_apt,
    decode_attribute_list,
    decode_rpn_query,
    encode_apt,
    encode_attribute_list,
    encode_rpn_query,
    load_bib1_mapping,
    parse_pqf,
    parse_pqf_scan,
    rpn_to_query,
    sort_column_for,
    to_pqf,
    validate_bib1_mapping,
)

H = bytes.fromhex
GILS = "1.2.840.10003.3.5"
CONFIG = load_index_config()
MAPPING = load_bib1_mapping()
# Hypothesis: a quick run by default (the whole file stays within a few seconds),
# a long one with -m slow.
_HEALTH = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=20, **_HEALTH)
CHEAP = settings(max_examples=100, **_HEALTH)
LONG = settings(max_examples=1000, **_HEALTH)


def A(t, v, s=None):
    return AttributeElement(t, v, s)


def q1(root, attribute_set=BIB1):
    return RPNQuery(attribute_set, root)


def mapped(pqf: str) -> Query:
    return rpn_to_query(parse_pqf(pqf), CONFIG, MAPPING)


# ---------------------------------------------------------------------------
# BER: vectors

# The type-1 query element ([1] IMPLICIT RPNQuery) of searchRequests sent by
# yaz-client 5.34.0 for "find <pqf>".
YAZ_VECTORS = [
    ('@attr 1=4 @attr 4=1 "history of libraries"',
     "a13c06072a8648ce130301a031bf662ebf2c1430089f7801049f79010130089f7801019f7901049f2d14"
     "686973746f7279206f66206c6962726172696573"),
    ("@attr 1=title x",
     "a12806072a8648ce130301a01dbf661abf2c1330119f780101bf816009a10781057469746c659f2d0178"),
    ('@and @set seta @term string "caf\\xc3\\xa9"',
     "a12a06072a8648ce130301a11fa0079f1f0473657461a00fbf660cbf2c009f815805636166c3a9bf2e028000"),
    ("@attrset gils @attr 1=2038 @term numeric -114",
     "a12106072a8648ce130305a016bf6613bf2c0b30099f7801019f790207f69f8157018e"),
    ('@attr 4=1 @and @attr 1=1003 "bob dylan" @attr 1=4 @attr 4=2 "slow train"',
     "a16206072a8648ce130301a157a027bf6624bf2c1530099f7801019f790203eb30089f7801049f7901019f2d09626f62"
     "2064796c616ea027bf6624bf2c1430089f7801049f79010230089f7801019f7901049f2d0a736c6f7720747261696e"
     "bf2e028000"),
    ("@prox void 0 0 6 p 7 a b",
     "a13606072a8648ce130301a12ba00abf6607bf2c009f2d0161a00abf6607bf2c009f2d0162bf2e10a30e820100830100"
     "840106a503820107"),
]
# yaz-client encodes BOOLEAN TRUE as 0x01; ber.py (like DER) as 0xFF.
YAZ_PROX = ("@prox 0 3 1 2 k 2 dylan zimmerman",
            "a14506072a8648ce130301a13aa00ebf660bbf2c009f2d0564796c616ea012bf660fbf2c009f2d097a696d6d65726d61"
            "6ebf2e13a311810100820103830101840102a503810102")
# yaz-client gives "@attr gils 1=2008 @attr 4=1 x" the gils set on both attributes
# (the set carries over); parse_pqf gives 4=1 no set (documented difference).
YAZ_SET_CARRIES_OVER = ("@attr gils 1=2008 @attr 4=1 x",
                        "a13c06072a8648ce130301a031bf662ebf2c27301181072a8648ce1303059f7801049f7901013012"
                        "81072a8648ce1303059f7801019f790207d89f2d0178")
# termListAndStartPoint ([102]) of yaz-client's scanRequest for "scan @attr 1=4 @attr 6=3 hist".
YAZ_SCAN = ("@attr 1=4 @attr 6=3 hist",
            "bf661ebf2c1430089f7801069f79010330089f7801019f7901049f2d0468697374")


@pytest.mark.parametrize("pqf, hexdump", YAZ_VECTORS)
def test_yaz_client_vectors(pqf, hexdump):
    element = decode_all(H(hexdump))
    assert decode_rpn_query(element) == parse_pqf(pqf)
    assert encode_rpn_query(parse_pqf(pqf)) == H(hexdump)


def test_yaz_client_prox_vector():
    pqf, hexdump = YAZ_PROX
    q = parse_pqf(pqf)
    assert decode_rpn_query(decode_all(H(hexdump))) == q
    assert q.root.prox == ProxSpec(False, 3, True, 2, 2, False)
    # identical but for the TRUE octet of 'ordered' ([3] 01 01 vs 01 ff)
    assert encode_rpn_query(q) == H(hexdump.replace("830101", "8301ff"))


def test_yaz_client_set_carry_over_differs_documented():
    pqf, hexdump = YAZ_SET_CARRIES_OVER
    yaz = decode_rpn_query(decode_all(H(hexdump)))
    ours = parse_pqf(pqf)
    assert yaz.root.attributes == (A(4, 1, GILS), A(1, 2008, GILS))
    assert ours.root.attributes == (A(4, 1), A(1, 2008, GILS))
    for q in (yaz, ours):       # either way the mapping refuses the GILS set
        with pytest.raises(Bib1Diagnostic) as e:
            rpn_to_query(q, CONFIG, MAPPING)
        assert (e.value.code, e.value.addinfo) == (121, GILS)


def test_yaz_client_scan_vector():
    pqf, hexdump = YAZ_SCAN
    attribute_set, apt = parse_pqf_scan(pqf)
    assert attribute_set == BIB1
    assert decode_apt(decode_all(H(hexdump))) == apt == APT((A(6, 3), A(1, 4)), "hist")
    assert encode_apt(apt) == H(hexdump)


def test_hand_derived_vector():
    """@attr 1=4 x, derived from X.690 and the ASN.1:
    a1 1f                                  [1] IMPLICIT RPNQuery
       06 07 2a 86 48 ce 13 03 01          attributeSet 1.2.840.10003.3.1
       a0 14                               rpn: op [0] (explicit Operand)
          bf 66 11                         [102] AttributesPlusTerm
             bf 2c 0a                      [44] AttributeList
                30 08 9f 78 01 01          AttributeElement: [120] type 1
                      9f 79 01 04                            [121] numeric 4
             9f 2d 01 78                   [45] general "x"
    """
    vector = H("a11f06072a8648ce130301a014bf6611bf2c0a30089f7801019f7901049f2d0178")
    q = q1(APT((A(1, 4),), "x"))
    assert encode_rpn_query(q) == vector
    assert decode_rpn_query(decode_all(vector)) == q
    assert parse_pqf("@attr 1=4 x") == q
    type101 = encode_rpn_query(q, tag=101)
    assert type101[:2] == H("bf65") and type101[2:] == vector[1:]   # [101] high-tag form
    assert decode_rpn_query(decode_all(type101)) == q


def test_term_types_and_complex_attributes_vectors():
    attrs = (AttributeElement(1, ("a", 7), None, (1, 2)), A(2, "x", BIB1))
    encoded = encode_attribute_list(attrs)
    # [224] { [1] { [1] "a", [2] 7 }, [2] { INTEGER 1, INTEGER 2 } }
    assert H("bf816010a106810161820107a206020101020102") in encoded
    assert decode_attribute_list(decode_all(encoded)) == attrs
    assert AttributeElement(1, ("title",)) == AttributeElement(1, "title")      # normalized
    for term, kind, tlv in [(5, "numeric", "9f815701 05"), ("abc", "characterString", "9f815803616263"),
                            ("1.2.3", "oid", "9f8159022a03"), ("20240101", "dateTime", "9f815a083230323430313031"),
                            (None, "null", "9f815d00"), ("é", "general", "9f2d02c3a9")]:
        apt = APT((), term, kind)
        encoded = encode_apt(apt)
        assert encoded.endswith(H(tlv.replace(" ", ""))), kind
        assert decode_apt(decode_all(encoded)) == apt
    ext = (enc_oid(OBJECT_IDENTIFIER, "1.2.840.10003.16.2", UNIVERSAL)
           + enc_explicit(0, enc_str(GENERAL_STRING, "q", UNIVERSAL)))
    for kind in ("external", "integerAndUnit"):
        apt = APT((), ext, kind)
        assert decode_apt(decode_all(encode_apt(apt))) == apt


def test_session_encoding():
    q = q1(RPNOp("and", APT((A(1, "títle"),), "café"), ResultSetRef("sé")))
    for enc in ("utf-8", "latin-1"):
        assert decode_rpn_query(decode_all(encode_rpn_query(q, encoding=enc)), encoding=enc) == q
    latin = encode_rpn_query(q, encoding="latin-1")
    with pytest.raises(BERError, match="utf-8"):
        decode_rpn_query(decode_all(latin))


def test_encoder_rejects_bad_models():
    with pytest.raises(TypeError):
        encode_rpn_query("not a query")
    with pytest.raises(TypeError):
        encode_apt(APT((), 5, "general"))
    with pytest.raises(ValueError):
        encode_apt(APT((), "x", "bogus"))
    with pytest.raises(ValueError):
        encode_apt(APT((A(1, 2 ** 63),), "x"))
    with pytest.raises(ValueError):
        encode_rpn_query(q1(RPNOp("xor", APT((), "a"), APT((), "b"))))
    with pytest.raises(TypeError):
        encode_rpn_query(q1(RPNOp("prox", APT((), "a"), APT((), "b"))))
    with pytest.raises(ValueError):
        encode_rpn_query(q1(RPNOp("and", APT((), "a"), APT((), "b"), ProxSpec())))
    with pytest.raises(ValueError):
        encode_attribute_list([AttributeElement(1, 4, None, (1,))])
    with pytest.raises(ValueError):
        encode_rpn_query(q1(_chain(MAX_RPN_DEPTH)))       # 101 levels


# ---------------------------------------------------------------------------
# BER: malformed input gives BERError

def _chain(ops: int, term: str = "x"):
    """``ops`` nested operators, nested on the left (as "@and @and x x x")."""
    node = APT((), term)
    for _ in range(ops):
        node = RPNOp("and", node, APT((), term))
    return node


def _raw_chain(ops: int) -> bytes:
    """An RPNQuery with ``ops`` nested operators, encoded without the encoder's check."""
    leaf = enc_explicit(0, encode_apt(APT((), "x")))
    node = leaf
    for _ in range(ops):
        node = enc_seq(1, [node, leaf, enc_explicit(46, enc_null(0))])
    return enc_seq(1, [enc_oid(OBJECT_IDENTIFIER, BIB1, UNIVERSAL), node])


def test_depth_limit():
    ok = decode_rpn_query(decode_all(_raw_chain(MAX_RPN_DEPTH - 1)))        # 100 levels
    assert ok == q1(_chain(MAX_RPN_DEPTH - 1))
    with pytest.raises(BERError, match="deeper than 100"):
        decode_rpn_query(decode_all(_raw_chain(MAX_RPN_DEPTH)))


APT_X = encode_apt(APT((), "x"))
OP_X = enc_explicit(0, APT_X)
AND = enc_explicit(46, enc_null(0))
EMPTY_LIST = enc_seq(44, [])
TERM_X = enc_octets(45, b"x")


def _query(*structure: bytes) -> bytes:
    return enc_seq(1, [enc_oid(OBJECT_IDENTIFIER, BIB1, UNIVERSAL), *structure])


def _apt(attrs: bytes = EMPTY_LIST, term: bytes = TERM_X) -> bytes:
    return _query(enc_explicit(0, enc_seq(102, [attrs, term])))


def _attr(*parts: bytes) -> bytes:
    return _apt(enc_seq(44, [enc_seq(SEQUENCE, list(parts), UNIVERSAL)]))


def _complex(*parts: bytes) -> bytes:
    return _attr(enc_int(120, 1), enc_seq(224, list(parts)))


def _op(operator: bytes) -> bytes:
    return _query(enc_seq(1, [OP_X, OP_X, operator]))


def _prox(*parts: bytes) -> bytes:
    return _op(enc_explicit(46, enc_seq(3, list(parts))))


UNIT_WORD = enc_explicit(5, enc_int(1, 2))


@pytest.mark.parametrize("data, reason", [
    (H("0403616263"), "RPNQuery: unexpected"),                             # not a query element
    (enc_octets(1, b""), "RPNQuery: unexpected"),                          # primitive [1]
    (enc_seq(1, []), "attributeSet missing"),
    (_query(), "rpn missing"),
    (_query(OP_X, OP_X), "RPNQuery: unexpected"),                          # extra element
    (_query(enc_seq(2, [])), "RPNStructure: unexpected"),
    (_query(enc_seq(0, [])), "found 0"),                                   # empty op [0]
    (_query(enc_seq(0, [APT_X, APT_X])), "found 2"),
    (_query(enc_octets(0, b"")), "constructed element was expected"),     # primitive op [0]
    (_query(enc_seq(1, [OP_X, OP_X])), "expected 3 elements, found 2"),
    (_query(enc_seq(1, [OP_X, OP_X, OP_X, AND])), "expected 3 elements, found 4"),
    (_query(enc_explicit(0, enc_str(30, "a"))), "Operand: unexpected"),
    (_query(enc_explicit(0, EMPTY_LIST)), "Operand: unexpected"),
    (_query(enc_explicit(0, enc_octets(31, b"\xff"))), "utf-8"),          # result set name not UTF-8
    (_query(enc_explicit(0, enc_seq(214, [enc_str(31, "a")]))), "attributes missing"),
    (_query(enc_explicit(0, enc_seq(214, [enc_str(31, "a"), enc_null(0)]))), "attributes missing"),
    (_query(enc_explicit(0, enc_seq(214, [EMPTY_LIST]))), "resultSet missing"),
    (_apt(term=enc_null(NULL, UNIVERSAL)), "Term: unexpected"),
    (_apt(term=b""), "term missing"),
    (_apt(attrs=b""), "attributes missing"),
    (_apt(attrs=enc_octets(44, b"")), "expected [CONTEXT 44] constructed"),
    (_apt(term=TERM_X + enc_null(0)), "AttributesPlusTerm: unexpected"),
    (_apt(term=enc_tlv(CONTEXT, False, 215, b"")), "no content"),          # numeric term, empty INTEGER
    (_apt(term=enc_tlv(CONTEXT, False, 215, bytes(9))), "at most 8"),
    (_apt(term=enc_tlv(CONTEXT, False, 221, b"\x00")), "NULL with content"),
    (_apt(term=enc_octets(219, b"\x00")), "constructed element was expected"),   # primitive external
    (_apt(term=enc_seq(224, [])), "Term: unexpected"),
    (_apt(term=enc_octets(217, b"\x80")), "OBJECT IDENTIFIER"),
    (_apt(term=enc_octets(218, b"\xff")), "ascii"),
    (_apt(term=enc_octets(45, b"\xc3")), "utf-8"),
    (_apt(enc_seq(44, [enc_null(NULL, UNIVERSAL)])), "expected [UNIVERSAL 16] constructed"),
    (_attr(), "attributeType missing"),
    (_attr(enc_int(120, 1)), "attributeValue missing"),
    (_attr(enc_int(120, 1), enc_int(122, 4)), "attributeValue: unexpected"),
    (_attr(enc_int(120, 1), enc_int(121, 4), enc_int(121, 5)), "AttributeElement: unexpected"),
    (_attr(enc_int(120, 1), enc_tlv(CONTEXT, False, 121, bytes(9))), "at most 8"),
    (_attr(enc_octets(1, b""), enc_int(120, 1), enc_int(121, 4)), "OBJECT IDENTIFIER with no content"),
    (_attr(enc_int(121, 4), enc_int(120, 1)), "attributeType missing"),
    (_complex(), "list missing"),
    (_complex(enc_seq(1, [enc_int(3, 1)])), "StringOrNumeric: unexpected"),
    (_complex(enc_seq(1, [enc_octets(1, b"\xff")])), "utf-8"),
    (_complex(enc_seq(1, []), enc_seq(2, [enc_null(NULL, UNIVERSAL)])), "expected [UNIVERSAL 2] primitive"),
    (_complex(enc_seq(1, []), enc_seq(2, []), enc_null(3)), "ComplexAttribute: unexpected"),
    (_complex(enc_octets(1, b"")), "constructed element was expected"),
    (_op(enc_null(0)), "expected [CONTEXT 46]"),
    (_op(enc_explicit(46, enc_tlv(CONTEXT, False, 1, b"\x00"))), "NULL with content"),
    (_op(enc_explicit(46, enc_null(7))), "Operator: unexpected"),
    (_op(enc_seq(46, [enc_null(0), enc_null(1)])), "found 2"),
    (_op(enc_explicit(46, enc_octets(3, b""))), "constructed element was expected"),
    (_prox(enc_bool(3, False)), "distance missing"),
    (_prox(enc_int(2, 1), enc_int(4, 2), UNIT_WORD), "ordered missing"),
    (_prox(enc_int(2, 1), enc_bool(3, False), UNIT_WORD), "relationType missing"),
    (_prox(enc_int(2, 1), enc_bool(3, False), enc_int(4, 2)), "proximityUnitCode missing"),
    (_prox(enc_int(2, 1), enc_bool(3, False), enc_int(4, 2), enc_explicit(5, enc_int(3, 2))),
     "proximityUnitCode: unexpected"),
    (_prox(enc_int(2, 1), enc_bool(3, False), enc_int(4, 2), enc_seq(5, [])), "found 0"),
    (_prox(enc_int(2, 1), enc_bool(3, False), enc_int(4, 2), UNIT_WORD, enc_int(6, 1)),
     "ProximityOperator: unexpected"),
    (_prox(enc_int(2, 1), enc_tlv(CONTEXT, False, 3, b"\x01\x02"), enc_int(4, 2), UNIT_WORD), "BOOLEAN"),
    (_prox(enc_tlv(CONTEXT, False, 1, b""), enc_int(2, 1), enc_bool(3, False), enc_int(4, 2), UNIT_WORD),
     "BOOLEAN"),
])
def test_malformed_ber(data, reason):
    with pytest.raises(BERError) as e:
        decode_rpn_query(decode_all(data))
    assert reason in str(e.value)


def test_query_element_forms():
    """[1] (type-1), [101] (type-101) and a plain SEQUENCE are accepted."""
    q = q1(RPNOp("and", APT((), "x"), APT((), "x")))
    element = decode_all(_query(enc_seq(1, [OP_X, OP_X, AND])))
    assert decode_rpn_query(element) == q
    content = [encode(child) for child in element.children]
    for tag, cls in ((101, CONTEXT), (SEQUENCE, UNIVERSAL)):
        assert decode_rpn_query(decode_all(enc_seq(tag, content, cls))) == q
    with pytest.raises(BERError):
        decode_rpn_query(decode_all(enc_seq(2, content)))


def test_malformed_apt_and_attribute_list():
    for data in (H("a000"), H("bf2c00"), H("bf6600"), H("bf66029f2d")):
        with pytest.raises(BERError):
            decode_apt(decode_all(data))
    for data in (H("bf6600"), H("9f2c00"), H("bf2c020500"), H("bf2c023000")):
        with pytest.raises(BERError):
            decode_attribute_list(decode_all(data))


def _check_decoder(data: bytes) -> None:
    """decode_rpn_query on anything: an RPNQuery that re-encodes to itself, or BERError."""
    try:
        element = decode_all(data)
    except BERError:
        return
    try:
        q = decode_rpn_query(element)
    except BERError:
        return
    again = decode_rpn_query(decode_all(encode_rpn_query(q)))
    assert again == q


# ---------------------------------------------------------------------------
# Hypothesis strategies

INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
SMALL = st.integers(-3, 1100) | INT64
SETS = st.sampled_from([BIB1, GILS, "1.2.840.10003.3.2", "1.2.3", "2.999.1234567"])
OIDS = st.builds(lambda a, b, rest: ".".join(map(str, [a, b, *rest])), st.integers(0, 2), st.integers(0, 39),
                 st.lists(st.integers(0, 2 ** 40), max_size=4))
TEXT = st.text(max_size=12)
EXTERNAL = st.builds(lambda oid, s: enc_oid(OBJECT_IDENTIFIER, oid, UNIVERSAL)
                     + enc_explicit(0, enc_str(GENERAL_STRING, s, UNIVERSAL)), OIDS, TEXT)
INT_UNIT = st.builds(lambda n: enc_int(1, n) + enc_seq(2, [enc_explicit(1, enc_str(GENERAL_STRING, "SI", UNIVERSAL))]),
                     INT64)


@st.composite
def attributes(draw, pqf: bool = False):
    atype = draw(SMALL)
    aset = draw(st.none() | SETS)
    if pqf:
        return AttributeElement(atype, draw(INT64 | st.text(min_size=1, max_size=12)), aset)
    value = draw(INT64 | TEXT | st.lists(TEXT | SMALL, max_size=3).map(tuple))
    semantic = None
    if not isinstance(value, int):
        semantic = draw(st.none() | st.lists(SMALL, max_size=3).map(tuple))
    return AttributeElement(atype, value, aset, semantic)


def attribute_lists(pqf: bool = False):
    if pqf:
        return st.lists(attributes(True), max_size=4, unique_by=lambda a: a.type).map(tuple)
    return st.lists(attributes(), max_size=4).map(tuple)


TERMS = {
    "general": TEXT, "characterString": TEXT, "numeric": INT64, "oid": OIDS,
    "dateTime": st.text(alphabet="0123456789.+-Z", max_size=20), "null": st.none(),
    "external": EXTERNAL, "integerAndUnit": INT_UNIT,
}
PQF_TERM_TYPES = ["general", "characterString", "numeric", "oid", "dateTime", "null"]


@st.composite
def apts(draw, pqf: bool = False):
    kind = draw(st.sampled_from(PQF_TERM_TYPES if pqf else list(TERMS)))
    return APT(draw(attribute_lists(pqf)), draw(TERMS[kind]), kind)


def operands(pqf: bool = False):
    sets = st.builds(ResultSetRef, TEXT, attribute_lists(pqf))
    return st.one_of(apts(pqf), apts(pqf), sets)


PROX = st.builds(ProxSpec, st.none() | st.booleans(), INT64, st.booleans(), INT64, INT64, st.booleans())


def trees(pqf: bool = False):
    def extend(children):
        plain = st.builds(RPNOp, st.sampled_from(["and", "or", "and-not"]), children, children)
        prox = st.builds(lambda lhs, rhs, p: RPNOp("prox", lhs, rhs, p), children, children, PROX)
        return plain | prox
    return st.recursive(operands(pqf), extend, max_leaves=6)


def queries(pqf: bool = False):
    return st.builds(RPNQuery, st.sampled_from([BIB1, BIB1, GILS, "1.2.3"]), trees(pqf))


def _ber_round_trip(q, tag):
    data = encode_rpn_query(q, tag=tag)
    element = decode_all(data)
    assert element.tag == tag
    assert decode_rpn_query(element) == q


def _apt_round_trip(apt):
    assert decode_apt(decode_all(encode_apt(apt))) == apt


def _random_bytes(data):
    _check_decoder(data)
    _check_decoder(b"\xa1" + bytes([len(data) & 0x7F]) + data)


def _mutations(q, rnd):
    _mutate_and_check(encode_rpn_query(q), rnd, 8)


TAGS = st.sampled_from([1, 101])
RANDOMS = st.randoms(use_true_random=False)
test_ber_round_trip = FAST(given(queries(), TAGS)(_ber_round_trip))
test_apt_round_trip = FAST(given(apts())(_apt_round_trip))
test_random_bytes_only_bererror = CHEAP(given(st.binary(max_size=120))(_random_bytes))
test_mutations_only_bererror = FAST(given(queries(), RANDOMS)(_mutations))
test_ber_round_trip_long = pytest.mark.slow(LONG(given(queries(), TAGS)(_ber_round_trip)))
test_apt_round_trip_long = pytest.mark.slow(LONG(given(apts())(_apt_round_trip)))
test_random_bytes_long = pytest.mark.slow(LONG(given(st.binary(max_size=400))(_random_bytes)))
test_mutations_long = pytest.mark.slow(LONG(given(queries(), RANDOMS)(_mutations)))


def _mutate_and_check(data: bytes, rnd: random.Random, rounds: int) -> None:
    for _ in range(rounds):
        b = bytearray(data)
        action = rnd.randrange(5)
        pos = rnd.randrange(len(b))
        if action == 0:
            b[pos] = rnd.randrange(256)
        elif action == 1:
            b[pos] ^= 1 << rnd.randrange(8)
        elif action == 2:
            del b[pos:pos + rnd.randrange(1, 4)]
        elif action == 3:
            b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4)))
        else:
            b = b[:pos]
        _check_decoder(bytes(b))


@pytest.mark.slow
def test_mutation_fuzz_long():
    rnd = random.Random(2024)
    samples = [H(h) for _, h in YAZ_VECTORS] + [H(YAZ_PROX[1]), H(YAZ_SET_CARRIES_OVER[1]), _raw_chain(40)]
    for _ in range(100_000):
        _mutate_and_check(rnd.choice(samples), rnd, 1)


# ---------------------------------------------------------------------------
# PQF

def _pqf_round_trip(q):
    text = to_pqf(q)
    assert parse_pqf(text) == q, text


def _pqf_round_trip_or_value_error(q):
    try:
        text = to_pqf(q)
    except ValueError:
        return
    assert parse_pqf(text) == q, text


test_pqf_round_trip = FAST(given(queries(pqf=True))(_pqf_round_trip))
test_pqf_round_trip_or_value_error = FAST(given(queries())(_pqf_round_trip_or_value_error))
test_pqf_round_trip_long = pytest.mark.slow(LONG(given(queries(pqf=True))(_pqf_round_trip)))
test_pqf_round_trip_or_value_error_long = pytest.mark.slow(
    LONG(given(queries())(_pqf_round_trip_or_value_error)))


PQF_PIECES = ["@and", "@or", "@not", "@prox", "@attr", "@set", "@term", "@attrset", "1=4", "4=1", "gils", "bib-1",
              "0", "1", "2", "k", "p", "void", "x", '"a b"', '"', "{", "}", "\\", "\\x41", "\\101", "string",
              "numeric", "oid", "null", "1.2.3", "=", "-5", "@1=4", "a\\ b", "@bogus", "1=title", '"1=a b"']


PQF_TEXTS = st.lists(st.sampled_from(PQF_PIECES), max_size=14).map(" ".join) | st.text(max_size=30)


def _pqf_fuzz(text):
    try:
        q = parse_pqf(text)
    except PQFError as e:
        assert 0 <= e.pos <= len(text)
        return
    assert parse_pqf(to_pqf(q)) == q


test_pqf_fuzz_only_pqferror_and_round_trips = CHEAP(given(PQF_TEXTS)(_pqf_fuzz))
test_pqf_fuzz_long = pytest.mark.slow(LONG(given(PQF_TEXTS)(_pqf_fuzz)))


@pytest.mark.parametrize("pqf, expected", [
    ("dylan", APT((), "dylan")),
    ('"bob dylan"', APT((), "bob dylan")),
    ("{bob dylan}", APT((), "bob dylan")),
    ('@or "dylan" "zimmerman"', RPNOp("or", APT((), "dylan"), APT((), "zimmerman"))),
    ("@and @or dylan zimmerman when",
     RPNOp("and", RPNOp("or", APT((), "dylan"), APT((), "zimmerman")), APT((), "when"))),
    ("@set Result-1", ResultSetRef("Result-1")),
    ("@and @set seta @set setb", RPNOp("and", ResultSetRef("seta"), ResultSetRef("setb"))),
    ("@attr 1=4 computer", APT((A(1, 4),), "computer")),
    ('@attr 1=4 @attr 4=1 "self portrait"', APT((A(4, 1), A(1, 4)), "self portrait")),
    ("@attr gils 1=2008 Copenhagen", APT((A(1, 2008, GILS),), "Copenhagen")),
    ("@attr 1=/book/title computer", APT((A(1, "/book/title"),), "computer")),
    ('@term string "a UTF-8 string, maybe?"', APT((), "a UTF-8 string, maybe?", "characterString")),
    ("@prox 0 3 1 2 k 2 dylan zimmerman",
     RPNOp("prox", APT((), "dylan"), APT((), "zimmerman"), ProxSpec(False, 3, True, 2, 2, False))),
    ("@PROX 1 0 0 6 private 9 a b",
     RPNOp("prox", APT((), "a"), APT((), "b"), ProxSpec(True, 0, False, 6, 9, True))),
    ("@or @and bob dylan @set Result-1",
     RPNOp("or", RPNOp("and", APT((), "bob"), APT((), "dylan")), ResultSetRef("Result-1"))),
    ('@attr 4=1 @and @attr 1=1 "bob dylan" @attr 1=4 "slow train coming"',
     RPNOp("and", APT((A(1, 1), A(4, 1)), "bob dylan"), APT((A(1, 4), A(4, 1)), "slow train coming"))),
    ("@and @attr 2=4 @attr gils 1=2038 -114 @attr 2=2 @attr gils 1=2039 -109",
     RPNOp("and", APT((A(1, 2038, GILS), A(2, 4)), "-114"), APT((A(1, 2039, GILS), A(2, 2)), "-109"))),
    # inner attributes override outer ones of the same type
    ("@attr 4=1 @or @attr 4=2 a b", RPNOp("or", APT((A(4, 2),), "a"), APT((A(4, 1),), "b"))),
    ("@attr 1=4 @attr 1=21 x", APT((A(1, 21),), "x")),
    ("@1=4 x", APT((A(1, 4),), "x")),
    ("@attr 1=-1 x", APT((A(1, -1),), "x")),
    ("@attr 1=\\x31 x", APT((A(1, "1"),), "x")),                          # escaped digit: a string value
    ('@attr "1=two words" x', APT((A(1, "two words"),), "x")),
    ("@attr 1.2.3 7=1 x", APT((A(7, 1, "1.2.3"),), "x")),
    ("@attr Bib1 1=4 x", APT((A(1, 4, BIB1),), "x")),
    ('"a\\"b"', APT((), 'a"b')),
    ("a\\ b", APT((), "a b")),
    ('"\\x41\\102\\tC\\\\"', APT((), "AB\tC\\")),
    ('"\\xc3\\xa9t\\xc3\\xa9"', APT((), "été")),
    ('"@and"', APT((), "@and")),
    ("@term numeric 42", APT((), 42, "numeric")),
    ("@term oid 1.2.840.10003.5.10", APT((), "1.2.840.10003.5.10", "oid")),
    ("@term datetime 20240101120000", APT((), "20240101120000", "dateTime")),
    ('@term null ""', APT((), None, "null")),
    # the term type is not scoped (as in YAZ)
    ("@or @term string a b", RPNOp("or", APT((), "a", "characterString"), APT((), "b", "characterString"))),
    ("@attr 1=4 @set s1", ResultSetRef("s1", (A(1, 4),))),
    ("\t@and\na\r\nb ", RPNOp("and", APT((), "a"), APT((), "b"))),
    ('"a"b', None),                                                          # two tokens: extra token
])
def test_pqf_parse(pqf, expected):
    if expected is None:
        with pytest.raises(PQFError):
            parse_pqf(pqf)
        return
    q = parse_pqf(pqf)
    assert q == RPNQuery(BIB1, expected)
    assert parse_pqf(to_pqf(q)) == q


def test_pqf_attrset():
    assert parse_pqf("@attrset exp-1 @attr 1=1 CategoryList") == RPNQuery(
        "1.2.840.10003.3.2", APT((A(1, 1),), "CategoryList"))
    assert parse_pqf("@attrset 1.2.840.10003.3.1 x") == parse_pqf("x")
    assert to_pqf(RPNQuery(GILS, APT((), "x"))) == "@attrset gils x"
    assert to_pqf(RPNQuery("1.2.3", APT((A(1, 4, "1.2.4"),), "x"))) == "@attrset 1.2.3 @attr 1.2.4 1=4 x"


@pytest.mark.parametrize("q, text", [
    (APT((A(4, 1), A(1, 4)), "history of libraries"), '@attr 1=4 @attr 4=1 "history of libraries"'),
    (APT((A(1, "123"),), "x"), "@attr 1=\\x3123 x"),
    (APT((A(1, "-1"),), "x"), "@attr 1=\\x2d1 x"),
    (APT((A(1, 'a "b"'),), "x"), '@attr "1=a \\"b\\"" x'),
    (APT((), ""), '""'),
    (APT((), "@x"), '"@x"'),
    (APT((), "{x}"), '"{x}"'),
    (APT((), 'a"b'), 'a"b'),
    (APT((), "a\\b"), '"a\\\\b"'),
    (RPNOp("and", APT((), 1, "numeric"), APT((), 2, "numeric")), "@and @term numeric 1 2"),
    (RPNOp("and", APT((), 1, "numeric"), APT((), "2")), "@and @term numeric 1 @term general 2"),
    (RPNOp("prox", APT((), "a"), APT((), "b"), ProxSpec()), "@prox void 1 0 2 k 2 a b"),
    (ResultSetRef("my set"), '@set "my set"'),
])
def test_to_pqf(q, text):
    assert to_pqf(RPNQuery(BIB1, q)) == text
    assert parse_pqf(text) == RPNQuery(BIB1, q)


@pytest.mark.parametrize("q", [
    APT((A(1, 4), A(1, 5)), "x"),                                   # two attributes of one type
    APT((A(1, ("a", "b")),), "x"),                                  # complex list
    APT((AttributeElement(1, "a", None, (1,)),), "x"),              # semantic action
    APT((A(1, ""),), "x"),                                          # empty string value
    APT((), b"\x30\x00", "external"),
    APT((), b"\x80\x01\x01", "integerAndUnit"),
    APT((), b"raw", "general"),
])
def test_to_pqf_inexpressible(q):
    with pytest.raises(ValueError):
        to_pqf(RPNQuery(BIB1, q))


@pytest.mark.parametrize("pqf, reason, pos", [
    ("", "missing operand", 0),
    ("   ", "missing operand", 3),
    ("@and a", "missing operand", 6),
    ("a b", "extra token", 2),
    ('"abc', "unterminated", 0),
    ("{abc", "unterminated", 0),
    ("@foo x", "unknown operator '@foo'", 0),
    ("@attr", "missing attribute", 5),
    ("@attr 1=4", "missing operand", 9),
    ("@attr x=4 y", "attribute type must be an integer", 6),
    ("@attr 1= y", "missing attribute value", 8),
    ("@attr bogus 1=4 x", "unknown attribute set 'bogus'", 6),
    ("@attr gils x y", "expected attribute type=value", 11),
    ("@attr 1=99999999999999999999 x", "does not fit in 64 bits", 8),
    ("@attrset", "missing attribute set name", 8),
    ("@attrset nosuch x", "unknown attribute set", 9),
    ("@and @attrset bib-1 a b", "@attrset is only allowed at the start", 5),
    ("@set", "missing result set name", 4),
    ("@set @and", "expected result set name, found @and", 5),
    ("@term bogus x", "unknown term type 'bogus'", 6),
    ("@term numeric abc", "numeric term must be an integer", 14),
    ("@term oid 1.x", "not an OBJECT IDENTIFIER", 10),
    ("@prox 2 3 1 2 k 2 a b", "exclusion must be 0, 1 or void", 6),
    ("@prox 0 x 1 2 k 2 a b", "distance must be an integer", 8),
    ("@prox 0 3 y 2 k 2 a b", "ordered flag must be 0 or 1", 10),
    ("@prox 0 3 1 2 q 2 a b", "known or private", 14),
    ("@prox 0 3 1 2 k", "missing proximity unit", 15),
    ('"\\xZZ"', "\\x needs two hexadecimal digits", 1),
    ('@and x "\\18"', "octal escape needs three octal digits", 8),
    ('"\\xff"', "escaped bytes are not UTF-8", 1),
    ("@attr 1=\\xq x", "\\x needs two hexadecimal digits", 8),
])
def test_pqf_errors(pqf, reason, pos):
    with pytest.raises(PQFError) as e:
        parse_pqf(pqf)
    assert reason in e.value.reason
    assert e.value.pos == pos
    assert isinstance(e.value, ValueError)
    assert f"at position {pos}" in str(e.value)


def test_pqf_limits():
    deep = "@and " * (MAX_RPN_DEPTH - 1) + "a " * MAX_RPN_DEPTH
    assert parse_pqf(deep).root == _chain(MAX_RPN_DEPTH - 1, "a")
    with pytest.raises(PQFError, match="deeper than 100"):
        parse_pqf("@and " * MAX_RPN_DEPTH + "a " * (MAX_RPN_DEPTH + 1))
    with pytest.raises(PQFError, match="more than 512 attributes"):
        parse_pqf("@attr 1=4 " * 513 + "x")
    with pytest.raises(ValueError, match="deeper"):
        to_pqf(q1(_chain(MAX_RPN_DEPTH)))


def test_pqf_scan():
    assert parse_pqf_scan("@attrset bib-1 @attr 1=4 @term string hist") == (
        BIB1, APT((A(1, 4),), "hist", "characterString"))
    assert parse_pqf_scan('""') == (BIB1, APT((), ""))
    for bad, pos in [("@attr 1=4", 9), ("@and a b", 0), ("a b", 2)]:
        with pytest.raises(PQFError) as e:
            parse_pqf_scan(bad)
        assert e.value.pos == pos


def test_type_errors():
    with pytest.raises(TypeError):
        parse_pqf(b"x")
    with pytest.raises(TypeError):
        to_pqf("x")


# ---------------------------------------------------------------------------
# Mapping: Bib-1 and Bath combinations -> the query model, compared with CQL

BATH = [
    # Functional area A, level 0: keyword searches
    ("@attr 1=1003 @attr 2=3 @attr 3=3 @attr 4=2 @attr 5=100 @attr 6=1 dylan", "dc.creator = dylan"),
    ("@attr 1=4 @attr 2=3 @attr 3=3 @attr 4=2 @attr 5=100 @attr 6=1 libraries", "dc.title = libraries"),
    ("@attr 1=21 @attr 2=3 @attr 3=3 @attr 4=2 @attr 5=100 @attr 6=1 libraries", "dc.subject = libraries"),
    ("@attr 1=1016 @attr 2=3 @attr 3=3 @attr 4=2 @attr 5=100 @attr 6=1 libraries", "cql.anywhere = libraries"),
    # level 1: keyword with right truncation, exact match, first words, first characters
    ("@attr 1=1003 @attr 2=3 @attr 3=3 @attr 4=2 @attr 5=1 @attr 6=1 dyl", "dc.creator = dyl*"),
    ('@attr 1=1003 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=3 "Dylan, Bob"', 'dc.creator == "Dylan, Bob"'),
    ('@attr 1=1003 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=1 "Dylan, Bob"',
     'dc.creator == "Dylan, Bob" or dc.creator == "Dylan, Bob *"'),
    ('@attr 1=1003 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=1 @attr 6=1 "Dylan, B"', 'dc.creator == "Dylan, B*"'),
    ("@attr 1=4 @attr 2=3 @attr 3=3 @attr 4=2 @attr 5=1 @attr 6=1 librar", "dc.title = librar*"),
    ('@attr 1=4 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=3 "History of libraries"',
     'dc.title == "History of libraries"'),
    ('@attr 1=4 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=1 "history of"',
     'dc.title == "history of" or dc.title == "history of *"'),
    ('@attr 1=4 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=1 @attr 6=1 "history of librar"',
     'dc.title == "history of librar*"'),
    ("@attr 1=21 @attr 2=3 @attr 3=3 @attr 4=2 @attr 5=1 @attr 6=1 librar", "dc.subject = librar*"),
    ('@attr 1=21 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=3 "Libraries -- History"',
     'dc.subject == "Libraries -- History"'),
    ('@attr 1=21 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=1 @attr 6=1 "Libraries -- Hist"',
     'dc.subject == "Libraries -- Hist*"'),
    ("@attr 1=1016 @attr 2=3 @attr 3=3 @attr 4=2 @attr 5=1 @attr 6=1 librar", "cql.anywhere = librar*"),
    # standard identifier, date of publication, date ranges
    ("@attr 1=1007 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=1 0-19-501919-3",
     'dc.identifier = "0-19-501919-3"'),
    ("@attr 1=7 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=1 4004310016", "bath.isbn = 4004310016"),
    ("@attr 1=8 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=1 0028-0836", 'bath.issn = "0028-0836"'),
    ("@attr 1=31 @attr 2=3 @attr 3=1 @attr 4=4 @attr 5=100 @attr 6=1 1999", "dc.date = 1999"),
    ("@attr 1=31 @attr 2=1 @attr 3=1 @attr 4=4 @attr 5=100 @attr 6=1 2000", "dc.date < 2000"),
    ("@attr 1=31 @attr 2=2 @attr 4=4 2000", "dc.date <= 2000"),
    ("@attr 1=31 @attr 2=4 @attr 4=4 2000", "dc.date >= 2000"),
    ("@attr 1=31 @attr 2=5 @attr 4=4 2000", "dc.date > 2000"),
    ('@attr 1=31 @attr 2=104 @attr 3=1 @attr 4=4 "1990 2000"', 'dc.date within "1990 2000"'),
    # level 2 and holdings
    ("@attr 1=54 @attr 2=3 @attr 3=1 @attr 4=1 @attr 5=100 @attr 6=3 jpn", "dc.language == jpn"),
    ("@attr 1=54 jpn", "dc.language = jpn"),
    ("@attr 1=1044 @attr 3=1 @attr 4=1 iizuka", "bath.possessingInstitution = iizuka"),
    # functional area C: unanchored phrase
    ('@attr 1=4 @attr 2=3 @attr 3=3 @attr 4=1 @attr 5=100 @attr 6=1 "history of libraries"',
     'dc.title adj "history of libraries"'),
    ('@attr 1=1016 @attr 2=3 @attr 3=3 @attr 4=1 @attr 5=100 @attr 6=1 "history of libraries"',
     'cql.anywhere adj "history of libraries"'),
]

MAPPINGS = [
    ('@attr 1=4 @attr 4=1 "history of libraries"', 'dc.title adj "history of libraries"'),
    ("water", "water"),
    ("@attr 1=1017 water", "water"),
    ("@attr 1=1035 water", "cql.anywhere = water"),
    ("@attr 1=1 x", "bath.name = x"), ("@attr 1=2 x", "bath.name = x"), ("@attr 1=3 x", "bath.name = x"),
    ("@attr 1=1002 x", "bath.name = x"), ("@attr 1=1004 x", "dc.creator = x"),
    ("@attr 1=5 x", "dc.title = x"), ("@attr 1=6 x", "dc.title = x"),
    ("@attr 1=9 85012345", "dc.identifier = 85012345"), ("@attr 1=12 b123", "rec.identifier = b123"),
    ("@attr 1=20 010.2", "local.ndc = 010.2"), ("@attr 1=30 2001", "dc.date = 2001"),
    ("@attr 1=48 JP12345", "dc.identifier = JP12345"), ("@attr 1=1018 iwanami", "dc.publisher = iwanami"),
    # structures
    ('@attr 1=4 @attr 4=2 "history libraries"', 'dc.title all "history libraries"'),
    ('@attr 1=4 @attr 4=6 "history libraries"', 'dc.title all "history libraries"'),
    ('@attr 1=4 @attr 4=105 "history libraries"', 'dc.title any "history libraries"'),
    ('@attr 1=4 @attr 4=106 "history libraries"', 'dc.title any "history libraries"'),
    ('@attr 1=4 @attr 4=3 "history of libraries"', 'dc.title == "history of libraries"'),
    ('@attr 1=4 @attr 4=108 "history of libraries"', 'dc.title == "history of libraries"'),
    ("@attr 1=31 @attr 4=109 2001", "dc.date = 2001"),
    ("@attr 1=31 @attr 4=5 2001", "dc.date = 2001"),
    ("@attr 1=31 @attr 4=4 @attr 5=1 199", "dc.date = 199*"),
    ('@attr 1=4 @attr 6=2 "history of libraries"', 'dc.title == "history of libraries"'),
    ('@attr 1=4 @attr 3=2 @attr 4=1 "history of"', 'dc.title == "history of" or dc.title == "history of *"'),
    ("@attr 1=4 @attr 3=1 @attr 4=1 図書館", 'dc.title == "図書館" or dc.title == "図書館 *"'),
    ("@attr 1=7 @attr 4=1 @attr 6=3 4004310016", "bath.isbn == 4004310016"),
    ("@attr 1=7 @attr 4=2 @attr 3=1 4004310016", "bath.isbn = 4004310016"),
    ("@attr 1=31 @attr 3=1 @attr 6=3 @attr 4=1 2001", "dc.date = 2001"),
    # relations
    ("@attr 1=4 @attr 2=102 libraries", "dc.title = libraries"),
    ("@attr 1=4 @attr 2=6 libraries", "dc.title <> libraries"),
    ("@attr 1=4 @attr 2=1 m", "dc.title < m"),
    ("@attr 1=4 @attr 2=103 x", "dc.title = *"),
    ("@attr 2=103 x", "cql.allRecords = 1"),
    ("@attr 1=_ALLRECORDS @attr 2=103 x", "cql.allRecords = 1"),
    ("@attr 1=cql.allRecords anything", "cql.allRecords = 1"),
    # truncation; literal masks are escaped
    ("@attr 1=4 @attr 5=2 ship", "dc.title = *ship"),
    ("@attr 1=4 @attr 5=3 brar", "dc.title = *brar*"),
    ("@attr 1=4 @attr 5=101 lib#ies", "dc.title = lib*ies"),
    ("@attr 1=4 @attr 5=101 a*b", 'dc.title = "a\\*b"'),
    ("@attr 1=4 @attr 5=104 colo#r", "dc.title = colo?r"),
    ("@attr 1=4 @attr 5=104 librar?", "dc.title = librar*"),
    ("@attr 1=4 @attr 5=104 a*b", 'dc.title = "a\\*b"'),
    ("@attr 1=4 @attr 5=105 lib*ar!", "dc.title = lib*ar?*"),
    ("@attr 1=4 @attr 5=105 lib*", "dc.title = lib*"),
    ("@attr 1=4 @attr 5=106 lib*ar!", "dc.title = lib*ar?"),
    ("@attr 1=4 @attr 5=100 lib*", 'dc.title = "lib\\*"'),
    ('@attr 1=4 "C++?"', 'dc.title = "C++\\?"'),
    ('@attr 1=4 "a\\\\b"', 'dc.title = "a\\\\b"'),
    ('@attr 1=4 "say \\"hi\\""', 'dc.title = "say \\"hi\\""'),
    ("@attr 1=4 @attr 5=1 C++?", 'dc.title = "C++\\?*"'),
    ('@attr 1=4 "  spaced  "', "dc.title = spaced"),
    ("@attr 1=4 @term numeric 1984", "dc.title = 1984"),
    ("@attr 1=4 @term string 1984", "dc.title = 1984"),
    # string use attributes (CQL index names)
    ("@attr 1=title x", "dc.title = x"),
    ("@attr 1=DC.Title x", "dc.title = x"),
    ("@attr 1=bath.isbn 4004310016", "bath.isbn = 4004310016"),
    ("@attr 1=cql.resultSetId rs1", "cql.resultSetId = rs1"),
    ("@attr 1=possessingInstitution @attr 3=1 iizuka", "bath.possessingInstitution = iizuka"),
    # operators
    ("@and @attr 1=4 a @attr 1=1003 b", "dc.title = a and dc.creator = b"),
    ("@or @attr 1=4 a @attr 1=1003 b", "dc.title = a or dc.creator = b"),
    ("@not @attr 1=4 a @attr 1=1003 b", "dc.title = a not dc.creator = b"),
    ("@or @and a b c", "(a and b) or c"),
    ("@and a @or b c", "a and (b or c)"),
    ('@attr 4=1 @and @attr 1=1003 "bob dylan" @attr 1=4 "slow train"',
     'dc.creator adj "bob dylan" and dc.title adj "slow train"'),
    ("@prox 0 3 1 2 k 2 dylan zimmerman", "dylan prox/distance<=3/ordered zimmerman"),
    ("@prox void 1 0 3 k 2 dylan zimmerman", "dylan prox/distance=1 zimmerman"),
    ("@prox 0 2 0 1 known 2 a b", "a prox/distance<2 b"),
    ("@prox 0 5 0 4 k 2 a b", "a prox/distance>=5 b"),
    ("@prox 0 5 0 5 k 2 a b", "a prox/distance>5 b"),
    ("@prox 0 5 0 6 k 2 a b", "a prox/distance<>5 b"),
    ("@set rs1", "cql.resultSetId = rs1"),
    ("@and @attr 1=4 a @set rs1", "dc.title = a and cql.resultSetId = rs1"),
    # embedded sort (type 7)
    ("@or @attr 1=1016 water @attr 7=1 @attr 1=4 0", "cql.anywhere = water sortby dc.title/sort.ascending"),
    ("@or @attr 7=2 @attr 1=31 0 @attr 1=1016 water", "cql.anywhere = water sortby dc.date/sort.descending"),
    ("@or @or @attr 1=1016 water @attr 7=1 @attr 1=4 0 @attr 7=2 @attr 1=30 1",
     "cql.anywhere = water sortby dc.title dc.date/sort.descending"),
    ("@or @or @attr 1=1016 water @attr 7=2 @attr 1=30 1 @attr 7=1 @attr 1=4 0",
     "cql.anywhere = water sortby dc.title dc.date/sort.descending"),
    ("@or @or @attr 1=4 a @attr 1=4 b @attr 7=1 @attr 1=1003 @attr 4=1 @term numeric 0",
     "dc.title = a or dc.title = b sortby dc.creator"),
    ("@and x @or y @attr 7=1 @attr 1=date 0", "x and y sortby dc.date"),
]


@pytest.mark.parametrize("pqf, cql", BATH + MAPPINGS)
def test_mapping_matches_cql(pqf, cql):
    q = mapped(pqf)
    assert q.ranked == ("2=102" in pqf)           # relevance order only when asked (else index order)
    q = replace(q, ranked=True)
    assert q == parse_cql(cql, CONFIG)
    # the same through BER
    assert replace(rpn_to_query(decode_rpn_query(decode_all(encode_rpn_query(parse_pqf(pqf)))), CONFIG, MAPPING),
                   ranked=True) == q


def test_mapping_by_hand_built_queries():
    title = Clause("dc.title", "=", "x")
    # equal duplicates are harmless
    assert rpn_to_query(q1(APT((A(1, 4), A(1, 4)), "x"))) == Query(title, ranked=False)
    assert rpn_to_query(q1(APT((A(1, 4, BIB1), A(2, 3)), "x"))) == Query(title, ranked=False)
    assert rpn_to_query(q1(APT((A(1, ("title",)),), "x"))) == Query(title, ranked=False)      # one-string complex list
    assert rpn_to_query(q1(APT((AttributeElement(1, "title", None, (1, 2)),), "x"))) == Query(title, ranked=False)
    assert rpn_to_query(q1(APT((A(1, 4),), "x", "characterString")), CONFIG, MAPPING) == Query(title, ranked=False)
    ands = _balanced("and", 7)          # 127 operators, depth 8
    assert rpn_to_query(q1(ands), CONFIG, MAPPING).root.op == "and"
    q = rpn_to_query(q1(RPNOp("or", APT((), "a"), APT((A(7, 2), A(1, 4)), " 0 "))), CONFIG, MAPPING)
    assert q == Query(Clause("cql.serverChoice", "=", "a"), (SortKey("title", False),), ranked=False)


def _balanced(op: str, depth: int):
    if depth == 0:
        return APT((), "x")
    return RPNOp(op, _balanced(op, depth - 1), _balanced(op, depth - 1))


def test_mapping_defaults_load_configuration():
    assert rpn_to_query(parse_pqf("@attr 1=4 x")) == Query(Clause("dc.title", "=", "x"), ranked=False)


# ---------------------------------------------------------------------------
# Mapping: every diagnostic

DIAGNOSTICS = [
    # attribute sets, types, values
    ("@attrset gils x", 121, GILS),
    ("@attr gils 1=4 x", 121, GILS),
    ("@attr 1.2.3 4=1 x", 121, "1.2.3"),
    ("@attr 8=1 x", 113, "8"),
    ("@attr 9=30 @attr 1=4 utah", 113, "9"),
    ("@attr 0=1 x", 113, "0"),
    ("@attr 1=99 x", 114, "99"),
    ("@attr 1=13 x", 114, "13"),
    ("@attr 1=nosuch x", 114, "nosuch"),
    ("@attr 1=dc.nosuch x", 114, "dc.nosuch"),
    ("@attr 2=100 x", 117, "100"),
    ("@attr 2=101 x", 117, "101"),
    ("@attr 2=7 x", 117, "7"),
    ("@attr 2=eq x", 117, "eq"),
    ("@attr 3=4 x", 119, "4"),
    ("@attr 3=first x", 119, "first"),
    ("@attr 4=100 x", 118, "100"),
    ("@attr 4=101 x", 118, "101"),
    ("@attr 4=102 x", 118, "102"),
    ("@attr 4=103 x", 118, "103"),
    ("@attr 4=104 x", 118, "104"),
    ("@attr 4=107 x", 118, "107"),
    ("@attr 4=7 x", 118, "7"),
    ("@attr 5=102 x", 120, "102"),
    ("@attr 5=103 x", 120, "103"),
    ("@attr 5=4 x", 120, "4"),
    ("@attr 6=4 x", 122, "4"),
    # terms
    ('@attr 1=4 ""', 125, "empty term"),
    ('@attr 1=4 "   "', 125, "empty term"),
    ("@term oid 1.2.3", 229, "oid"),
    ("@term datetime 2024", 229, "dateTime"),
    ('@term null ""', 229, "null"),
    ("@attr 1=4 @attr 5=104 colo?2r", 120, "104: ?n (at most n characters) is not supported"),
    # combinations
    ("@attr 1=31 @attr 2=1 @attr 4=6 2000", 123, "relation 1 with structure 6"),
    ("@attr 1=31 @attr 2=4 @attr 5=1 2000", 123, "relation 4 with truncation 1"),
    ("@attr 1=31 @attr 2=104 @attr 5=3 2000", 123, "relation 104 with truncation 3"),
    ("@attr 1=4 @attr 3=1 @attr 4=6 a", 123, "structure 6 with position 1 and completeness 1"),
    ("@attr 1=4 @attr 6=3 @attr 4=105 a", 123, "structure 105 with position 3 and completeness 3"),
    ("@attr 1=31 @attr 4=4 nineteen", 126, "nineteen"),
    ("@attr 1=31 @attr 2=4 @attr 4=109 x2000", 126, "x2000"),
    ('@attr 1=31 @attr 2=104 @attr 4=4 "1990 then"', 126, "1990 then"),
    ("@attr 1=cql.allRecords @attr 2=1 x", 123, "cql.allRecords with relation 1"),
    ("@attr 1=cql.resultSetId @attr 2=5 x", 123, "cql.resultSetId with relation 5"),
    ('@attr 1=cql.resultSetId ""', 128, "empty result set name"),
    # operators
    ("@prox 1 3 1 2 k 2 a b", 131, "exclusion"),
    ("@prox 0 3 1 7 k 2 a b", 131, "7"),
    ("@prox 0 3 1 0 k 2 a b", 131, "0"),
    ("@prox 0 3 1 2 k 1 a b", 132, "1"),
    ("@prox 0 3 1 2 k 3 a b", 132, "3"),
    ("@prox 0 3 1 2 p 2 a b", 132, "private 2"),
    ("@prox 0 -1 1 2 k 2 a b", 202, "-1"),
    ("@prox 0 1000000000 1 2 k 2 a b", 202, "1000000000"),
    ("@prox 0 3 1 2 k 2 @set seta b", 129, "seta"),
    ("@prox 0 3 1 2 k 2 a @set setb", 129, "setb"),
    ("@attr 1=4 @set seta", 245, "seta"),
    ('@set ""', 128, "empty result set name"),
    # embedded sort
    ("@attr 7=1 @attr 1=4 0", 237, "the query has only embedded sort keys"),
    ("@and water @attr 7=1 @attr 1=4 0", 237, "an embedded sort key (type 7) must be @or'ed with the query"),
    ("@prox 0 1 0 2 k 2 water @attr 7=1 @attr 1=4 0", 237,
     "an embedded sort key (type 7) must be @or'ed with the query"),
    ("@or water @attr 7=3 @attr 1=4 0", 237, "sort attribute 7=3 (1 ascending, 2 descending)"),
    ("@or water @attr 7=up @attr 1=4 0", 237, "sort attribute 7=up (1 ascending, 2 descending)"),
    ("@or water @attr 7=1 @attr 1=4 first", 237, "the term of a sort key is its level (0, 1 ...), not 'first'"),
    ("@or water @attr 7=1 0", 116, "sort key"),
    ("@or water @attr 7=1 @attr 1=21 0", 207, "use attribute 21 (Subject heading) cannot be sorted on"),
    ("@or water @attr 7=1 @attr 1=99 0", 114, "99"),
    ("@or water @attr 7=1 @attr 1=subject 0", 207, "subject"),
    ("@or water @attr 7=1 @attr 1=nosuch 0", 114, "nosuch"),
]


@pytest.mark.parametrize("pqf, code, addinfo", DIAGNOSTICS)
def test_diagnostics(pqf, code, addinfo):
    with pytest.raises(Bib1Diagnostic) as e:
        mapped(pqf)
    assert (e.value.code, e.value.addinfo) == (code, addinfo)
    assert e.value.message == MESSAGES[code]


@pytest.mark.parametrize("root, code, addinfo", [
    (APT((A(1, ("a", "b")),), "x"), 246, "1"),
    (APT((A(4, (1,)),), "x"), 246, "4"),
    (APT((A(1, 4), A(1, 21)), "x"), 123, "type 1 given twice (4 and 21)"),
    (APT((A(1, 4), A(1, "4")), "x"), 123, "type 1 given twice (4 and 4)"),
    (APT((A(1, 4),), b"\x30\x00", "external"), 229, "external"),
    (APT((A(1, 4),), b"\x80\x01\x01", "integerAndUnit"), 229, "integerAndUnit"),
    (APT((A(1, 4),), b"raw", "general"), 229, "general"),
    (RPNOp("prox", APT((), "a"), APT((), "b")), 108, "prox operator without proximity parameters"),
    (RPNOp("xor", APT((), "a"), APT((), "b")), 110, "xor"),
    (_chain(MAX_RPN_DEPTH), 108, "query nested deeper than 100 levels"),
    (_balanced("or", 8), 6, "250"),
    ("not a node", 108, "not an RPN operand: str"),
])
def test_diagnostics_of_hand_built_queries(root, code, addinfo):
    with pytest.raises(Bib1Diagnostic) as e:
        rpn_to_query(q1(root), CONFIG, MAPPING)
    assert (e.value.code, e.value.addinfo) == (code, addinfo)


def test_query_level_set_and_type_check():
    with pytest.raises(Bib1Diagnostic) as e:
        rpn_to_query(RPNQuery("1.2.840.10003.3.2", APT((), "x")), CONFIG, MAPPING)
    assert (e.value.code, e.value.addinfo) == (121, "1.2.840.10003.3.2")
    with pytest.raises(TypeError):
        rpn_to_query(APT((), "x"), CONFIG, MAPPING)


def test_diagnostic_precedence():
    """Set before type before duplicates before values before use before term."""
    assert _code("@attr gils 8=1 x") == 121
    assert _code("@attr 8=1 @attr 2=100 x") == 113
    assert _code("@attr 2=100 @attr 1=99 x") == 117
    assert _code("@attr 1=99 @term oid 1.2") == 114
    assert _code('@attr 1=4 @term oid 1.2') == 229


def _code(pqf: str) -> int:
    with pytest.raises(Bib1Diagnostic) as e:
        mapped(pqf)
    return e.value.code


# ---------------------------------------------------------------------------
# Scan and Sort

@pytest.mark.parametrize("pqf, expected", [
    ("@attr 1=4 hist", ("dc.title", "hist")),
    ("@attr 1=4 @attr 6=3 hist", ("dc.title", "hist")),
    ("@attr 1=4 @attr 5=1 @attr 2=4 @attr 3=1 @attr 4=1 hist", ("dc.title", "hist")),
    ("hist", ("cql.serverChoice", "hist")),
    ("@attr 1=title a*b?", ("dc.title", "a\\*b\\?")),
    ('@attr 1=1003 ""', ("dc.creator", "")),
    ('@attr 1=1003 " x "', ("dc.creator", " x ")),
    ("@attr 1=7 @term numeric 400431", ("bath.isbn", "400431")),
    ("@attr 1=possessingInstitution a", ("bath.possessingInstitution", "a")),
])
def test_scan(pqf, expected):
    attribute_set, apt = parse_pqf_scan(pqf)
    assert apt_to_scan(apt, CONFIG, MAPPING) == expected
    assert apt_to_scan(apt) == expected
    assert apt_to_scan(apt, CONFIG, MAPPING, attribute_set=None) == expected


@pytest.mark.parametrize("pqf, attribute_set, code, addinfo", [
    ("@attr 1=99 x", BIB1, 114, "99"),
    ("@attr 1=_ALLRECORDS x", BIB1, 114, "_ALLRECORDS"),
    ("@attr 1=cql.resultSetId x", BIB1, 114, "cql.resultSetId"),
    ("@attr 7=1 @attr 1=4 x", BIB1, 113, "7"),
    ("@attr 2=100 @attr 1=4 x", BIB1, 117, "100"),
    ("@attr 5=102 @attr 1=4 x", BIB1, 120, "102"),
    ("@attr 1=4 x", GILS, 121, GILS),
    ("@attr gils 1=4 x", BIB1, 121, GILS),
    ("@attr 1=4 @term oid 1.2", BIB1, 229, "oid"),
])
def test_scan_diagnostics(pqf, attribute_set, code, addinfo):
    with pytest.raises(Bib1Diagnostic) as e:
        apt_to_scan(parse_pqf_scan(pqf)[1], CONFIG, MAPPING, attribute_set)
    assert (e.value.code, e.value.addinfo) == (code, addinfo)


@pytest.mark.parametrize("spec, column", [
    ("title", "title"), ("dc.title", "title"), ("DC.Creator", "creator"), ("bath.author", "creator"),
    ("dc.date", "date"), ("relevance", "relevance"), ("cql.relevance", "relevance"), ("date", "date"),
    ("1=4", "title"), (" 1 = 1003 ", "creator"), ("1=31", "date"), ("1=30", "date"),
    ((A(1, 4),), "title"), ((A(1, 1003, BIB1),), "creator"), ((A(1, 31), A(2, 3), A(7, 1)), "date"),
    ((A(1, "dc.title"),), "title"), ((A(1, "date"),), "date"), ([A(1, 1), A(1, 1)], "creator"),
    ((A(1, 5),), "title"), ((A(1, 1002),), "creator"),
])
def test_sort_column_for(spec, column):
    assert sort_column_for(spec, CONFIG, MAPPING) == column


@pytest.mark.parametrize("spec, code, addinfo", [
    ("", 207, "empty sort field"),
    ("dc.subject", 207, "dc.subject"),
    ("nosuch", 207, "nosuch"),
    ("1=21", 207, "use attribute 21 (Subject heading) cannot be sorted on"),
    ("1=99", 114, "99"),
    ((), 116, "sort key"),
    ((A(2, 3),), 116, "sort key"),
    ((A(1, 21),), 207, "use attribute 21 (Subject heading) cannot be sorted on"),
    ((A(1, 7),), 207, "use attribute 7 (ISBN) cannot be sorted on"),
    ((A(1, 99),), 114, "99"),
    ((A(1, "nosuch"),), 114, "nosuch"),
    ((A(1, "dc.subject"),), 207, "dc.subject"),
    ((A(1, 4, GILS),), 121, GILS),
    ((A(9, 1), A(1, 4)), 113, "9"),
    ((A(1, ("a", 1)),), 246, "1"),
    ((A(1, 4), A(1, 1003)), 123, "type 1 given twice"),
])
def test_sort_column_for_diagnostics(spec, code, addinfo):
    with pytest.raises(Bib1Diagnostic) as e:
        sort_column_for(spec, CONFIG, MAPPING)
    assert (e.value.code, e.value.addinfo) == (code, addinfo)


# ---------------------------------------------------------------------------
# config/bib1.toml

def test_shipped_mapping_is_valid():
    validate_bib1_mapping(MAPPING, CONFIG)
    assert load_bib1_mapping() is MAPPING                       # cached
    required = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 20, 21, 30, 31, 54, 1003, 1004, 1007, 1016, 1017, 1018, 1035, 1044}
    assert required <= set(MAPPING.use)
    assert MAPPING.use[9].index == "dc.identifier" and MAPPING.use[12].index == "rec.identifier"
    assert MAPPING.use[20].index == "local.ndc" and MAPPING.use[1044].index == "bath.possessingInstitution"
    sortable = {v: e.sort for v, e in MAPPING.use.items() if e.sort}
    assert sortable[4] == "title" and sortable[1003] == "creator" and sortable[31] == "date"
    assert MAPPING.use_strings["_allrecords"] == "cql.allRecords"


def test_mapping_file_locations(tmp_path, monkeypatch):
    body = '[use]\n4 = { name = "Title", index = "dc.title", sort = "title" }\n'
    (tmp_path / "bib1.toml").write_text(body)
    by_dir = load_bib1_mapping(tmp_path)
    assert by_dir is load_bib1_mapping(tmp_path / "bib1.toml")
    assert set(by_dir.use) == {4}
    monkeypatch.setenv("UNIONCAT_CONFIG_DIR", str(tmp_path))
    assert load_bib1_mapping() is by_dir
    with pytest.raises(Bib1Diagnostic) as e:
        rpn_to_query(parse_pqf("@attr 1=1003 x"), CONFIG, by_dir)
    assert e.value.code == 114


@pytest.mark.parametrize("body, problem", [
    ('[use]\nx = { index = "dc.title" }\n', "not a use attribute number"),
    ("[use]\n4 = 5\n", "expected a table"),
    ('[use]\n4 = { name = "T" }\n', "'index' is required"),
    ('[use]\n4 = { index = "dc.title", colour = "red" }\n', "unknown keys"),
    ('[use]\n4 = { index = "dc.title", kind = "blob" }\n', "kind 'blob'"),
    ('[use]\n4 = { index = "dc.title", sort = 3 }\n', "'sort' must be a column name"),
    ("[use_string]\nx = 3\n", "expected an index name"),
    ("[other]\n", "unknown tables"),
])
def test_bad_mapping_files(tmp_path, body, problem):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ValueError, match=problem):
        load_bib1_mapping(path)


def test_validate_mapping_reports_problems():
    bad = Bib1Mapping({4: UseAttribute(4, "Title", "dc.nosuch", "nosort"), 21: UseAttribute(21, "S", "dc.subject")},
                      {"x": "nosuch.index", "y": "cql.allRecords"})
    with pytest.raises(ValueError) as e:
        validate_bib1_mapping(bad, CONFIG)
    text = str(e.value)
    assert "dc.nosuch" in text and "nosort" in text and "nosuch.index" in text and "cql.allRecords" not in text
    with pytest.raises(Bib1Diagnostic) as d:          # a misconfigured index is an unsupported use attribute
        rpn_to_query(parse_pqf("@attr 1=4 x"), CONFIG, bad)
    assert (d.value.code, d.value.addinfo) == (114, "4")


# ---------------------------------------------------------------------------
# z3950.diagnostics

def test_diagnostic_messages():
    used = {1, 2, 3, 6, 7, 9, 11, 13, 14, 16, 17, 18, 19, 20, 22, 23, 25, 26, 27, 28, 29, 30, 31, 100, 101, 102,
            103, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124,
            125, 126, 128, 129, 130, 131, 132, 201, 202, 203, 205, 206, 207, 211, 212, 213, 214, 215, 227, 228,
            229, 230, 231, 233, 235, 236, 237, 238, 239, 242, 245, 246, 247, 1029}
    assert used <= set(MESSAGES)
    assert set(SRU_TO_BIB1.values()) <= set(MESSAGES)
    assert BIB1_DIAGNOSTIC_SET == "1.2.840.10003.4.1"
    assert message(114) == "Unsupported use attribute" and message(9999) == "Bib-1 diagnostic 9999"


def test_bib1_diagnostic_exception():
    d = Bib1Diagnostic(114, "99")
    assert (d.code, d.addinfo, d.message, d.diagnostic_set) == (114, "99", MESSAGES[114], BIB1_DIAGNOSTIC_SET)
    assert str(d) == "Bib-1 diagnostic 114: Unsupported use attribute (99)"
    assert str(Bib1Diagnostic(2)) == "Bib-1 diagnostic 2: Temporary system error"
    assert Bib1Diagnostic(2, None).addinfo == ""
    assert Bib1Diagnostic(100, "x", message="custom").message == "custom"
    assert isinstance(d, Exception)


@pytest.mark.parametrize("sru, bib1", [
    (1, 1), (2, 2), (10, 108), (15, 121), (16, 114), (19, 117), (20, 117), (21, 123), (22, 123), (27, 125),
    (36, 126), (38, 6), (39, 201), (40, 131), (41, 202), (42, 132), (43, 203), (44, 201), (46, 110), (48, 3),
    (51, 30), (61, 13), (66, 239), (67, 238), (80, 207), (82, 207), (90, 214), (91, 215), (92, 213), (120, 233),
    (235, 235),
])
def test_from_query_error(sru, bib1):
    d = from_query_error(QueryError(sru, "detail"))
    assert (d.code, d.addinfo) == (bib1, "detail")


def test_from_query_error_special_cases():
    # 28: too many expansions vs an unsupported mask (messages as the backends write them)
    d = from_query_error(QueryError(28, "lib*", "masked term 'lib*' matches more than 2000 words; be more specific"))
    assert (d.code, d.addinfo) == (7, "lib*")
    d = from_query_error(QueryError(28, "", "a masked term in a phrase matches too many words; be more specific"))
    assert d.code == 7 and d.addinfo == "a masked term in a phrase matches too many words; be more specific"
    d = from_query_error(QueryError(28, "図*書", "a * inside a CJK sequence is not supported; use two terms"))
    assert (d.code, d.addinfo) == (120, "図*書")
    # no counterpart: 100 with the SRU number, never 1
    d = from_query_error(QueryError(6, "colour", "unknown facet colour"))
    assert (d.code, d.addinfo) == (100, "SRU diagnostic 6: colour")
    assert from_query_error(QueryError(999)).addinfo == "SRU diagnostic 999"


def test_every_query_error_of_the_project_has_a_counterpart():
    """The QueryError codes raised by sru/cql.py, indexers/ and the backends (6,
    an SRU facet parameter, cannot come from a Z39.50 query)."""
    for code in (10, 15, 16, 19, 20, 21, 22, 27, 28, 36, 38, 39, 40, 41, 42, 43, 44, 46, 48, 51, 80, 82, 90, 91, 92):
        assert from_query_error(QueryError(code, "x", "m")).code != 100, code


@pytest.mark.parametrize("cql, code, addinfo", [
    ("dc.nosuch = x", 114, "dc.nosuch"),
    ("title encloses x", 117, "encloses"),
    ('title = ""', 125, ""),
    ("a prox/unit=sentence b", 132, "sentence"),
    ("a sortby dc.subject", 207, "dc.subject"),
])
def test_from_cql_errors(cql, code, addinfo):
    with pytest.raises(QueryError) as e:
        parse_cql(cql, CONFIG)
    d = from_query_error(e.value)
    assert (d.code, d.addinfo) == (code, addinfo or e.value.message)


def test_cql_syntax_error_becomes_malformed_query():
    with pytest.raises(QueryError) as e:
        parse_cql("(a", CONFIG)
    assert from_query_error(e.value).code == 108
