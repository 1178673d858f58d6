"""The SIP2 codec (sip2/codec.py, sip2/messages.py), sans I/O: round trips of every
message of the standard, the checksum and the sequence number, Japanese text in UTF-8
and Shift_JIS, and input that is not a message (random, truncated, oversized), which
raises Malformed and nothing else."""
from __future__ import annotations

import pysip2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip2 import codec
from sip2 import messages as M
from sip2.codec import Framer, Malformed, TooLong, decode, encode

# ------------------------------------------------------------------ strategies

_VALUE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="|\r\n")
value = st.text(_VALUE_CHARS, max_size=40)
# what fixed fields hold (dates, flags, counts, "2.00", languages); no "AY"/"AZ" can be
# formed from them, so a message without a trailer cannot end looking like one
fixed_chars = st.sampled_from("0123456789 YNU.")


CODES = tuple(sorted(M.SPECS))


@st.composite
def messages(draw, codes=CODES):
    code = draw(st.sampled_from(codes))
    spec = M.SPECS[code]
    fixed = {name: draw(st.text(fixed_chars, min_size=w, max_size=w)) for name, w in spec.fixed}
    ids = draw(st.lists(st.sampled_from(spec.fields), max_size=8)) if spec.fields else []
    ids = list(spec.required) + ids
    fields = tuple((fid, draw(value)) for fid in ids)
    return M.Message(code, fixed, fields)


# ------------------------------------------------------------------ round trips

@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.one_of(st.none(), st.integers(0, 9)), st.booleans(),
       st.sampled_from(["utf-8", "cp932", "euc_jp"]))
def test_every_message_round_trips(m, sequence, with_checksum, encoding):
    data = encode(m, encoding=encoding, sequence=sequence, with_checksum=with_checksum)
    assert data.endswith(b"\r") and data.count(b"\r") == 1
    d = decode(data[:-1], encoding)
    assert d.message.code == m.code and d.message.fixed == m.fixed
    # what the encoding cannot hold comes back as "?" (an empty value as an empty value)
    assert d.message.fields == tuple((k, v.encode(encoding, "replace").decode(encoding)) for k, v in m.fields)
    assert d.sequence == sequence
    assert d.checksummed == (sequence is not None or with_checksum)


def test_the_checksum_of_a_known_message():
    # a check-in with AY2 whose checksum, computed by hand, is EB80
    body = b"09N20160419    12200820160419    122008APReading Room 1|AO830|AB830$28170815|AC|AY2AZ"
    assert codec.checksum(body) == "EB80"
    assert (sum(body) + 0xEB80) & 0xFFFF == 0
    d = decode(body + b"EB80")
    assert d.sequence == 2 and d.message.get("AB") == "830$28170815" and d.message["return_date"] == \
        "20160419    122008"


def test_a_wrong_checksum_is_a_checksum_error_and_nothing_else():
    good = encode(M.make("17", transaction_date="20261120    100000", fields=[("AO", "x"), ("AB", "B1")]),
                  sequence=3)[:-1]
    bad = good[:-1] + (b"0" if good[-1:] != b"0" else b"1")
    with pytest.raises(Malformed) as e:
        decode(bad)
    assert e.value.kind == codec.CHECKSUM and e.value.code == "17" and e.value.sequence == 3
    # a changed byte in the body, checksum unchanged
    with pytest.raises(Malformed) as e:
        decode(good.replace(b"B1", b"B2"))
    assert e.value.kind == codec.CHECKSUM


def test_deviations_of_real_clients_are_accepted():
    # the PyPI Sip2 client sums the characters of a Python string, and drops leading zeros
    text = "23014" + "20261120    100000" + "AOx|AA7300000001|AC|AD花子|AY1AZ"
    char_sum = f"{(-sum(map(ord, text))) & 0xFFFF:X}"
    assert codec.checksum(text.encode()) != char_sum.rjust(4, "0")         # not the byte sum
    d = decode((text + char_sum).encode("utf-8"))
    assert d.message.get("AD") == "花子" and d.sequence == 1
    # a checksum below 0x1000 written with three digits
    for n in range(1000):
        body = f"17{'20261120    100000'}AB{'~' * n}|AY1AZ".encode()
        if int(codec.checksum(body), 16) < 0x1000:
            short = codec.checksum(body).lstrip("0")
            assert len(short) < 4 and decode(body + short.encode()).message.code == "17"
            break
    else:
        pytest.fail("no message with a small checksum found")


def test_responses_carry_the_sequence_and_checksum_of_the_standard():
    data = encode(M.make("94", ok="1"), sequence=7)
    assert data[:-1].endswith(b"AY7AZ" + codec.checksum(data[:-5]).encode())
    assert (sum(data[:-5]) + int(data[-5:-1], 16)) & 0xFFFF == 0
    assert encode(M.Message("96"), with_checksum=True) == b"96AZFEF6\r"
    assert encode(M.make("94", ok="0")) == b"940\r"


# ------------------------------------------------------------------ Japanese

def test_shift_jis_with_a_bar_as_second_byte_is_read_by_characters():
    """ポ is 0x83 0x7C in Shift_JIS: 0x7C is "|". Fields are split after decoding."""
    assert "ポ".encode("cp932") == b"\x83\x7c"
    m = M.make("09", no_block="N", transaction_date="20261120    100000", return_date="20261120    100000",
               fields=[("AP", "ポートタウン分室"), ("AO", "hiroshima"), ("AB", "H0001"), ("AC", "")])
    data = encode(m, encoding="cp932", sequence=0)
    assert b"\x83\x7c" in data
    d = decode(data[:-1], "cp932")
    assert d.message.get("AP") == "ポートタウン分室" and d.message.get("AB") == "H0001"
    # read as UTF-8 the same bytes are refused, saying where
    with pytest.raises(Malformed) as e:
        decode(data[:-1], "utf-8")
    assert e.value.kind == codec.BAD_ENCODING and "not utf-8" in e.value.detail
    assert e.value.code == "09"


def test_values_are_made_safe_and_long_screen_messages_continue():
    m = M.make("18", circulation_status="03", security_marker="00", fee_type="01",
               transaction_date="20261120    100000",
               fields=[("AB", "B1"), ("AJ", "上巻|下巻\r\n合本"), ("AF", ["あ" * 200])])
    data = encode(m, encoding="utf-8")
    d = decode(data[:-1])
    assert d.message.get("AJ") == "上巻｜下巻  合本"
    parts = d.message.all("AF")
    assert "".join(parts) == "あ" * 200 and len(parts) == 3
    assert all(len(p.encode()) <= 255 for p in parts)
    # what the code page cannot hold becomes "?": 鷗 (JIS X 0213) is not in cp932
    m = M.make("18", circulation_status="03", security_marker="00", fee_type="01",
               transaction_date="20261120    100000", fields=[("AB", "B1"), ("AJ", "森鷗外 🙂")])
    assert decode(encode(m, encoding="cp932")[:-1], "cp932").message.get("AJ") == "森?外 ?"
    assert decode(encode(m, encoding="utf-8")[:-1], "utf-8").message.get("AJ") == "森鷗外 🙂"
    long_title = "字" * 100                                   # 300 bytes in UTF-8: cut at 255
    m = M.make("18", circulation_status="03", security_marker="00", fee_type="01",
               transaction_date="20261120    100000", fields=[("AB", "B1"), ("AJ", long_title)])
    assert decode(encode(m)[:-1]).message.get("AJ") == "字" * 85


# ------------------------------------------------------------------ what is not a message

@settings(max_examples=1000)
@given(st.binary(max_size=300), st.sampled_from(["utf-8", "cp932"]))
def test_random_bytes_raise_malformed_or_decode(data, encoding):
    try:
        d = decode(data, encoding)
    except Malformed as e:
        assert e.kind in (codec.CHECKSUM, codec.UNREADABLE, codec.CUT_SHORT, codec.MISSING_FIELD,
                          codec.BAD_ENCODING)
        assert e.detail
    else:
        assert d.message.code in M.SPECS


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(messages(codes=tuple(sorted(M.REQUESTS))), st.integers(0, 9))
def test_every_prefix_of_a_request_is_handled(m, seq):
    data = encode(m, sequence=seq)[:-1]
    for n in range(len(data) + 1):
        try:
            decode(data[:n])
        except Malformed as e:
            assert e.kind in (codec.CHECKSUM, codec.UNREADABLE, codec.CUT_SHORT, codec.MISSING_FIELD,
                              codec.BAD_ENCODING), e.kind


def test_truncated_and_incomplete_requests_say_what_is_missing():
    with pytest.raises(Malformed) as e:
        decode(b"11NN2026")
    assert e.value.kind == codec.CUT_SHORT and "Checkout (11) needs 38 characters" in e.value.detail
    with pytest.raises(Malformed) as e:
        decode(b"11NN20261120    100000" + b" " * 18 + b"AOx|AA7300000001|")
    assert e.value.kind == codec.MISSING_FIELD and "AB (item identifier)" in e.value.detail
    assert e.value.message.get("AA") == "7300000001"           # what could be read, for the refusal
    with pytest.raises(Malformed) as e:
        decode(b"XX hello")
    assert e.value.kind == codec.UNREADABLE
    with pytest.raises(Malformed) as e:
        decode(b"")
    assert e.value.kind == codec.UNREADABLE
    # an unterminated last field and empty fields are read leniently
    d = decode(b"17" + b"20261120    100000" + b"AOx||ABB1")
    assert d.message.get("AB") == "B1"


# ------------------------------------------------------------------ framing

@settings(max_examples=200)
@given(st.lists(messages(codes=tuple(sorted(M.REQUESTS))), min_size=1, max_size=5), st.data())
def test_the_framer_finds_every_message_however_the_bytes_arrive(ms, data):
    stream = b"".join(encode(m, sequence=i % 10) + (b"\n" if i % 2 else b"") for i, m in enumerate(ms))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer, frames, last = Framer(), [], 0
    for c in cuts + [len(stream)]:
        frames += framer.feed(stream[last:c])
        last = c
    assert [decode(f).message.code for f in frames] == [m.code for m in ms]
    assert framer.pending == (1 if (len(ms) - 1) % 2 else 0)     # a last LF waits for the next message


def test_an_overlong_message_is_dropped_up_to_its_cr_and_reported_once():
    framer = Framer(max_length=100)
    assert framer.feed(b"x" * 80) == []
    assert framer.feed(b"y" * 80) == []                      # over the limit: dropping
    assert framer.feed(b"z" * 10_000) == []                  # memory stays bounded
    assert framer.pending == 10_160
    out = framer.feed(b"tail\r9900802.00\r")
    assert out[0] == TooLong(10_164) and out[1] == b"9900802.00"
    assert framer.pending == 0


# ------------------------------------------------------------------ the other codec

def test_requests_encoded_by_pysip2_read_the_same_here():
    req = pysip2.CheckoutRequest(sc_renewal_policy="N", no_block="N", transaction_date="20261120    100000",
                                 nb_due_date="20261120    100000", institution_id="hiroshima",
                                 patron_identifier="7300000001", item_identifier="H0001", terminal_password="",
                                 patron_password="hana2026")
    data = pysip2.encode_message(req, sequence_number=4, checksum=True, encoding="utf-8")
    d = decode(data[:-1])
    assert d.sequence == 4 and d.message.code == "11"
    assert (d.message.get("AA"), d.message.get("AB"), d.message.get("AD")) == ("7300000001", "H0001", "hana2026")
    # and ours read by pysip2's strict decoder
    ours = M.make("94", ok="1")
    got = pysip2.decode_message(encode(ours, sequence=4), encoding="utf-8")
    assert got.sequence_number == 4 and got.message == pysip2.LoginResponse(ok="1")


def test_make_refuses_what_is_not_the_message():
    with pytest.raises(ValueError, match="must be 1 characters"):
        M.make("94", ok="11")
    with pytest.raises(ValueError, match="has no field"):
        M.make("94", ok="1", fields=[("AF", "x")])
    with pytest.raises(ValueError, match="required fields missing: AB"):
        M.make("18", circulation_status="03", security_marker="00", fee_type="01",
               transaction_date="20261120    100000", fields=[("AJ", "t")])


def test_every_request_has_a_refusal_that_pysip2_accepts():
    for code in sorted(M.REQUESTS - {"97"}):
        r = M.refusal(code, None, when="20261120    100000", screen=["だめです", "no"])
        got = pysip2.decode_message(encode(r, sequence=1), encoding="utf-8")
        assert isinstance(got.message, pysip2.SIPResponse) and got.sequence_number == 1
        if code != "93":
            assert tuple(got.message.screen_message) == ("だめです", "no"), code
