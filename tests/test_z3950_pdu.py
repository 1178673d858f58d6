"""z3950.pdu: Init request/response and Close -- hand-built vectors, Init PDUs
captured from Debian's yaz-client, hypothesis round trips, fuzzing of decode_pdu,
and (marked peer) a live yaz-client session against a loopback listener that
answers with our own encodings."""
from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_z3950_ber import YAZ_INIT, exercise, mutate
from z3950.ber import (
    CONTEXT,
    EXTERNAL,
    OBJECT_IDENTIFIER,
    OCTET_STRING,
    UNIVERSAL,
    BERError,
    Element,
    enc_bits,
    enc_explicit,
    enc_int,
    enc_octets,
    enc_oid,
    enc_seq,
    enc_str,
)
from z3950.pdu import (
    OPTION_BITS,
    Close,
    IdAnonymous,
    IdOpen,
    IdOther,
    IdPass,
    InitializeRequest,
    InitializeResponse,
    UnsupportedAPDU,
    apdu_framer,
    decode_pdu,
    encode_pdu,
)

H = bytes.fromhex

# YAZ_INIT (test_z3950_ber) is yaz-client 5.34.0's InitializeRequest: b4 52, then
# protocolVersion 83 02 00e0, options 84 03 00e9a2, preferredMessageSize and
# exceptionalRecordSize 85/86 04 04000000, then implementationId/Name/Version.
YAZ_HEAD, YAZ_TAIL = YAZ_INIT[2:23], YAZ_INIT[23:]
# The same client after "auth grp usr pw" (yaz reads that as user grp, group usr) ...
YAZ_INIT_IDPASS = H("b464") + YAZ_HEAD + H("a710" "300e" "8003757372" "8103677270" "82027077") + YAZ_TAIL
# ... and after "auth onlyone" (idAuthentication open).
YAZ_INIT_OPEN = H("b45d") + YAZ_HEAD + H("a709" "1a076f6e6c796f6e65") + YAZ_TAIL

YAZ_OPTIONS = frozenset({"search", "present", "delSet", "triggerResourceCtrl", "scan", "sort",
                         "extendedServices", "namedResultSets"})


def test_decode_yaz_init_request():
    pdu = decode_pdu(YAZ_INIT)
    assert isinstance(pdu, InitializeRequest)
    assert pdu.protocol_version == {1, 2, 3}
    assert pdu.options == YAZ_OPTIONS
    assert pdu.preferred_message_size == pdu.exceptional_record_size == 64 * 1024 * 1024
    assert pdu.reference_id is None and pdu.id_authentication is None
    assert (pdu.implementation_id, pdu.implementation_name) == ("81", "YAZ")
    assert pdu.implementation_version.startswith("5.34.0 ")
    assert decode_pdu(encode_pdu(pdu)) == pdu


def test_decode_yaz_init_request_with_authentication():
    assert decode_pdu(YAZ_INIT_IDPASS).id_authentication == IdPass(group_id="usr", user_id="grp", password="pw")
    assert decode_pdu(YAZ_INIT_OPEN).id_authentication == IdOpen("onlyone")


def test_init_response_vector():
    """Derived by hand: [21] { [3] '111'B, [4] '11'B, [5] 1024, [6] 2048, [12] TRUE, [111] "uc" };
    content 4 + 4 + 4 + 4 + 3 + 5 = 24 octets."""
    pdu = InitializeResponse(result=True, protocol_version=frozenset({1, 2, 3}),
                             options=frozenset({"search", "present"}), preferred_message_size=1024,
                             exceptional_record_size=2048, implementation_name="uc")
    encoded = H("b518" "830205e0" "840206c0" "85020400" "86020800" "8c01ff" "9f6f02" "7563")
    assert encode_pdu(pdu) == encoded
    assert decode_pdu(encoded) == pdu


def test_close_vector():
    """[48] { [2] 'ab', [211] 6 (protocolError), [3] "bye" }: tag 48 takes the high
    tag number form (bf 30), 211 = 1 * 128 + 83 (9f 81 53); content 4 + 5 + 5 = 14 octets."""
    pdu = Close(close_reason=6, reference_id=b"ab", diagnostic_information="bye")
    encoded = H("bf300e" "82026162" "9f815301" "06" "8303627965")
    assert encode_pdu(pdu) == encoded
    assert decode_pdu(encoded) == pdu


def test_id_authentication_forms_round_trip():
    external = Element(UNIVERSAL, True, EXTERNAL, (Element(UNIVERSAL, False, OBJECT_IDENTIFIER, H("2a8648ce13")),))
    for auth in (IdOpen("x/y"), IdPass(user_id="u"), IdPass(), IdAnonymous(), IdOther(external)):
        pdu = InitializeRequest(id_authentication=auth)
        assert decode_pdu(encode_pdu(pdu)).id_authentication == auth
    assert b"\xa7\x02\x05\x00" in encode_pdu(InitializeRequest(id_authentication=IdAnonymous()))


def test_unnamed_option_bits_and_versions_survive():
    pdu = InitializeRequest(protocol_version=frozenset({2, 3, 9}), options=frozenset({"bit9", "bit40", "scan"}))
    assert decode_pdu(encode_pdu(pdu)) == pdu
    with pytest.raises(ValueError):
        encode_pdu(InitializeRequest(options=frozenset({"nonsense"})))


def test_raw_parts_are_kept():
    user_info = Element(UNIVERSAL, True, EXTERNAL, (
        Element(UNIVERSAL, False, OBJECT_IDENTIFIER, H("2a8648ce130309")),
        Element(CONTEXT, True, 0, (Element(UNIVERSAL, False, OCTET_STRING, b"charset"),)),
    ))
    other = Element(CONTEXT, True, 201, (Element(UNIVERSAL, True, 16, (Element(CONTEXT, False, 2, b"hi"),)),))
    for pdu in (InitializeRequest(user_information=user_info, other_info=other),
                InitializeResponse(result=False, user_information=user_info, other_info=other),
                Close(close_reason=9, resource_report_format="1.2.840.10003.7.1", resource_report=other.value[0],
                      other_info=other)):
        assert decode_pdu(encode_pdu(pdu)) == pdu


VERSIONS = enc_bits(3, [1, 1, 1])
OPTIONS = enc_bits(4, [1, 1])
SIZES = enc_int(5, 1000) + enc_int(6, 1000)


@pytest.mark.parametrize("encoded, reason", [
    (enc_seq(20, [OPTIONS, SIZES]), "protocolVersion missing"),
    (enc_seq(20, [VERSIONS, OPTIONS, enc_int(5, 1)]), "exceptionalRecordSize missing"),
    (enc_seq(21, [VERSIONS, OPTIONS, SIZES]), "result missing"),
    (enc_seq(20, [VERSIONS, OPTIONS, SIZES, enc_int(99, 1)]), "unexpected"),
    (enc_seq(20, [VERSIONS, OPTIONS, SIZES, enc_str(111, "b"), enc_str(110, "a")]), "unexpected"),   # out of order
    (enc_seq(20, [VERSIONS, OPTIONS, SIZES, enc_str(111, b"\xc3")]), "utf-8"),
    (enc_seq(20, [VERSIONS, OPTIONS, SIZES, enc_explicit(7, b"")]), "0 elements inside"),
    (enc_seq(20, [VERSIONS, OPTIONS, SIZES, enc_explicit(7, enc_str(26, b"\xff", UNIVERSAL))]), "ascii"),
    (enc_seq(20, [enc_octets(3, b"\x09\x00"), OPTIONS, SIZES]), "unused bits"),
    (enc_seq(48, []), "closeReason missing"),
    (enc_seq(48, [enc_int(211, 0), enc_oid(4, "1.2.3"), enc_oid(4, "1.2.3")]), "unexpected"),
    (enc_octets(20, b""), "primitive"),
    (enc_seq(19, []), "not a Z39.50 APDU"),
    (enc_seq(20, [], cls=UNIVERSAL), "not a Z39.50 APDU"),
    (enc_seq(20, [VERSIONS, OPTIONS, SIZES]) + b"\x00", "bytes after"),
])
def test_malformed_pdus(encoded, reason):
    with pytest.raises(BERError, match=reason):
        decode_pdu(encoded)


def test_unsupported_apdu_says_which():
    with pytest.raises(UnsupportedAPDU) as info:
        decode_pdu(enc_seq(46, [enc_int(13, 0)]))      # an extendedServicesRequest
    assert info.value.tag == 46 and isinstance(info.value, BERError)


def test_apdu_framer():
    request, close = encode_pdu(InitializeRequest()), encode_pdu(Close())
    framer = apdu_framer()
    assert framer.feed(request[:5]) == []
    assert framer.feed(request[5:] + close) == [request, close]
    with pytest.raises(BERError, match="unexpected top-level"):
        apdu_framer().feed(b"GET /sru?version=1.2 HTTP/1.1\r\n")
    with pytest.raises(BERError, match="max_length"):
        apdu_framer(max_length=1000).feed(H("b4820fa0"))


# ---------------------------------------------------------------------------
# hypothesis round trips

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
opt_texts = st.none() | texts
common = dict(
    protocol_version=st.frozensets(st.integers(1, 12), max_size=5),
    options=st.frozensets(st.sampled_from(sorted(OPTION_BITS)) | st.builds("bit{}".format, st.integers(22, 70)),
                          max_size=10),
    preferred_message_size=st.integers(-(2**40), 2**70),
    exceptional_record_size=st.integers(0, 2**31),
    reference_id=st.none() | st.binary(max_size=20),
    implementation_id=opt_texts, implementation_name=opt_texts, implementation_version=opt_texts,
)
auths = st.none() | st.builds(IdOpen, st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126))) \
    | st.builds(IdPass, opt_texts, opt_texts, opt_texts) | st.just(IdAnonymous())


@given(st.builds(InitializeRequest, id_authentication=auths, **common))
def test_init_request_round_trip(pdu):
    assert decode_pdu(encode_pdu(pdu)) == pdu


@given(st.builds(InitializeResponse, result=st.booleans(), **common))
def test_init_response_round_trip(pdu):
    assert decode_pdu(encode_pdu(pdu)) == pdu


@given(st.builds(Close, close_reason=st.integers(-5, 2**40), reference_id=st.none() | st.binary(max_size=20),
                 diagnostic_information=opt_texts,
                 resource_report_format=st.none() | st.sampled_from(["1.2.840.10003.7.1", "1.2.840.10003.7.2"])))
def test_close_round_trip(pdu):
    assert decode_pdu(encode_pdu(pdu)) == pdu


# ---------------------------------------------------------------------------
# fuzzing decode_pdu

PDU_CORPUS = [YAZ_INIT, YAZ_INIT_IDPASS, YAZ_INIT_OPEN,
              encode_pdu(InitializeResponse(result=False, reference_id=b"r1", implementation_name="x")),
              encode_pdu(Close(close_reason=6, diagnostic_information="bye", resource_report_format="1.2.3"))]


def exercise_pdu(data: bytes, rng: random.Random) -> None:
    try:
        decode_pdu(data)
    except BERError:
        pass
    exercise(data, rng)


@given(st.randoms(use_true_random=False), st.sampled_from(PDU_CORPUS))
@settings(max_examples=300, deadline=None)
def test_fuzz_decode_pdu(rng, seed):
    exercise_pdu(mutate(rng, seed, PDU_CORPUS), rng)


@pytest.mark.slow
def test_fuzz_decode_pdu_long_run():
    rng = random.Random(7)
    for _ in range(20_000):
        exercise_pdu(mutate(rng, rng.choice(PDU_CORPUS), PDU_CORPUS), rng)


# ---------------------------------------------------------------------------
# A real yaz-client against a loopback listener speaking through z3950.pdu

@pytest.mark.peer
@pytest.mark.skipif(shutil.which("yaz-client") is None, reason="yaz-client not installed (apt-get install yaz)")
def test_yaz_client_session():
    """yaz-client sends Init (with idPass from 'auth'); we accept with our own
    InitializeResponse; its 'close' sends Close, answered with Close(shutdown).
    What yaz-client prints shows it decoded our encodings."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list = []
    failures: list[BaseException] = []

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(20)
        framer = apdu_framer()
        try:
            while (chunk := conn.recv(65536)):
                for frame in framer.feed(chunk):
                    pdu = decode_pdu(frame)
                    received.append(pdu)
                    if isinstance(pdu, InitializeRequest):
                        conn.sendall(encode_pdu(InitializeResponse(
                            result=True, reference_id=pdu.reference_id, options=frozenset({"search", "present"}),
                            implementation_id="uc-1", implementation_name="unioncat test target",
                            implementation_version="0.1.0")))
                    elif isinstance(pdu, Close):
                        conn.sendall(encode_pdu(Close(close_reason=1, diagnostic_information="going down")))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            failures.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        out = subprocess.run(["yaz-client"], input=f"auth alice staff secret\nopen tcp:127.0.0.1:{port}\nclose\nquit\n",
                             capture_output=True, text=True, timeout=60)
        thread.join(30)
    finally:
        listener.close()
    output = out.stdout + out.stderr
    assert not failures, failures
    init = received[0]
    assert isinstance(init, InitializeRequest)
    assert {1, 2, 3} <= init.protocol_version
    assert "YAZ" in init.implementation_name
    assert init.id_authentication == IdPass(group_id="staff", user_id="alice", password="secret")
    assert {"search", "present"} <= init.options
    assert isinstance(received[1], Close) and received[1].close_reason == 0      # finished
    assert "Connection accepted by v3 target" in output, output
    assert "Name   : unioncat test target" in output and "ID     : uc-1" in output, output
    assert "Options: search present" in output, output
    assert "Reason: shutdown, message: going down" in output, output
