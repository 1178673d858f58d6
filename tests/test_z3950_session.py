"""The association state table (z3950/session.py): allowed and refused
sequences, both roles talking to each other, and random APDU sequences."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from z3950 import pdu as P
from z3950 import session as S
from z3950.ber import enc_int, enc_seq

SEARCH = P.SearchRequest(P.CQLQuery("dc.title=x"))
SEARCH_OK = P.SearchResponse(3)
PRESENT = P.PresentRequest("default", 1, 1)
PRESENT_OK = P.PresentResponse(0, 1, 0)


def pair():
    return S.Session(S.ORIGIN), S.Session(S.TARGET)


def deliver(sender: S.Session, receiver: S.Session, pdu):
    receiver.receive_data(sender.send(pdu))
    return receiver.next_event()


def test_a_whole_association_in_both_roles():
    origin, target = pair()
    assert deliver(origin, target, P.InitializeRequest()) == P.InitializeRequest()
    assert (origin.state, target.state) == (S.INIT_PENDING, S.INIT_PENDING)
    assert isinstance(deliver(target, origin, P.InitializeResponse()), P.InitializeResponse)
    assert (origin.state, target.state) == (S.OPEN, S.OPEN)
    assert deliver(origin, target, SEARCH) == SEARCH
    assert target.state == S.OPERATION and target.pending is P.SearchRequest
    assert deliver(target, origin, SEARCH_OK) == SEARCH_OK
    assert deliver(origin, target, PRESENT) == PRESENT
    assert deliver(target, origin, PRESENT_OK) == PRESENT_OK
    assert isinstance(deliver(origin, target, P.Close()), P.Close)
    assert (origin.state, target.state) == (S.CLOSING, S.PEER_CLOSED)
    assert isinstance(deliver(target, origin, P.Close(0)), P.Close)
    assert origin.state == target.state == S.CLOSED
    assert isinstance(origin.next_event(), S.ConnectionClosed)


def test_search_before_init_is_a_violation():
    origin, target = S.Session(S.ORIGIN), S.Session(S.TARGET)
    origin.state = S.OPEN               # a broken origin that skips Init
    target.receive_data(P.encode_pdu(SEARCH))
    event = target.next_event()
    assert isinstance(event, S.ProtocolViolation) and "not allowed in state awaiting-init" in event.reason
    close = P.decode_pdu(target.close_for(event))
    assert close.close_reason == 6 and target.state == S.CLOSING


def test_wrong_response_kind_is_a_violation_for_the_origin():
    origin, target = pair()
    deliver(origin, target, P.InitializeRequest())
    deliver(target, origin, P.InitializeResponse())
    deliver(origin, target, SEARCH)
    origin.receive_data(P.encode_pdu(PRESENT_OK))
    event = origin.next_event()
    assert isinstance(event, S.ProtocolViolation) and "does not answer SearchRequest" in event.reason


def test_sending_out_of_turn_is_a_local_error():
    origin, target = pair()
    with pytest.raises(S.LocalProtocolError):
        target.send(SEARCH_OK)
    deliver(origin, target, P.InitializeRequest())
    with pytest.raises(S.LocalProtocolError):
        target.send(SEARCH_OK)           # Init not answered yet
    target.send(P.InitializeResponse())
    with pytest.raises(S.LocalProtocolError):
        target.send(SEARCH_OK)           # nothing asked


def test_rejected_init_ends_the_association():
    origin, target = pair()
    deliver(origin, target, P.InitializeRequest())
    deliver(target, origin, P.InitializeResponse(result=False))
    assert origin.state == target.state == S.CLOSED


def test_pipelined_requests_come_out_one_at_a_time():
    origin, target = pair()
    deliver(origin, target, P.InitializeRequest())
    target.send(P.InitializeResponse())
    origin.state = S.OPEN
    data = P.encode_pdu(SEARCH) + P.encode_pdu(PRESENT)
    target.receive_data(data)
    assert target.next_event() == SEARCH
    target.send(SEARCH_OK)
    assert target.next_event() == PRESENT


def test_bad_ber_and_oversized_apdus():
    target = S.Session(S.TARGET, max_apdu=1000)
    target.receive_data(b"\xb4\x84\x7f\xff\xff\xff")          # Init claiming 2 GB
    v = target.next_event()
    assert isinstance(v, S.ProtocolViolation) and v.close_reason == 4
    target = S.Session(S.TARGET)
    target.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    v = target.next_event()
    assert isinstance(v, S.ProtocolViolation) and v.close_reason == 6
    target = S.Session(S.TARGET)
    target.receive_data(enc_seq(46, [enc_int(1, 0)]))         # extendedServicesRequest
    v = target.next_event()
    assert isinstance(v, S.ProtocolViolation) and "unsupported APDU [46]" in v.reason


def test_end_of_stream():
    target = S.Session(S.TARGET)
    target.receive_data(P.encode_pdu(P.InitializeRequest())[:5])
    assert target.next_event() == S.NEED_DATA
    target.receive_data(b"")
    assert isinstance(target.next_event(), S.ConnectionClosed)


_ORIGIN_PDUS = [P.InitializeRequest(), SEARCH, PRESENT, P.Close(), P.DeleteResultSetRequest(0, ("a",))]
_TARGET_PDUS = [P.InitializeResponse(), P.InitializeResponse(result=False), SEARCH_OK, PRESENT_OK, P.Close(),
                P.DeleteResultSetResponse(0)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=12))
def test_random_sequences_follow_the_table(steps):
    """Whatever either side does, each side's state is one the table can reach,
    refused sends leave the state unchanged, and a received APDU is either
    accepted by the table or reported as a violation."""
    origin, target = pair()
    for origin_acts, i in steps:
        sender, receiver = (origin, target) if origin_acts else (target, origin)
        pdus = _ORIGIN_PDUS if origin_acts else _TARGET_PDUS
        pdu = pdus[i % len(pdus)]
        before = sender.state
        try:
            data = sender.send(pdu)
        except S.LocalProtocolError:
            assert sender.state == before
            continue
        assert (sender.role, before, S.SEND, S.kind_of(pdu)) in S.TRANSITIONS
        rbefore = receiver.state
        receiver.receive_data(data)
        event = receiver.next_event()
        if isinstance(event, S.ProtocolViolation):
            assert (receiver.role, rbefore, S.RECV, S.kind_of(pdu)) not in S.TRANSITIONS or S.kind_of(pdu) == S.RESPONSE
            return
        if isinstance(event, S.ConnectionClosed):
            return
        assert receiver.state == S.TRANSITIONS[(receiver.role, rbefore, S.RECV, S.kind_of(pdu))]


# --------------------------------------------------------------------------- fuzzing the target side

def _apdu_corpus() -> list[bytes]:
    """Valid APDUs of every kind the target decodes, as clients send them."""
    from z3950 import charneg, rpn
    queries = ["@attr 1=4 図書館", '@and @attr 1=4 @attr 5=1 intro @or @attr 1=1003 x @set a',
               "@prox 0 3 1 2 k 2 @attr 1=4 a @attr 4=1 \"b c\"", "@attrset bib-1 @attr 1=title @attr 2=3 x"]
    out = [P.encode_pdu(P.InitializeRequest(options=frozenset({"search", "present", "negotiationModel"}),
                                            id_authentication=P.IdPass("g", "u", "p"),
                                            other_info=charneg.proposal_other_info(("UTF-8", "EUC-JP"))))]
    for q in queries:
        out.append(P.encode_pdu(P.SearchRequest(rpn.parse_pqf(q), small_set_element_set_names="B",
                                                preferred_record_syntax="1.2.840.10003.5.10")))
    out.append(P.encode_pdu(P.SearchRequest(P.CQLQuery("dc.title=x sortby dc.date"))))
    out.append(P.encode_pdu(P.PresentRequest("default", 1, 10, "F", "1.2.840.10003.5.102",
                                             additional_ranges=((3, 4),))))
    out.append(P.encode_pdu(P.ScanRequest(rpn.parse_pqf_scan("@attr 1=4 toshokan")[1], step_size=0,
                                          preferred_position=3)))
    out.append(P.encode_pdu(P.SortRequest(("default",), "s", (
        P.SortKeySpec(attributes=(rpn.AttributeElement(1, 4),), attribute_set=rpn.BIB1, relation=1,
                      missing_value_action="null"), P.SortKeySpec(sort_field="dc.date")))))
    out.append(P.encode_pdu(P.DeleteResultSetRequest(0, ("a", "b"))))
    out.append(P.encode_pdu(P.Close(0, diagnostic_information="bye")))
    return out


def _target_consumes(data: bytes, split: int) -> None:
    """Feed ``data`` to a target session (in two chunks) after an Init: every event
    must be an APDU, NeedData, a violation or the end; nothing may raise."""
    target = S.Session(S.TARGET, max_apdu=1 << 16)
    target.receive_data(P.encode_pdu(P.InitializeRequest()))
    assert isinstance(target.next_event(), P.InitializeRequest)
    target.send(P.InitializeResponse())
    for chunk in (data[:split], data[split:]):
        if chunk:
            target.receive_data(chunk)
        for _ in range(64):
            event = target.next_event()
            if isinstance(event, (S.NeedData, S.ProtocolViolation, S.ConnectionClosed)):
                break
            if type(event) in S.RESPONSE_FOR:          # answer so the next request is allowed
                target.state, target.pending = S.OPEN, None


def test_valid_corpus_round_trips():
    for data in _apdu_corpus():
        assert P.encode_pdu(P.decode_pdu(data)) == data


@pytest.mark.slow
def test_fuzz_target_session_100k():
    """100,000 mutated APDUs of every kind through the target's session: no
    exception but the protocol's own, no hang (each input is timed)."""
    import random
    import time

    from test_z3950_ber import mutate

    rng = random.Random(20261121)
    corpus = _apdu_corpus()
    slowest = 0.0
    for _ in range(100_000):
        data = mutate(rng, rng.choice(corpus), corpus)
        start = time.perf_counter()
        _target_consumes(data, rng.randrange(len(data) + 1))
        slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 1.0, slowest


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_fuzz_target_session_hypothesis(data):
    corpus = _apdu_corpus()
    base = bytearray(data.draw(st.sampled_from(corpus)))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(base)))
        action = data.draw(st.integers(0, 2))
        if action == 0 and base:
            base[min(pos, len(base) - 1)] = data.draw(st.integers(0, 255))
        elif action == 1:
            del base[pos:pos + data.draw(st.integers(1, 8))]
        else:
            base[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _target_consumes(bytes(base), data.draw(st.integers(0, len(base))))
