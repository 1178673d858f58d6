"""The ISO 18626 protocol core: every message built, encoded valid against the
official v1.2 schema and read back equal; what the schema allows is accepted; every
other input is refused with the right error type and never anything else."""
from __future__ import annotations

import dataclasses
import string
import typing
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import iso18626 as I
from connectors.iso18626 import codec
from connectors.iso18626 import model as m
from connectors.iso18626.model import ErrorType, ProtocolError
from iso18626_helpers import JST, PARTNER, US, assert_valid, header

NOW = datetime(2026, 12, 6, 10, 30, tzinfo=JST)


# ----------------------------------------------------------------- strategies

_XML_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
_words = st.text(_XML_CHARS, min_size=1, max_size=12).map(str.strip).filter(bool)
_uri = st.sampled_from(["http://illtransactions.org/ISO18626/OpenCodeList/ReasonRetryList-V1.0",
                        "urn:isbn", "https://example.jp/codes"])
_datetimes = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31),
                          timezones=st.sampled_from([timezone.utc, JST, timezone(timedelta(hours=-5))]))


def _strategy(t):
    if t is str:
        return _words
    if t is datetime:
        return _datetimes
    if t is int:
        return st.integers(-10**6, 10**6)
    if t is bool:
        return st.booleans()
    if t is Decimal:
        return st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)
    if t is m.SchemeValue:
        return st.builds(m.SchemeValue, _words, st.none() | _uri)
    if isinstance(t, type) and issubclass(t, Enum):
        return st.sampled_from(list(t))
    if t is m.Address:
        return st.one_of(
            st.builds(m.Address, electronic_address=st.deferred(lambda: _strategy(m.ElectronicAddress))),
            st.builds(m.Address, physical_address=st.deferred(lambda: _strategy(m.PhysicalAddress))))
    if dataclasses.is_dataclass(t):
        hints = typing.get_type_hints(t)
        kwargs = {}
        for f in dataclasses.fields(t):
            ft = hints[f.name]
            if typing.get_origin(ft) is tuple:
                kwargs[f.name] = st.lists(_strategy(typing.get_args(ft)[0]), max_size=2).map(tuple)
            elif f.name == "multiple_item_request_id":
                kwargs[f.name] = st.just("") | _words
            elif type(None) in typing.get_args(ft):
                inner = next(a for a in typing.get_args(ft) if a is not type(None))
                kwargs[f.name] = st.none() | _strategy(inner)
            else:
                kwargs[f.name] = _strategy(ft)
        return st.builds(t, **kwargs)
    raise TypeError(t)


MESSAGE_TYPES = list(m.ELEMENT)
messages = st.sampled_from(MESSAGE_TYPES).flatmap(_strategy)


# ----------------------------------------------------------------- round trips

@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_every_message_we_build_is_valid_v1_2_and_reads_back_equal(msg):
    xml = I.encode(msg)
    assert_valid(xml)
    assert I.decode(xml) == msg


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_of_the_six_messages_round_trips(cls, data):
    msg = data.draw(_strategy(cls))
    xml = I.encode(msg)
    root = assert_valid(xml)
    assert root[0].tag == f"{{{m.NS}}}{m.ELEMENT[cls]}"
    assert I.decode(xml) == msg


@pytest.mark.parametrize("status", list(m.Status))
@pytest.mark.parametrize("reason", list(m.ReasonForMessage))
def test_every_status_with_every_reason_for_message(status, reason):
    msg = I.supplying_message(header(), reason, status, now=NOW,
                              answer=True if reason.value.endswith("Response") else None,
                              due_date=NOW + timedelta(days=21))
    assert I.decode(assert_valid_bytes(msg)) == msg


@pytest.mark.parametrize("action", list(m.Action))
def test_every_action(action):
    msg = I.requesting_message(header(), action, note="memo")
    assert I.decode(assert_valid_bytes(msg)) == msg


def test_retry_possible_with_its_reasons_and_unfilled_with_reason_unfilled():
    for reason in (m.ReasonRetry.COST_EXCEEDS_MAX_COST, m.ReasonRetry.LOAN_CONDITION,
                   m.ReasonRetry.ON_LOAN, m.ReasonRetry.NOT_FOUND_AS_CITED):
        msg = I.supplying_message(
            header(), m.ReasonForMessage.REQUEST_RESPONSE, m.Status.RETRY_POSSIBLE, now=NOW,
            reason_retry=reason, retry_after=NOW + timedelta(days=7),
            offered_costs=m.Costs(m.SchemeValue("JPY"), Decimal("1500")))
        back = I.decode(assert_valid_bytes(msg))
        assert back.message_info.reason_retry.text == reason
        assert back.message_info.offered_costs.monetary_value == Decimal("1500")
    msg = I.supplying_message(header(), m.ReasonForMessage.REQUEST_RESPONSE, m.Status.UNFILLED,
                              now=NOW, reason_unfilled=m.ReasonUnfilled.NOT_HELD)
    assert I.decode(assert_valid_bytes(msg)).message_info.reason_unfilled.text == "NotHeld"


@pytest.mark.parametrize("error_type", list(ErrorType))
@pytest.mark.parametrize("kind", [m.Request, m.SupplyingAgencyMessage, m.RequestingAgencyMessage])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_three_confirmations_with_every_error_type(kind, error_type, data):
    incoming = data.draw(_strategy(kind))
    for conf in (I.confirm(incoming, now=NOW), I.confirm(incoming, now=NOW, error=(error_type, "why"))):
        assert type(conf) is m.CONFIRMATION_FOR[kind]
        back = I.decode(assert_valid_bytes(conf))
        assert back == conf
        ch = back.confirmation_header
        assert ch.requesting_agency_request_id == (incoming.header.requesting_agency_request_id or None)
        assert ch.timestamp_received == incoming.header.timestamp
    assert back.confirmation_header.message_status is m.MessageStatus.ERROR
    assert back.error_data.error_type is error_type


def test_characters_xml_cannot_carry_are_dropped_not_fatal():
    msg = m.Request(header=header(), bibliographic_info=m.BibliographicInfo(title="図書\x0b館\x00"))
    assert I.decode(assert_valid_bytes(msg)).bibliographic_info.title == "図書館"


def assert_valid_bytes(msg) -> bytes:
    xml = I.encode(msg)
    assert_valid(xml)
    return xml


# ----------------------------------------------------------------- what the schema allows

SAMPLE = """<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626" {version}>
  <supplyingAgencyMessage>
    <header>
      <supplyingAgencyId>
        <agencyIdType> ISIL </agencyIdType>
        <agencyIdValue>JP-1001234</agencyIdValue>
      </supplyingAgencyId>
      <requestingAgencyId><agencyIdType>ISIL</agencyIdType><agencyIdValue>JP-1000000</agencyIdValue></requestingAgencyId>
      {multiple}
      <timestamp>2026-12-06T10:00:00Z</timestamp>
      <requestingAgencyRequestId>
         req-7
      </requestingAgencyRequestId>
    </header>
    <messageInfo><reasonForMessage>StatusChange</reasonForMessage></messageInfo>
    <statusInfo>
      <status>Loaned</status>
      <dueDate>2027-01-06T00:00:00+09:00</dueDate>
      <lastChange>2026-12-06T10:00:00Z</lastChange>
    </statusInfo>
    <deliveryInfo><dateSent>2026-12-06T09:00:00Z</dateSent><itemId>HU-0042</itemId>
      <loanCondition {scheme}="http://example.jp/x">LibraryUseOnly</loanCondition></deliveryInfo>
  </supplyingAgencyMessage>
</ISO18626Message>"""


def _sample(version='version="1.2"', multiple="<multipleItemRequestId/>", scheme="scheme") -> str:
    return SAMPLE.format(version=version, multiple=multiple, scheme=scheme)


def _check_sample(msg):
    assert isinstance(msg, m.SupplyingAgencyMessage)
    assert msg.header.supplying_agency_id == PARTNER
    assert msg.header.requesting_agency_id == US
    assert msg.header.requesting_agency_request_id == "req-7"
    assert msg.status_info.status is m.Status.LOANED
    assert msg.status_info.due_date == datetime(2027, 1, 6, tzinfo=JST)
    assert msg.delivery_info.item_id == "HU-0042"
    assert msg.delivery_info.loan_condition == m.SchemeValue("LibraryUseOnly", "http://example.jp/x")


def test_default_namespace_whitespace_and_no_declaration_are_read():
    xml = _sample(version='xmlns:ill="http://illtransactions.org/2013/iso18626" ill:version="1.2"',
                  scheme="ill:scheme")
    assert_valid(xml.encode())          # the schema allows all of this
    _check_sample(I.decode(xml.encode()))


def test_any_prefix_is_read_by_namespace():
    xml = (_sample(version='xmlns:q="http://illtransactions.org/2013/iso18626" q:version="1.2"')
           .replace("<", "<z:").replace("<z:/", "</z:").replace("</", "</z:").replace("</z:z:", "</z:")
           .replace('xmlns="', 'xmlns:z="'))
    _check_sample(I.decode(xml.encode()))


def test_what_lenient_peers_send_is_read():
    # an unqualified version attribute, none at all, no multipleItemRequestId, an
    # unqualified scheme attribute
    for version in ('version="1.2"', ""):
        _check_sample(I.decode(_sample(version=version, multiple="").encode()))


def test_declared_encodings_are_honoured():
    xml = _sample().replace("HU-0042", "広大-0042")
    data = ('<?xml version="1.0" encoding="Shift_JIS"?>\n' + xml).encode("shift_jis")
    assert I.decode(data).delivery_info.item_id == "広大-0042"


def test_children_in_another_order_than_the_schemas_are_read():
    xml = _sample().replace("<status>Loaned</status>", "").replace(
        "<lastChange>2026-12-06T10:00:00Z</lastChange>",
        "<lastChange>2026-12-06T10:00:00Z</lastChange><status>Loaned</status>")
    _check_sample(I.decode(xml.encode()))


# ----------------------------------------------------------------- what it does not

def _error(data: bytes | str) -> ProtocolError:
    with pytest.raises(ProtocolError) as e:
        I.decode(data.encode() if isinstance(data, str) else data)
    return e.value


@pytest.mark.parametrize("data", [
    b"", b"not xml", b"<a>", b"\xff\xfe\x00<", "<ISO18626Message/>".encode(),
    b'<ISO18626Message xmlns="urn:other"><request/></ISO18626Message>',
    b'<x:ISO18626Message xmlns:x="http://illtransactions.org/2013/iso18626" x:version="1.2"/>',
])
def test_unreadable_bodies_are_badly_formed_with_no_kind(data):
    err = _error(data)
    assert err.error_type is ErrorType.BADLY_FORMED_MESSAGE
    conf = I.confirm_protocol_error(err, now=NOW)
    assert type(conf) is m.RequestConfirmation
    assert I.decode(assert_valid_bytes(conf)).error_data.error_type is ErrorType.BADLY_FORMED_MESSAGE


def test_dtds_and_entities_are_refused_and_never_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    xxe = f"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>
<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626"><requestingAgencyMessage>&x;
</requestingAgencyMessage></ISO18626Message>"""
    err = _error(xxe)
    assert err.error_type is ErrorType.BADLY_FORMED_MESSAGE and "TOP SECRET" not in str(err)
    bomb = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefg", "bcdefgh"))
            + ']><r>&h;</r>')
    assert _error(bomb).error_type is ErrorType.BADLY_FORMED_MESSAGE


@pytest.mark.parametrize("edit, error_type, where", [
    (("<itemId>HU-0042</itemId>", "<itemId>HU-0042</itemId><colour>red</colour>"),
     ErrorType.UNRECOGNISED_DATA_ELEMENT, "deliveryInfo/colour"),
    (("<itemId>HU-0042</itemId>", '<itemId>HU-0042</itemId><x:colour xmlns:x="urn:x">red</x:colour>'),
     ErrorType.UNRECOGNISED_DATA_ELEMENT, "colour"),
    (("<status>Loaned</status>", "<status>Borrowed</status>"), ErrorType.UNRECOGNISED_DATA_VALUE, "status"),
    (("<dueDate>2027-01-06T00:00:00+09:00</dueDate>", "<dueDate>next week</dueDate>"),
     ErrorType.UNRECOGNISED_DATA_VALUE, "dueDate"),
    (("<dueDate>2027-01-06T00:00:00+09:00</dueDate>", "<dueDate>2027-01-06</dueDate>"),
     ErrorType.UNRECOGNISED_DATA_VALUE, "dueDate"),
    (("<reasonForMessage>StatusChange</reasonForMessage>", "<reasonForMessage>Gossip</reasonForMessage>"),
     ErrorType.UNSUPPORTED_REASON_FOR_MESSAGE_TYPE, "Gossip"),
    (("<lastChange>2026-12-06T10:00:00Z</lastChange>", ""), ErrorType.BADLY_FORMED_MESSAGE, "lastChange"),
    (("<status>Loaned</status>", "<status>Loaned</status><status>Loaned</status>"),
     ErrorType.BADLY_FORMED_MESSAGE, "repeated"),
    (("<status>Loaned</status>", "<status><b>Loaned</b></status>"), ErrorType.BADLY_FORMED_MESSAGE, "status"),
    (('version="1.2"', 'version="2.0"'), ErrorType.UNRECOGNISED_DATA_VALUE, "version"),
])
def test_each_kind_of_bad_message_gets_its_error_type(edit, error_type, where):
    err = _error(_sample().replace(*edit))
    assert err.error_type is error_type
    assert where in err.value
    conf = I.confirm_protocol_error(err, now=NOW)
    if err.kind is not None:
        assert type(conf) is m.SupplyingAgencyMessageConfirmation
        # the ids that could be read are echoed
        assert conf.confirmation_header.requesting_agency_request_id == "req-7"
        assert conf.confirmation_header.supplying_agency_id == PARTNER
    assert_valid_bytes(conf)


def test_an_unsupported_action_gets_unsupported_action_type():
    msg = I.encode(I.requesting_message(header(), m.Action.RENEW)).replace(b">Renew<", b">Borrow<")
    err = _error(msg)
    assert err.error_type is ErrorType.UNSUPPORTED_ACTION_TYPE and err.kind is m.RequestingAgencyMessage
    conf = I.confirm_protocol_error(err, now=NOW)
    assert type(conf) is m.RequestingAgencyMessageConfirmation
    assert_valid_bytes(conf)


_valid_docs = messages.map(I.encode)


@st.composite
def _mutated(draw):
    data = bytearray(draw(_valid_docs))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:i + draw(st.integers(1, 40))]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from([b"<", b">", b"&", b"<x/>", b"\x00", b"\xff", b"]]>", b"&#0;",
                                              b"</ill:header>", b'"', b"<ill:note>n</ill:note>"]))
        else:
            j = draw(st.integers(i, len(data)))
            data[j:j] = data[i:j]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_mutated(), st.binary(max_size=300), st.text(string.printable, max_size=300).map(str.encode)))
def test_fuzzed_input_is_read_or_refused_with_a_valid_confirmation_never_anything_else(data):
    try:
        msg = I.decode(data)
    except ProtocolError as err:
        conf = I.confirm_protocol_error(err, now=NOW)
        assert conf.confirmation_header.message_status is m.MessageStatus.ERROR
    else:
        conf = I.confirm(msg, now=NOW) if type(msg) in m.CONFIRMATION_FOR else None
    if conf is not None:
        assert_valid_bytes(conf)


def test_dialects():
    d = I.dialect("conditions-in-note")
    assert d.conditions_in_note("#ReShareAddLoanCondition# LibraryUseOnly") == "LibraryUseOnly"
    assert d.conditions_in_note("just a note") is None
    assert I.dialect(None).conditions_in_note("#ReShareAddLoanCondition# x") is None
    assert I.dialect("no-expect-to-supply").expect_to_supply is False
    with pytest.raises(KeyError):
        I.dialect("klingon")


def test_every_field_of_the_schema_is_modelled():
    """Each element the v1.2 schema declares inside a message is a field of the model."""
    from lxml import etree

    from iso18626_helpers import (
        XSD,
        official_schema,
    )
    official_schema()
    xs = "{http://www.w3.org/2001/XMLSchema}"
    doc = etree.parse(str(XSD))
    declared = {e.get("name") or e.get("ref") for e in doc.iter(xs + "element")} - {None}
    modelled = {"ISO18626Message"} | set(m.MESSAGE_TYPES)
    stack = list(m.ELEMENT)
    seen = set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for f in codec._spec(cls):
            modelled.add(f.xml)
            if dataclasses.is_dataclass(f.type):
                stack.append(f.type)
    # elements declared globally as types of others (agency ids' children etc.) are modelled too
    assert declared - modelled == set()


def test_the_sample_configuration_lists_hiroshimas_university_partners():
    import tomllib

    from config import locate
    from connectors.iso18626 import config as C

    data = tomllib.loads(locate("samples/unioncat.toml").read_text(encoding="utf-8"))
    env = {k: "x" for k in ("UNIONCAT_ILL_TOKEN_HIROSHIMA_U", "UNIONCAT_ILL_ACCEPT_HIROSHIMA_U",
                            "UNIONCAT_ILL_TOKEN_HIROSHIMA_CU", "UNIONCAT_ILL_ACCEPT_HIROSHIMA_CU")}
    cfg = C.load(data, env=env)
    assert {p.library for p in cfg.partners.values()} == {"hiroshima-u", "hiroshima-cu"}
    assert [p.library for p in cfg.rota()] == ["hiroshima-u", "hiroshima-cu"]
    assert cfg.serves("hiroshima") and not cfg.serves("iizuka")
    with pytest.raises(C.ConfigError, match="UNIONCAT_ILL_ACCEPT_HIROSHIMA_U"):
        C.load(data, env={k: v for k, v in env.items() if k != "UNIONCAT_ILL_ACCEPT_HIROSHIMA_U"})


@pytest.mark.parametrize("edit, where", [
    ({"agency_id": "JP-1"}, "ill.agency_id"),
    ({"colour": "red"}, "unknown key"),
    ({"answer_days": 0}, "answer_days"),
    ({"callback_url": "ftp://x"}, "callback_url"),
])
def test_configuration_mistakes_are_named(edit, where):
    from connectors.iso18626 import config as C
    base = {"agency_id": "ISIL:JP-1", "callback_url": "http://127.0.0.1:1/iso18626"}
    with pytest.raises(C.ConfigError, match=where):
        C.load({"ill": {**base, **edit}}, env={})
