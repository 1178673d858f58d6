"""z3950.ber: hand-derived X.690 vectors, hypothesis round trips, and fuzzing
(random bytes, mutations of valid encodings, nesting and length bombs) that
checks decode() and Framer raise nothing but BERError and return quickly.

The long fuzz run (>= 100,000 inputs) is marked slow: pytest -m slow tests/test_z3950_ber.py
"""
from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from z3950.ber import (
    APPLICATION,
    BIT_STRING,
    BOOLEAN,
    CONTEXT,
    ENUMERATED,
    EXTERNAL,
    GENERAL_STRING,
    INTEGER,
    NULL,
    OBJECT_IDENTIFIER,
    OCTET_STRING,
    PRIVATE,
    SEQUENCE,
    UNIVERSAL,
    VISIBLE_STRING,
    BERError,
    Element,
    Framer,
    Truncated,
    decode,
    decode_all,
    enc_bits,
    enc_bool,
    enc_enum,
    enc_explicit,
    enc_int,
    enc_length,
    enc_null,
    enc_octets,
    enc_oid,
    enc_seq,
    enc_str,
    enc_tag,
    encode,
)

H = bytes.fromhex
TIME_BOUND = 2.0     # CPU seconds of this process for any single decode/feed call (process_time:
                    # another process's load does not count, so a busy machine does not fail it)

# An InitializeRequest as sent by Debian's yaz-client 5.34.0 (captured from the wire).
YAZ_INIT = H("b452830200e0840300e9a28504040000008604040000009f6e0238319f6f0359415a9f702f352e3334"
             "2e302064656330633861306237363231333234363863633832363463316232323065616531633637626437")


# ---------------------------------------------------------------------------
# Known vectors, derived by hand from X.690

@pytest.mark.parametrize("n, content", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "0080"), (-1, "ff"), (-128, "80"), (-129, "ff7f"),
    (255, "00ff"), (256, "0100"), (-256, "ff00"), (-257, "feff"), (32767, "7fff"), (32768, "008000"),
    (2**63, "008000000000000000"), (-(2**63), "8000000000000000"),
])
def test_integer_vectors(n, content):
    """8.3.2: minimal two's complement; the first 9 bits are never all 0 or all 1."""
    encoded = H("02") + bytes([len(H(content))]) + H(content)
    assert enc_int(INTEGER, n, UNIVERSAL) == encoded
    element, used = decode(encoded)
    assert (element.cls, element.constructed, element.tag, used) == (UNIVERSAL, False, INTEGER, len(encoded))
    assert element.as_int() == n


def test_integer_padding_tolerated_and_empty_rejected():
    assert decode(H("02020005"))[0].as_int() == 5
    assert decode(H("0202ffff"))[0].as_int() == -1
    with pytest.raises(BERError, match="no content"):
        decode(H("0200"))[0].as_int()


def test_enumerated_boolean_null():
    assert enc_enum(ENUMERATED, 3, UNIVERSAL) == H("0a0103")
    assert enc_bool(BOOLEAN, True, UNIVERSAL) == H("0101ff")
    assert enc_bool(BOOLEAN, False, UNIVERSAL) == H("010100")
    assert enc_bool(12, True) == H("8c01ff")                # result [12] IMPLICIT BOOLEAN
    assert enc_null(NULL, UNIVERSAL) == H("0500")
    assert decode(H("010101"))[0].as_bool() is True         # BER: any non-zero octet is TRUE
    assert decode(H("010100"))[0].as_bool() is False
    assert decode(H("0500"))[0].as_null() is None
    for bad in ("0100", "01020000"):
        with pytest.raises(BERError, match="BOOLEAN"):
            decode(H(bad))[0].as_bool()
    with pytest.raises(BERError, match="NULL"):
        decode(H("050100"))[0].as_null()


@pytest.mark.parametrize("oid, content", [
    ("1.2.840.10003.5.10", "2a8648ce13050a"),     # USMARC record syntax: 840 = 0x86 0x48, 10003 = 0xce 0x13
    ("1.2.840.10003.3.1", "2a8648ce130301"),      # Bib-1 attribute set
    ("0.0", "00"),
    ("0.39", "27"),
    ("1.0", "28"),
    ("2.0", "50"),
    ("2.999.3", "883703"),                                              # 80 + 999 = 1079 = 0x08 * 128 + 0x37
    ("1.3.6.1.4.1", "2b06010401"),
    ("2.25.340282366920938463463374607431768211455",                    # 2**128 - 1 under 2.25
     "6983ffffffffffffffffffffffffffffffffff7f"),
])
def test_oid_vectors(oid, content):
    """8.19: base-128 subidentifiers, the first one being 40*X + Y."""
    encoded = H("06") + bytes([len(H(content))]) + H(content)
    assert enc_oid(OBJECT_IDENTIFIER, oid, UNIVERSAL) == encoded
    assert decode(encoded)[0].as_oid() == oid


@pytest.mark.parametrize("content, reason", [
    ("", "no content"),
    ("8001", "0x80 leading"),               # non-minimal subidentifier (8.19.2)
    ("2a80860a", "0x80 leading"),
    ("2a86", "ends inside"),
    ("2a" + "ff" * 20 + "7f", "longer than"),
])
def test_oid_rejects(content, reason):
    element = decode(H("06") + bytes([len(H(content))]) + H(content))[0]
    with pytest.raises(BERError, match=reason):
        element.as_oid()


@pytest.mark.parametrize("bad", ["", "1", "1.", "3.1", "0.40", "1.40", "1.2.-3", "1.2.x", "1..2", "1.２"])
def test_oid_encode_rejects(bad):
    with pytest.raises(ValueError):
        enc_oid(OBJECT_IDENTIFIER, bad, UNIVERSAL)


def test_bit_string_vectors():
    # X.690 8.6.4.2 example: '0A3B5F291CD'H, 44 bits, 4 unused in the last octet
    element = decode(H("0307040a3b5f291cd0"))[0]
    bits = element.as_bits()
    assert len(bits) == 44
    assert "".join("1" if b else "0" for b in bits) == bin(0x0A3B5F291CD)[2:].zfill(44)
    assert enc_bits(BIT_STRING, bits, UNIVERSAL) == H("0307040a3b5f291cd0")
    assert enc_bits(3, [True, True, True]) == H("830205e0")         # protocolVersion 1,2,3
    assert enc_bits(BIT_STRING, [], UNIVERSAL) == H("030100")
    assert decode(H("030100"))[0].as_bits() == ()
    # the unused bits of the last octet are ignored, whatever their value
    assert decode(H("030207ff"))[0].as_bits() == (True,)
    assert decode(H("030201ff"))[0].as_bits() == (True,) * 7
    # constructed (segmented) form, 8.6.4.1: '11110000' then '11' (6 unused bits)
    assert decode(H("2380" "030200f0" "030206c0" "0000"))[0].as_bits() == (True,) * 4 + (False,) * 4 + (True, True)


@pytest.mark.parametrize("encoded, reason", [
    ("0300", "unused-bits octet"),
    ("030108", "unused bits"),
    ("03020800", "unused bits"),
    ("2307030201ff030100", "other than the last"),
    ("2300", "no segments"),
    ("2303040100", "segment"),
])
def test_bit_string_rejects(encoded, reason):
    element = decode(H(encoded))[0]
    with pytest.raises(BERError, match=reason):
        element.as_bits()


@pytest.mark.parametrize("cls, constructed, tag, identifier", [
    (UNIVERSAL, False, 2, "02"),
    (UNIVERSAL, True, 16, "30"),
    (APPLICATION, False, 1, "41"),
    (CONTEXT, True, 20, "b4"),              # initRequest
    (CONTEXT, True, 30, "be"),              # the highest low tag number
    (CONTEXT, False, 31, "9f1f"),           # the lowest high tag number (8.1.2.4)
    (CONTEXT, True, 48, "bf30"),            # close
    (CONTEXT, False, 110, "9f6e"),          # implementationId
    (CONTEXT, False, 127, "9f7f"),
    (CONTEXT, False, 128, "9f8100"),
    (CONTEXT, True, 201, "bf8149"),         # otherInfo: 201 = 1 * 128 + 73
    (CONTEXT, False, 211, "9f8153"),        # closeReason
    (PRIVATE, False, 16383, "dfff7f"),     # 16383 = 127 * 128 + 127
    (PRIVATE, True, 2**28 - 1, "ffffffff7f"),
])
def test_tag_vectors(cls, constructed, tag, identifier):
    assert enc_tag(cls, constructed, tag) == H(identifier)
    encoded = H(identifier) + (b"\x00" if constructed else b"\x01x")
    element, used = decode(encoded)
    assert (element.cls, element.constructed, element.tag, used) == (cls, constructed, tag, len(encoded))


@pytest.mark.parametrize("encoded, reason", [
    ("9f800100", "0x80 leading"),            # 8.1.2.4.2 c
    ("9f1e00", "high tag number form"),      # 30 must use the low form
    ("9f0000", "high tag number form"),
    ("9fffffffff7f00", "longer than 4"),
    ("0000", "end-of-contents octets outside"),
    ("0480", "indefinite length on a primitive"),
    ("04ff", "reserved"),
    ("0485010000000000", "5 octets"),
    ("04890102030405060708090a", "9 octets"),
])
def test_header_rejects(encoded, reason):
    with pytest.raises(BERError, match=reason) as info:
        decode(H(encoded))
    assert not isinstance(info.value, Truncated)


@pytest.mark.parametrize("n, octets", [
    (0, "00"), (127, "7f"), (128, "8180"), (255, "81ff"), (256, "820100"), (65535, "82ffff"),
    (65536, "83010000"), (2**32 - 1, "84ffffffff"),
])
def test_length_vectors(n, octets):
    assert enc_length(n) == H(octets)


def test_long_form_lengths_decode():
    for n in (0, 1, 127, 128, 255, 256, 1000, 70000):
        encoded = enc_octets(OCTET_STRING, bytes(n), UNIVERSAL)
        element, used = decode(encoded)
        assert element.value == bytes(n) and used == len(encoded)
    # BER (unlike DER) allows a long form where the short one would do
    assert decode(H("048105") + b"hello")[0].value == b"hello"
    assert decode(H("04840000000568656c6c6f"))[0].value == b"hello"


def test_length_limits():
    with pytest.raises(BERError, match="max_length"):
        decode(H("0482ffff") + bytes(100), max_length=1000)
    with pytest.raises(BERError, match="max_length"):
        decode(H("0484ffffffff"))
    # at the limit is fine, the limit covers identifier + length + content
    assert decode(H("0403") + b"abc", max_length=5)[1] == 5
    with pytest.raises(BERError, match="max_length"):
        decode(H("0403") + b"abc", max_length=4)


def test_truncation_is_reported_as_truncated():
    encoded = enc_seq(SEQUENCE, [enc_int(INTEGER, 300, UNIVERSAL), enc_octets(4, b"abc")], UNIVERSAL)
    for cut in range(len(encoded)):
        with pytest.raises(Truncated):
            decode(encoded[:cut])


def test_child_overrunning_its_parent():
    with pytest.raises(BERError, match="enclosing element"):
        decode(H("3003020201ff"))
    with pytest.raises(BERError, match="enclosing element"):
        decode(H("30033080050000"))       # indefinite child not closed inside its definite parent


def test_indefinite_length():
    element, used = decode(H("3080020105000099"))
    assert used == 7 and element == Element(UNIVERSAL, True, SEQUENCE, (Element(UNIVERSAL, False, INTEGER, b"\x05"),))
    nested, used = decode(H("30803080050000000000"))
    assert used == 10 and nested.children[0].children[0].is_(UNIVERSAL, NULL)
    assert decode(H("a0800000"))[0] == Element(CONTEXT, True, 0, ())
    # indefinite inside definite, definite inside indefinite
    assert decode(H("3006" "a080" "0500" "0000"))[0].children[0].children[0].tag == NULL
    assert encode(decode(H("a080" "3003020101" "0000"))[0]) == H("a0053003020101")
    with pytest.raises(BERError, match="non-zero length"):
        decode(H("30800001"))
    with pytest.raises(Truncated):
        decode(H("3080020105"))
    with pytest.raises(Truncated):
        decode(H("308000"))


def test_constructed_octet_string():
    element = decode(H("2480" "04026162" "040163" "2480" "040164" "0000" "0000"))[0]
    assert element.octets() == b"abcd"
    assert decode(H("2407" "04026162" "040163"))[0].octets() == b"abc"
    # implicitly tagged string in segmented form: [111] IMPLICIT InternationalString
    assert decode(H("bf6f07" "040359415a" "0400"))[0].as_text() == "YAZ"
    with pytest.raises(BERError, match="not an OCTET STRING"):
        decode(H("2403" "020105"))[0].octets()


def test_strings():
    assert enc_str(GENERAL_STRING, "Ünï", UNIVERSAL) == H("1b05c39c6ec3af")
    assert decode(H("1b05c39c6ec3af"))[0].as_text() == "Ünï"
    assert decode(H("1a03594158"))[0].as_text("ascii") == "YAX"
    assert enc_str(111, b"\xff\x00") == H("9f6f02ff00")
    with pytest.raises(BERError, match="utf-8") as info:
        decode(H("1b0361ff62"))[0].as_text()
    assert isinstance(info.value.__cause__, UnicodeDecodeError)
    assert info.value.offset == 0
    assert decode(H("1b0161"))[0].as_text("latin-1") == "a"


def test_external_is_just_a_constructed_universal_8():
    ext = enc_seq(EXTERNAL, [enc_oid(OBJECT_IDENTIFIER, "1.2.840.10003.5.10", UNIVERSAL),
                             enc_explicit(1, enc_octets(OCTET_STRING, b"00000nam", UNIVERSAL))], UNIVERSAL)
    element = decode_all(ext)
    assert element.is_(UNIVERSAL, EXTERNAL) and element.constructed
    assert element.children[0].as_oid() == "1.2.840.10003.5.10"
    assert element.children[1].children[0].octets() == b"00000nam"


def test_offsets_and_errors_carry_positions():
    element = decode(YAZ_INIT)[0]
    assert [c.offset for c in element.children][:3] == [2, 6, 11]
    with pytest.raises(BERError) as info:
        decode(H("30050201010480"))
    assert info.value.offset == 5 and "at byte 5" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_helpers_check_form():
    seq = decode(H("3003020101"))[0]
    with pytest.raises(BERError, match="primitive element was expected"):
        seq.as_int()
    with pytest.raises(BERError, match="constructed element was expected"):
        _ = seq.children[0].children
    assert seq.expect(UNIVERSAL, SEQUENCE, True) is seq
    with pytest.raises(BERError, match=r"expected \[CONTEXT 20\]"):
        seq.expect(CONTEXT, 20)


def test_decode_all_and_trailing_bytes():
    assert decode(H("050002"))[1] == 2
    with pytest.raises(BERError, match="1 bytes after"):
        decode_all(H("050002"))


def test_depth_and_element_limits():
    assert decode(H("3080") * 5 + H("0000") * 5, max_depth=5)[1] == 20
    with pytest.raises(BERError, match="max_depth"):
        decode(H("3080") * 6 + H("0000") * 6, max_depth=5)
    nulls = enc_seq(SEQUENCE, [enc_null(NULL, UNIVERSAL)] * 9, UNIVERSAL)
    assert len(decode(nulls, max_elements=10)[0].children) == 9
    with pytest.raises(BERError, match="max_elements"):
        decode(nulls, max_elements=9)
    with pytest.raises(TypeError):
        decode(nulls, max_depth=0)


def test_yaz_init_request_structure():
    element = decode_all(YAZ_INIT)
    assert element.is_(CONTEXT, 20) and element.constructed
    assert element.children[0].as_bits()[:3] == (True, True, True)
    assert element.children[2].as_int() == 64 * 1024 * 1024
    assert element.children[5].is_(CONTEXT, 111) and element.children[5].as_text() == "YAZ"
    assert encode(element) == YAZ_INIT


# ---------------------------------------------------------------------------
# Framer

def test_framer_splits_a_stream():
    a = enc_seq(20, [enc_int(5, 1000)])
    b = enc_seq(48, [enc_int(211, 0)])
    c = H("b580" "0500" "0000")                 # indefinite-length top level
    stream = a + b + c + a
    framer = Framer()
    assert framer.feed(stream) == [a, b, c, a] and framer.pending == 0
    for step in (1, 2, 3, 7):
        framer = Framer()
        frames = []
        for i in range(0, len(stream), step):
            frames += framer.feed(stream[i:i + step])
        assert frames == [a, b, c, a] and framer.pending == 0


def test_framer_need_and_pending():
    framer = Framer()
    assert framer.feed(b"") == [] and framer.need() >= 1
    assert framer.feed(H("b482")) == [] and framer.need() >= 1
    assert framer.feed(H("0100")) == [] and framer.need() == 256 and framer.pending == 4
    assert framer.feed(bytes(200)) == [] and framer.need() == 56
    frames = framer.feed(bytes(56) + H("30"))
    assert frames == [H("b4820100") + bytes(256)] and framer.pending == 1


def test_framer_refuses_oversized_pdu_from_its_header():
    framer = Framer(max_length=1 << 20)
    with pytest.raises(BERError, match="max_length"):
        framer.feed(H("b484 7fffffff".replace(" ", "")))
    assert framer.pending == 6                      # nothing of the content was waited for
    with pytest.raises(BERError, match="max_length"):   # the stream stays broken
        framer.feed(b"\x00")
    with pytest.raises(BERError, match="5 octets"):
        Framer().feed(H("30850000000001"))


def test_framer_indefinite_limits():
    framer = Framer(max_length=100)
    framer.feed(H("3080"))
    with pytest.raises(BERError, match="max_length"):
        framer.feed(H("0400") * 60)
    with pytest.raises(BERError, match="max_depth"):
        Framer(max_depth=10).feed(H("3080") * 11)
    with pytest.raises(BERError, match="max_elements"):
        Framer(max_elements=10).feed(H("3080") + H("0500") * 10)


def test_framer_accept_refuses_foreign_protocols_at_once():
    framer = Framer(accept=lambda cls, constructed, tag: cls == CONTEXT and constructed and 20 <= tag <= 50)
    with pytest.raises(BERError, match="unexpected top-level"):
        framer.feed(b"GET / HTTP/1.1\r\n")
    framer = Framer(accept=lambda cls, constructed, tag: cls == CONTEXT)
    with pytest.raises(BERError):
        framer.feed(b"\x16\x03\x01\x02\x00")          # a TLS ClientHello


# ---------------------------------------------------------------------------
# Round trips (hypothesis)

def tags(cls=st.integers(0, 3)):  # noqa: B008 - a strategy is immutable
    return st.tuples(cls, st.one_of(st.integers(0, 40), st.integers(0, 2**28 - 1))).filter(
        lambda ct: ct != (UNIVERSAL, 0))


primitives = st.builds(lambda ct, v: Element(ct[0], False, ct[1], v), tags(), st.binary(max_size=300))
elements = st.recursive(
    primitives,
    lambda kids: st.builds(lambda ct, cs: Element(ct[0], True, ct[1], tuple(cs)), tags(),
                           st.lists(kids, max_size=5)),
    max_leaves=40,
)


def encode_indefinite(element: Element) -> bytes:
    """Every constructed element in the indefinite form (test helper)."""
    if not element.constructed:
        return encode(element)
    return (enc_tag(element.cls, True, element.tag) + b"\x80"
            + b"".join(encode_indefinite(c) for c in element.value) + b"\x00\x00")


@given(st.integers())
def test_integer_round_trip(n):
    encoded = enc_int(INTEGER, n, UNIVERSAL)
    content = decode_all(encoded).value
    if len(content) > 1:   # 8.3.2: no redundant leading 0x00 or 0xFF octet
        assert not (content[0] == 0x00 and content[1] < 0x80)
        assert not (content[0] == 0xFF and content[1] >= 0x80)
    assert decode_all(encoded).as_int() == n


@given(st.integers(0, 2), st.integers(0, 2**139), st.lists(st.integers(0, 2**140 - 1), max_size=12))
def test_oid_round_trip(first, second, rest):
    if first < 2:
        second %= 40
    oid = ".".join(map(str, [first, second, *rest]))
    assert decode_all(enc_oid(OBJECT_IDENTIFIER, oid, UNIVERSAL)).as_oid() == oid


@given(st.lists(st.booleans(), max_size=200))
def test_bits_round_trip(bits):
    assert decode_all(enc_bits(BIT_STRING, bits, UNIVERSAL)).as_bits() == tuple(bits)


@given(st.binary(max_size=3000), tags(st.sampled_from([UNIVERSAL, CONTEXT])))
@settings(max_examples=60)
def test_octets_round_trip(value, ct):
    if ct[0] == UNIVERSAL:
        ct = (UNIVERSAL, OCTET_STRING)
    assert decode_all(enc_octets(ct[1], value, ct[0])).octets() == value


@given(st.text(alphabet=st.characters(codec="utf-8")), st.sampled_from([GENERAL_STRING, VISIBLE_STRING]))
def test_text_round_trip(text, tag):
    assert decode_all(enc_str(tag, text, UNIVERSAL)).as_text() == text


@given(st.booleans(), st.integers(0, 2**28 - 1), st.integers(0, 3))
def test_bool_null_round_trip(value, tag, cls):
    if (cls, tag) == (UNIVERSAL, 0):
        tag = 1
    assert decode_all(enc_bool(tag, value, cls)).as_bool() is value
    assert decode_all(enc_null(tag, cls)).as_null() is None


@given(elements)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_tree_round_trip(tree):
    definite = encode(tree)
    assert decode_all(definite) == tree
    assert encode(decode_all(definite)) == definite
    assert decode_all(encode_indefinite(tree)) == tree


@given(st.lists(elements, min_size=1, max_size=5), st.lists(st.integers(1, 50), min_size=1, max_size=30),
       st.booleans())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_framer_round_trip(trees, cuts, indefinite):
    wanted = [(encode_indefinite(t) if indefinite and t.constructed else encode(t)) for t in trees]
    stream = b"".join(wanted)
    framer = Framer()
    frames = []
    pos = i = 0
    while pos < len(stream):
        frames += framer.feed(stream[pos:pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1
    assert frames == wanted and framer.pending == 0
    assert [decode_all(f) for f in frames] == trees


# ---------------------------------------------------------------------------
# Fuzzing: only BERError may come out, and quickly

def seed_corpus() -> list[bytes]:
    rng = random.Random(1)
    corpus = [
        YAZ_INIT,
        H("3080020105000099"),
        H("2480" "04026162" "040163" "2480" "040164" "0000" "0000"),
        H("0307040a3b5f291cd0"),
        enc_oid(OBJECT_IDENTIFIER, "1.2.840.10003.5.10", UNIVERSAL),
        enc_seq(48, [enc_octets(2, b"ref"), enc_int(211, 6), enc_str(3, "bye")]),
        enc_seq(EXTERNAL, [enc_oid(OBJECT_IDENTIFIER, "1.2.840.10003.5.10", UNIVERSAL),
                           enc_explicit(1, enc_octets(OCTET_STRING, bytes(300), UNIVERSAL))], UNIVERSAL),
        enc_int(INTEGER, -(2**100), UNIVERSAL),
        enc_bits(3, [True, False, True] * 7),
    ]
    for _ in range(8):
        corpus.append(encode(random_tree(rng, 4)))
        corpus.append(encode_indefinite(random_tree(rng, 4)))
    return corpus


def random_tree(rng: random.Random, depth: int) -> Element:
    cls, tag = rng.randrange(4), rng.choice([1, 2, 3, 4, 6, 16, 20, 31, 110, 201, 5000])
    if depth == 0 or rng.random() < 0.3:
        return Element(cls, False, tag, rng.randbytes(rng.choice([0, 1, 2, 5, 130, 300])))
    return Element(cls, True, tag, tuple(random_tree(rng, depth - 1) for _ in range(rng.randrange(4))))


def deep_definite(levels: int) -> bytes:
    inner = enc_null(NULL, UNIVERSAL)
    for _ in range(levels):
        inner = enc_seq(SEQUENCE, [inner], UNIVERSAL)
    return inner


# Inputs decode() must refuse (depth, element count, length limits, bad headers).
BOMBS = [
    H("3080") * 100_000,                             # indefinite nesting bomb
    H("2480") * 100_000,                             # segmented-string nesting bomb
    H("3080") * 100_000 + H("0000") * 100_000,       # ... even when properly closed
    deep_definite(3000),                             # definite-length nesting, well formed
    H("3081ff") * 50_000,                            # nested lengths that cannot fit their parents
    H("3084ffffffff"),                               # 4 GiB declared
    H("3084ffffffff") + bytes(1000),
    H("3083030d40") + H("0500") * 100_000,           # 100,001 elements
    H("3080") + H("0500") * 150_000,                 # the same, indefinite and never closed
    H("9f") + H("ff") * 100_000,                     # endless high tag number
    H("0488") + H("ff") * 8,                         # 8 length octets
    H("00") * 1000,                                  # end-of-contents at the top level
]
# Well-formed TLVs whose content is hostile to the typed readers.
CONTENT_BOMBS = [
    H("06") + enc_length(50_000) + H("ff") * 49_999 + H("7f"),    # one enormous OID arc
    H("06") + enc_length(200_000) + H("01") * 200_000,            # 200,001 OID arcs
    H("02") + enc_length(200_000) + H("7f") * 200_000,            # a 1.6-Mbit INTEGER
    H("24") + enc_length(100_000) + H("0400") * 50_000,           # 50,000 empty segments
    H("03") + enc_length(200_000) + H("00") + H("ff") * 199_999,  # a 1.6-Mbit BIT STRING
]


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """One to four random edits: bit flips, byte overwrites, truncation, insertion,
    deletion, duplication, length-field tampering, splicing another input."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and data:
            data[min(pos, len(data) - 1)] = rng.choice([0x00, 0x80, 0x81, 0x84, 0xFF, 0x1F, 0x7F, rng.randrange(256)])
        elif op == 2:
            del data[pos:]
        elif op == 3:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 4:
            del data[pos:pos + rng.randint(1, 16)]
        elif op == 5:
            end = min(len(data), pos + rng.randint(1, 64))
            data[pos:pos] = data[pos:end] * rng.randint(1, 50)
        elif op == 6:   # replace what may be a length octet by an extreme one
            data[pos:pos + 1] = rng.choice([H("80"), H("84ffffffff"), H("847fffffff"), H("85"), H("7f"), H("00"),
                                            H("820000"), H("83ffffff")])
        elif op == 7:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            data[pos:] = other[cut:]
        else:
            data[pos:pos] = rng.choice([H("3080"), H("0000"), H("2480"), H("9f"), H("a080")]) * rng.randint(1, 300)
    return bytes(data)


def exercise(data: bytes, rng: random.Random) -> None:
    """decode(), every typed reader on what it returns, and a Framer fed in random
    chunks; each call must end in time, raising nothing but BERError."""
    def timed(call):
        start = time.process_time()
        try:
            return call()
        except BERError:
            return None
        finally:
            assert time.process_time() - start < TIME_BOUND, (call, data[:64].hex())

    result = timed(lambda: decode(data, max_length=1 << 20))
    if result is not None:
        stack = [result[0]]
        while stack:
            el = stack.pop()
            if el.constructed:
                stack.extend(el.value)
            for reader in (el.as_int, el.as_bool, el.as_null, el.as_oid, el.as_bits, el.as_text, el.octets):
                timed(reader)
            timed(lambda: el.as_text("ascii"))  # noqa: B023 - called at once, in this iteration
            timed(lambda: el.children)  # noqa: B023 - called at once, in this iteration
    framer = Framer(max_length=1 << 16, max_depth=64)
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 17, 512, len(data)])
        if timed(lambda: framer.feed(data[pos:pos + step])) is None:  # noqa: B023 - called at once, in this iteration
            break
        pos += step


CORPUS = seed_corpus()


@given(st.binary(max_size=600))
@settings(max_examples=400, deadline=None)
def test_fuzz_random_bytes(data):
    exercise(data, random.Random(len(data)))


@given(st.randoms(use_true_random=False), st.sampled_from(CORPUS))
@settings(max_examples=400, deadline=None)
def test_fuzz_mutations(rng, seed):
    exercise(mutate(rng, seed, CORPUS), rng)


@pytest.mark.parametrize("bomb", BOMBS, ids=range(len(BOMBS)))
def test_fuzz_bombs(bomb):
    start = time.process_time()
    with pytest.raises(BERError):
        decode(bomb, max_length=1 << 20)
    assert time.process_time() - start < TIME_BOUND
    exercise(bomb, random.Random(0))


@pytest.mark.parametrize("bomb", CONTENT_BOMBS, ids=range(len(CONTENT_BOMBS)))
def test_fuzz_content_bombs(bomb):
    assert decode(bomb, max_length=1 << 20)[1] == len(bomb)
    exercise(bomb, random.Random(0))


@pytest.mark.slow
def test_fuzz_long_run():
    """>= 100,000 inputs from a seeded generator: mutations of the corpus (and of
    earlier mutants), raw random bytes, and the bombs with random edits."""
    rng = random.Random(20240501)
    inputs = 120_000
    pool = list(CORPUS)
    start = time.perf_counter()
    for i in range(inputs):
        kind = i % 10
        if kind < 7:
            data = mutate(rng, rng.choice(pool), CORPUS)
            if len(data) < 4096 and rng.random() < 0.05:
                pool.append(data)
                if len(pool) > 500:
                    pool.pop(len(CORPUS) + rng.randrange(len(pool) - len(CORPUS)))
        elif kind < 9:
            data = rng.randbytes(rng.randrange(64))
        elif i % 200 == 9:
            data = mutate(rng, rng.choice(BOMBS + CONTENT_BOMBS), CORPUS)
        else:
            data = rng.randbytes(rng.randrange(2, 600))
        exercise(data, rng)
    elapsed = time.perf_counter() - start
    print(f"\nz3950.ber long fuzz: {inputs} inputs in {elapsed:.1f} s")
