"""The NCIP 2.02 protocol core: every message and response encoded valid against the
official schema and read back equal; what the schema allows (and what peers send) is
accepted; everything else is refused with the right Problem, whose response is valid
too; no input raises anything but a ProtocolError."""
from __future__ import annotations

import dataclasses
import re
import string
import typing
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from connectors import ncip as N
from connectors.ncip import model as m
from connectors.ncip.config import ConfigError, load
from connectors.ncip.model import General, Messaging, ProtocolError

STANDARDS = Path(__file__).resolve().parents[2] / "shared" / "standards"
XSD = STANDARDS / "ncip" / "ncip_v2_02.xsd"
JST = timezone(timedelta(hours=9))
NS = m.NS


@cache
def _schema() -> etree.XMLSchema | None:
    if not XSD.exists():
        return None
    return etree.XMLSchema(etree.parse(str(XSD)))


def assert_valid(xml: bytes) -> etree._Element:
    """``xml`` is valid against the official NCIP 2.02 schema; returns its root."""
    schema = _schema()
    if schema is None:
        pytest.skip(f"the official NCIP 2.02 schema is not beside this checkout ({XSD})")
    root = etree.fromstring(xml)
    if not schema.validate(root):
        raise AssertionError(f"not valid NCIP 2.02: {schema.error_log}\n{xml.decode()[:3000]}")
    return root


def problem_of(response) -> m.Problem:
    assert response.problem, response
    return response.problem[0]


# ----------------------------------------------------------------- strategies

_XML_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
_words = st.text(_XML_CHARS, min_size=1, max_size=12).map(str.strip).filter(bool)
_uri = st.sampled_from([m.General.SCHEME, m.REQUEST_TYPES["Hold"].scheme, "urn:isbn", "https://example.jp/codes"])
_datetimes = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31),
                          timezones=st.sampled_from([timezone.utc, JST, timezone(timedelta(hours=-5))]))
_schemes = st.builds(m.SchemeValue, _words, st.none() | _uri)


def _field_strategy(f: dataclasses.Field, t):
    if typing.get_origin(t) is tuple:
        inner = typing.get_args(t)[0]
        return st.lists(_of(inner), max_size=2).map(tuple)
    if type(None) in typing.get_args(t):
        inner = next(a for a in typing.get_args(t) if a is not type(None))
        return st.none() | _field_strategy(f, inner)
    if t is int:
        return st.integers(f.metadata.get("min", 0), 10**6)
    return _of(t)


def _builds(cls, **over):
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: over[f.name] if f.name in over else _field_strategy(f, hints[f.name])
              for f in dataclasses.fields(cls)}
    return st.builds(cls, **kwargs)


def _valid(s):
    return s.filter(lambda o: m.violation(o) is None)


def _user_choice(cls):
    return (_builds(cls, authentication_input=st.just(())).filter(lambda o: o.user_id is not None)
            | _builds(cls, user_id=st.none(),
                      authentication_input=st.lists(_of(m.AuthenticationInput), min_size=1, max_size=2).map(tuple)))


def _response(cls, **success):
    nothing = {f.name: st.just(f.default) for f in dataclasses.fields(cls)
               if f.name not in ("response_header", "problem")}
    problems = _builds(cls, problem=st.lists(_of(m.Problem), min_size=1, max_size=2).map(tuple), **nothing)
    return problems | _valid(_builds(cls, problem=st.just(()), **success))


@cache
def _of(t):
    if t is str:
        return _words
    if t is datetime:
        return _datetimes
    if t is bool:
        return st.booleans()
    if t is m.SchemeValue:
        return _schemes
    special = {
        m.LookupUser: lambda: _user_choice(m.LookupUser),
        m.CheckOutItem: lambda: _user_choice(m.CheckOutItem),
        m.RequestItem: lambda: _valid(_user_choice(m.RequestItem)),
        m.CancelRequestItem: lambda: _valid(_user_choice(m.CancelRequestItem)),
        m.AcceptItem: lambda: _valid(_builds(m.AcceptItem)),
        m.BibliographicId: lambda: (_builds(m.BibliographicId, bibliographic_record_id=st.none(),
                                            bibliographic_item_id=_of(m.BibliographicItemId))
                                    | _builds(m.BibliographicId, bibliographic_item_id=st.none(),
                                              bibliographic_record_id=_of(m.BibliographicRecordId))),
        m.BibliographicRecordId: lambda: (_builds(m.BibliographicRecordId, agency_id=_schemes,
                                                  bibliographic_record_identifier_code=st.none())
                                          | _builds(m.BibliographicRecordId, agency_id=st.none(),
                                                    bibliographic_record_identifier_code=_schemes)),
        m.PersonalNameInformation: lambda: _valid(_builds(m.PersonalNameInformation)),
        m.LocationName: lambda: _builds(m.LocationName, location_name_instance=st.lists(
            _of(m.LocationNameInstance), min_size=1, max_size=2).map(tuple)),
        m.LookupUserResponse: lambda: _response(m.LookupUserResponse, user_id=_of(m.UserId)),
        m.AcceptItemResponse: lambda: _response(m.AcceptItemResponse, request_id=_of(m.RequestId)),
        m.CheckOutItemResponse: lambda: st.one_of(*[
            _response(m.CheckOutItemResponse, item_id=_of(m.ItemId), user_id=_of(m.UserId),
                      date_due=due, indeterminate_loan_period_flag=st.just(flags[0]),
                      non_returnable_flag=st.just(flags[1]))
            for due, flags in ((_datetimes, (False, False)), (st.none(), (True, False)),
                               (st.none(), (False, True)))]),
        m.CheckInItemResponse: lambda: _response(m.CheckInItemResponse, item_id=_of(m.ItemId)),
        m.RequestItemResponse: lambda: _response(m.RequestItemResponse, user_id=_of(m.UserId),
                                                 request_type=_schemes, request_scope_type=_schemes),
        m.CancelRequestItemResponse: lambda: _response(m.CancelRequestItemResponse, user_id=_of(m.UserId)),
        m.ProblemResponse: lambda: st.builds(
            m.ProblemResponse, st.lists(_of(m.Problem), min_size=1, max_size=3).map(tuple),
            st.none() | st.sampled_from(sorted(m.SERVICES - set(m.MESSAGE_TYPES))),
            st.none() | _of(m.ResponseHeader)).map(
                lambda r: r if r.service else dataclasses.replace(r, response_header=None)),
    }
    if t in special:
        return st.deferred(special[t])
    if dataclasses.is_dataclass(t):
        return st.deferred(lambda: _builds(t))
    raise TypeError(t)


MESSAGE_TYPES = [*m.INITIATIONS, *m.RESPONSES, m.ProblemResponse]
messages = st.sampled_from(MESSAGE_TYPES).flatmap(_of)


# ----------------------------------------------------------------- round trips

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.filter_too_much])
@given(messages)
def test_every_message_round_trips_valid_against_the_official_schema(message):
    xml = N.encode(message)
    assert_valid(xml)
    assert N.decode(xml) == message


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.filter_too_much])
@given(data=st.data())
def test_each_message_type_round_trips(cls, data):
    message = data.draw(_of(cls))
    xml = N.encode(message)
    assert_valid(xml)
    assert N.decode(xml) == message


@pytest.mark.parametrize("service", sorted(m.SERVICES))
def test_the_problem_response_of_every_service_is_valid(service):
    header = N.response_header(m.InitiationHeader(m.FromAgencyId(m.SchemeValue("RS")),
                                                  m.ToAgencyId(m.SchemeValue("JP-1"))), m.SchemeValue("JP-1"))
    err = ProtocolError(General.UNSUPPORTED_SERVICE, "not here", element=service, service=service)
    response = N.refusal(err, header)
    root = assert_valid(N.encode(response))
    assert etree.QName(root[0]).localname == f"{service}Response"
    assert N.decode(N.encode(response)) == response
    expected = m.RESPONSE_FOR.get(m.MESSAGE_TYPES.get(service), m.ProblemResponse)
    assert type(response) is expected


def test_a_top_level_problem_is_valid():
    response = N.refusal(ProtocolError(Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "x" * 900))
    root = assert_valid(N.encode(response))
    assert [etree.QName(c).localname for c in root] == ["Problem"]
    assert len(problem_of(response).problem_detail) == 500


def test_encode_refuses_what_the_schema_does_not_allow():
    with pytest.raises(ValueError):
        N.encode(m.CheckOutItemResponse(item_id=m.ItemId("1"), user_id=m.UserId("2")))   # no DateDue
    with pytest.raises(ValueError):
        N.encode(m.LookupUserResponse(problem=(m.Problem(General.UNKNOWN_AGENCY),), user_id=m.UserId("1")))
    with pytest.raises(ValueError):
        N.encode(m.LookupUser(user_id=m.UserId("1"), authentication_input=(
            m.AuthenticationInput("x", m.SchemeValue("text/plain"), m.SchemeValue("User Id")),)))
    with pytest.raises(ValueError):
        N.encode(m.ProblemResponse(()))


def test_encode_drops_characters_xml_cannot_carry():
    message = m.LookupUserResponse(user_id=m.UserId("C1"), user_optional_fields=m.UserOptionalFields(
        name_information=m.NameInformation(m.PersonalNameInformation(unstructured_personal_user_name="山田\x01花子"))))
    xml = N.encode(message)
    assert_valid(xml)
    name = N.decode(xml).user_optional_fields.name_information.personal_name_information
    assert name.unstructured_personal_user_name == "山田花子"


# ----------------------------------------------------------------- what peers send

LOOKUP_DEFAULT_NS = f"""<?xml version="1.0" encoding="UTF-8"?>
<NCIPMessage xmlns="{NS}" version="http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd">
  <LookupUser>
    <InitiationHeader>
      <FromAgencyId><AgencyId>RS</AgencyId></FromAgencyId>
      <ToAgencyId><AgencyId>JP-1000000</AgencyId></ToAgencyId>
      <ApplicationProfileType>ILL</ApplicationProfileType>
    </InitiationHeader>
    <UserId>
      <UserIdentifierValue>  3100000001 </UserIdentifierValue>
    </UserId>
    <UserElementType Scheme="http://www.niso.org/ncip/v1_0/schemes/userelementtype/userelementtype.scm">Name Information</UserElementType>
    <UserElementType>User Privilege</UserElementType>
    <Ext><vendor:Anything xmlns:vendor="urn:vendor">kept out</vendor:Anything></Ext>
  </LookupUser>
</NCIPMessage>"""  # noqa: E501 - the message as a client sends it


def test_a_default_namespace_whitespace_unqualified_attributes_and_ext_are_accepted():
    msg = N.decode(LOOKUP_DEFAULT_NS.encode())
    assert isinstance(msg, m.LookupUser)
    assert msg.user_id == m.UserId("3100000001")
    assert msg.user_element_type == (
        m.SchemeValue("Name Information", m.USER_ELEMENT_TYPES["Name Information"].scheme),
        m.SchemeValue("User Privilege"))
    assert msg.initiation_header.application_profile_type == m.SchemeValue("ILL")


def test_any_prefix_no_declaration_and_another_encoding_are_accepted():
    xml = (f'<?xml version="1.0" encoding="Shift_JIS"?><x:NCIPMessage xmlns:x="{NS}" x:version="2.02">'
           '<x:CheckInItem><x:ItemId><x:ItemIdentifierValue>資料1</x:ItemIdentifierValue></x:ItemId>'
           '</x:CheckInItem></x:NCIPMessage>').encode("shift_jis")
    assert N.decode(xml) == m.CheckInItem(item_id=m.ItemId("資料1"))
    bare = (f'<NCIPMessage xmlns="{NS}"><CheckInItem><ItemId><ItemIdentifierValue>B</ItemIdentifierValue>'
            '</ItemId></CheckInItem></NCIPMessage>').encode()
    assert N.decode(bare) == m.CheckInItem(item_id=m.ItemId("B"))


def test_elements_the_schema_allows_but_we_do_not_read_are_skipped():
    xml = f"""<NCIPMessage xmlns="{NS}" xmlns:n="{NS}" n:version="2"><CheckOutItem>
      <MandatedAction><DateEventOccurred>2026-12-01T10:00:00Z</DateEventOccurred></MandatedAction>
      <UserId><UserIdentifierValue>C</UserIdentifierValue></UserId>
      <ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId>
      <AcknowledgedFeeAmount><CurrencyCode>JPY</CurrencyCode><MonetaryValue>0</MonetaryValue></AcknowledgedFeeAmount>
      <ShippingInformation><PhysicalAddress><UnstructuredAddress><UnstructuredAddressType>x</UnstructuredAddressType>
        <UnstructuredAddressData>y</UnstructuredAddressData></UnstructuredAddress>
        <PhysicalAddressType>Postal Address</PhysicalAddressType></PhysicalAddress></ShippingInformation>
      <DesiredDateDue>2026-12-20T23:59:59+09:00</DesiredDateDue>
    </CheckOutItem></NCIPMessage>""".encode()
    assert_valid(xml)
    assert N.decode(xml) == m.CheckOutItem(item_id=m.ItemId("B"), user_id=m.UserId("C"),
                                           desired_date_due=datetime(2026, 12, 20, 23, 59, 59, tzinfo=JST))


def test_children_out_of_the_schema_order_are_accepted():
    xml = f"""<NCIPMessage xmlns="{NS}"><AcceptItem>
      <RequestedActionType>Hold For Pickup</RequestedActionType>
      <PickupLocation>central</PickupLocation>
      <UserId><UserIdentifierValue>C</UserIdentifierValue></UserId>
      <RequestId><RequestIdentifierValue>R-1</RequestIdentifierValue></RequestId>
    </AcceptItem></NCIPMessage>""".encode()
    msg = N.decode(xml)
    assert msg == m.AcceptItem(request_id=m.RequestId("R-1"), requested_action_type=m.SchemeValue("Hold For Pickup"),
                               user_id=m.UserId("C"), pickup_location=m.SchemeValue("central"))


# ----------------------------------------------------------------- refusals

def _refused(xml: bytes | str) -> ProtocolError:
    data = xml.encode() if isinstance(xml, str) else xml
    with pytest.raises(ProtocolError) as info:
        N.decode(data)
    response = N.refusal(info.value)
    assert_valid(N.encode(response))
    return info.value


def _wrap(body: str, root_attrs: str = "") -> str:
    return f'<NCIPMessage xmlns="{NS}" xmlns:ncip="{NS}" ncip:version="2.02"{root_attrs}>{body}</NCIPMessage>'


CHECK_IN = "<CheckInItem><ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId></CheckInItem>"


@pytest.mark.parametrize("xml", [
    b"", b"not xml", b"<NCIPMessage", b"\xff\xfe\x00<",
    f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><NCIPMessage xmlns="{NS}">'
    f'<CheckInItem><ItemId><ItemIdentifierValue>&b;</ItemIdentifierValue></ItemId></CheckInItem>'
    f'</NCIPMessage>'.encode(),
    f'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><NCIPMessage xmlns="{NS}"/>'.encode(),
    b"<NCIPMessage><CheckInItem/></NCIPMessage>",                   # NCIP 1 (no namespace)
    f'<ISO18626Message xmlns="{NS}"/>'.encode(),
    _wrap("").encode(), _wrap(CHECK_IN + CHECK_IN).encode(), _wrap("<Ext/>").encode(),
    _wrap("text" + CHECK_IN).encode(), _wrap(CHECK_IN + "<Problem><ProblemType>x</ProblemType></Problem>").encode(),
], ids=range(13))
def test_what_is_not_an_ncip_message_gets_a_top_level_syntax_problem(xml):
    err = _refused(xml)
    assert err.problem_type == Messaging.INVALID_MESSAGE_SYNTAX_ERROR
    assert err.service is None


def test_an_unknown_service_and_a_foreign_element_at_the_top():
    err = _refused(_wrap("<BorrowEverything/>"))
    assert (err.problem_type, err.element, err.service) == (Messaging.UNKNOWN_SERVICE, "BorrowEverything", None)
    err = _refused(_wrap('<x:CheckInItem xmlns:x="urn:other"/>'))
    assert (err.problem_type, err.service) == (Messaging.UNKNOWN_ELEMENT, None)


@pytest.mark.parametrize("service", ["RenewItem", "LookupItem", "DeleteItem", "CreateUser"])
def test_a_service_we_do_not_offer_is_answered_in_its_own_response(service):
    err = _refused(_wrap(f"<{service}><Anything/></{service}>"))
    assert (err.problem_type, err.service) == (General.UNSUPPORTED_SERVICE, service)
    root = assert_valid(N.encode(N.refusal(err)))
    assert etree.QName(root[0]).localname == f"{service}Response"


@pytest.mark.parametrize("body, problem_type, element", [
    ("<CheckInItem><ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId><Bogus/></CheckInItem>",
     Messaging.UNKNOWN_ELEMENT, "Bogus"),
    ('<CheckInItem><ItemId><ItemIdentifierValue>B</ItemIdentifierValue><x:Y xmlns:x="urn:x"/></ItemId></CheckInItem>',
     Messaging.UNKNOWN_ELEMENT, "Y"),
    ("<CheckInItem/>", Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "ItemId"),
    ("<CheckInItem><ItemId/></CheckInItem>", Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "ItemIdentifierValue"),
    ("<CheckInItem><ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId>"
     "<ItemId><ItemIdentifierValue>C</ItemIdentifierValue></ItemId></CheckInItem>",
     Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "ItemId"),
    ("<CheckInItem>text<ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId></CheckInItem>",
     Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "CheckInItem"),
    ("<CheckInItem><ItemId><ItemIdentifierValue><b>B</b></ItemIdentifierValue></ItemId></CheckInItem>",
     Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "ItemIdentifierValue"),
    ("<CheckOutItem><ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId></CheckOutItem>",
     Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "CheckOutItem"),                       # no UserId
    ("<CheckOutItem><UserId><UserIdentifierValue>C</UserIdentifierValue></UserId>"
     "<ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId>"
     "<DesiredDateDue>next week</DesiredDateDue></CheckOutItem>", General.INVALID_DATE, "DesiredDateDue"),
    ("<AcceptItem><RequestId><RequestIdentifierValue>R</RequestIdentifierValue></RequestId>"
     "<RequestedActionType>Hold For Pickup</RequestedActionType><IndeterminateLoanPeriodFlag>x"
     "</IndeterminateLoanPeriodFlag></AcceptItem>", Messaging.INVALID_MESSAGE_SYNTAX_ERROR,
     "IndeterminateLoanPeriodFlag"),
    ("<AcceptItem><RequestId><RequestIdentifierValue>R</RequestIdentifierValue></RequestId>"
     "<RequestedActionType>Hold For Pickup</RequestedActionType><DateForReturn>2026-12-01T00:00:00Z</DateForReturn>"
     "<NonReturnableFlag/></AcceptItem>", Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "AcceptItem"),
    ("<RequestItem><UserId><UserIdentifierValue>C</UserIdentifierValue></UserId>"
     "<RequestType>Hold</RequestType><RequestScopeType>Item</RequestScopeType></RequestItem>",
     Messaging.INVALID_MESSAGE_SYNTAX_ERROR, "RequestItem"),                        # neither item nor title
    ("<LookupUserResponse><UserId><UserIdentifierValue>C</UserIdentifierValue></UserId>"
     "<UserOptionalFields><UserPrivilege><AgencyId>A</AgencyId><AgencyUserPrivilegeType>x</AgencyUserPrivilegeType>"
     "<ValidToDate>2026-13-01T00:00:00</ValidToDate></UserPrivilege></UserOptionalFields></LookupUserResponse>",
     General.INVALID_DATE, "ValidToDate"),
    ("<CheckOutItemResponse><ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId><UserId>"
     "<UserIdentifierValue>C</UserIdentifierValue></UserId><IndeterminateLoanPeriodFlag/>"
     "<RenewalCount>-1</RenewalCount></CheckOutItemResponse>", Messaging.INVALID_MESSAGE_SYNTAX_ERROR,
     "RenewalCount"),
])
def test_what_breaks_the_schema_inside_a_message_gets_the_right_problem(body, problem_type, element):
    err = _refused(_wrap(body))
    assert (err.problem_type, err.element) == (problem_type, element)
    service = re.match(r"<(\w+)", body).group(1)
    assert err.service == (service if service in m.MESSAGE_TYPES and not service.endswith("Response") else None)


# ----------------------------------------------------------------- fuzzing

def _mutations(xml: bytes):
    """Variants of a valid message: elements dropped, doubled, renamed or given text."""
    return st.tuples(st.sampled_from(["drop", "double", "rename", "text", "attr"]),
                     st.integers(0, 10**6), st.text(string.ascii_letters + "<>&;\"' 0-9", max_size=8))


def _mutate(xml: bytes, op: str, pick: int, text: str) -> bytes:
    root = etree.fromstring(xml)
    elements = [e for e in root.iter() if e is not root]
    if not elements:
        return xml
    el = elements[pick % len(elements)]
    parent = el.getparent()
    if op == "drop":
        parent.remove(el)
    elif op == "double":
        parent.insert(parent.index(el), etree.fromstring(etree.tostring(el)))
    elif op == "rename":
        el.tag = "{%s}%s" % (NS, (text.strip(string.punctuation + " ") or "X")[:8].replace(" ", "") or "X")
    elif op == "text":
        el.text = text
    else:
        el.set("{%s}Scheme" % NS, text)
    return etree.tostring(root)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.filter_too_much])
@given(messages, st.data())
def test_mutated_messages_decode_or_are_refused_never_anything_else(message, data):
    xml = N.encode(message)
    op, pick, text = data.draw(_mutations(xml))
    try:
        broken = _mutate(xml, op, pick, text)
    except (ValueError, etree.XMLSyntaxError):
        return                                 # lxml refused the mutation itself (a bad tag name)
    try:
        out = N.decode(broken)
    except ProtocolError as e:
        assert_valid(N.encode(N.refusal(e)))
    else:
        assert m.violation(out) is None
        assert_valid(N.encode(out))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_bytes_are_refused_with_a_valid_problem(data):
    try:
        N.decode(data)
    except ProtocolError as e:
        assert_valid(N.encode(N.refusal(e)))


@settings(max_examples=200, deadline=None)
@given(st.text(_XML_CHARS, max_size=40))
def test_random_text_in_every_value_position_is_read_or_refused(text):
    safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    xml = _wrap(f"<AcceptItem><RequestId><RequestIdentifierValue>{safe}</RequestIdentifierValue></RequestId>"
                f"<RequestedActionType>{safe}</RequestedActionType><DateForReturn>{safe}</DateForReturn>"
                f"</AcceptItem>").encode()
    try:
        msg = N.decode(xml)
    except ProtocolError as e:
        assert e.problem_type == General.INVALID_DATE
        assert e.service == "AcceptItem"
        assert_valid(N.encode(N.refusal(e)))
    else:
        assert msg.request_id.request_identifier_value == text.strip()


# ----------------------------------------------------------------- admitting

CONFIG = {"ncip": {"agency_id": "JP-1000000",
                   "clients": {"RS": {"token": "rs-secret", "systems": ["hiroshima"]},
                               "OTHER": {"token_env": "OTHER_TOKEN", "systems": ["komae"], "name": "Other"}}}}


def _config():
    return load(CONFIG, env={"OTHER_TOKEN": "other-secret"})


def _lookup(header: bool = True, to: str = "JP-1000000", sender: str = "RS", auth: str | None = None) -> bytes:
    h = m.InitiationHeader(m.FromAgencyId(m.SchemeValue(sender)), m.ToAgencyId(m.SchemeValue(to)),
                           from_agency_authentication=auth) if header else None
    return N.encode(m.LookupUser(initiation_header=h, user_id=m.UserId("3100000001")))


def _admitted_problem(out) -> m.Problem:
    assert not isinstance(out, tuple), out
    assert_valid(N.encode(out))
    return problem_of(out)


def test_admit_takes_a_client_by_its_header_and_bearer_token():
    cfg = _config()
    msg, client = N.admit(_lookup(), "Bearer rs-secret", cfg)
    assert isinstance(msg, m.LookupUser) and client.code == "RS" and client.actor == "ncip:RS"
    msg, client = N.admit(_lookup(auth="rs-secret"), None, cfg)           # FromAgencyAuthentication
    assert client.code == "RS"
    msg, client = N.admit(_lookup(header=False), "bearer other-secret", cfg)  # no header: by token
    assert client.code == "OTHER" and client.systems == {"komae"}


@pytest.mark.parametrize("body, auth, problem_type, element", [
    (_lookup(), None, General.AGENCY_AUTHENTICATION_FAILED, "Authorization"),
    (_lookup(), "Bearer wrong", General.AGENCY_AUTHENTICATION_FAILED, "Authorization"),
    (_lookup(), "Bearer other-secret", General.AGENCY_AUTHENTICATION_FAILED, "Authorization"),   # another's
    (_lookup(), "Basic rs-secret", General.AGENCY_AUTHENTICATION_FAILED, "Authorization"),
    (_lookup(header=False), "Bearer wrong", General.AGENCY_AUTHENTICATION_FAILED, "Authorization"),
    (_lookup(sender="NOBODY"), "Bearer rs-secret", General.UNKNOWN_AGENCY, "FromAgencyId"),
    (_lookup(to="JP-9"), "Bearer rs-secret", General.UNKNOWN_AGENCY, "ToAgencyId"),
])
def test_admit_refuses_unknown_agencies_and_wrong_credentials(body, auth, problem_type, element):
    out = N.admit(body, auth, _config())
    p = _admitted_problem(out)
    assert (p.problem_type, p.problem_element) == (problem_type, element)
    assert isinstance(out, m.LookupUserResponse)


def test_admit_answers_a_header_with_a_response_header():
    out = N.admit(_lookup(), "Bearer wrong", _config())
    assert out.response_header == m.ResponseHeader(m.FromAgencyId(m.SchemeValue("JP-1000000")),
                                                   m.ToAgencyId(m.SchemeValue("RS")))


def test_admit_refuses_responses_and_unreadable_bodies():
    p = _admitted_problem(N.admit(N.encode(m.CheckInItemResponse(item_id=m.ItemId("B"))), "Bearer rs-secret",
                                  _config()))
    assert (p.problem_type, p.problem_element) == (Messaging.PROTOCOL_ERROR, "CheckInItem")
    p = _admitted_problem(N.admit(b"<nope", "Bearer rs-secret", _config()))
    assert p.problem_type == Messaging.INVALID_MESSAGE_SYNTAX_ERROR


# ----------------------------------------------------------------- configuration

def test_config_reads_clients_and_takes_our_agency_from_ill():
    cfg = load({"ill": {"agency_id": "ISIL:JP-1000000"},
                "ncip": {"clients": {"RS": {"token": "s3cr3t", "systems": ["hiroshima"], "library": "ill-rs"}}}})
    assert cfg.agency == "JP-1000000"
    assert cfg.client("RS").library == "ill-rs"
    assert "s3cr3t" not in repr(cfg)
    assert load({}) is None


@pytest.mark.parametrize("data, where", [
    ({"ncip": {"clients": {}}}, "ncip.agency_id"),
    ({"ncip": {"agency_id": "A", "colour": 1}}, "colour"),
    ({"ncip": {"agency_id": "A", "clients": {"RS": {"systems": ["x"]}}}}, "token"),
    ({"ncip": {"agency_id": "A", "clients": {"RS": {"token": "t"}}}}, "systems"),
    ({"ncip": {"agency_id": "A", "clients": {"RS": {"token": "t", "systems": ["x"], "extra": 1}}}}, "extra"),
    ({"ncip": {"agency_id": "A", "clients": {"RS": {"token_env": "NOPE", "systems": ["x"]}}}}, "NOPE"),
    ({"ncip": {"agency_id": "A", "clients": {"A": {"token": "t", "systems": ["x"]}}}}, "own agency"),
    ({"ncip": {"agency_id": "A", "clients": {"B": {"token": "t", "systems": ["x"]},
                                             "C": {"token": "t", "systems": ["y"]}}}}, "own token"),
    ({"ncip": {"agency_id": "A", "clients": {"B": {"token": "t", "systems": "x"}}}}, "systems"),
])
def test_config_refuses_what_it_cannot_use(data, where):
    with pytest.raises(ConfigError, match=where):
        load(data, env={})


def test_the_decoder_refuses_with_problems_not_exceptions_on_deep_nesting():
    deep = "<Ext>" + "<a>" * 3000 + "</a>" * 3000 + "</Ext>"
    xml = _wrap(f"<CheckInItem><ItemId><ItemIdentifierValue>B</ItemIdentifierValue></ItemId>{deep}</CheckInItem>")
    try:
        N.decode(xml.encode())
    except ProtocolError as e:
        assert_valid(N.encode(N.refusal(e)))
