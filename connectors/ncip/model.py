"""NCIP 2.02 (NISO Z39.83-1-2012) messages as plain data: the six services the gateway
answers (LookupUser, AcceptItem, CheckOutItem, CheckInItem, RequestItem,
CancelRequestItem), their responses, and Problems.

Every element is a frozen dataclass named as its schema element, its fields in the
schema's sequence order; a field's XML name is its name in PascalCase
(``user_identifier_value`` → ``UserIdentifierValue``) unless its metadata says
otherwise.  Optional elements default to ``None``, repeatable ones are tuples, the
schema's empty flag elements (``IndeterminateLoanPeriodFlag`` …) are booleans.  Only
the elements these services need are modelled; :data:`SKIPPED` lists, per element, the
ones the schema allows there that are read past without looking (an ``Ext`` is skipped
everywhere).  Choices of the schema that a dataclass cannot say (UserId *or*
AuthenticationInput, a Problem *or* the success elements …) are checked by
:func:`violation`, which the codec applies when reading and writing.

SchemeValuePair values are :class:`SchemeValue` (a text and an optional ``Scheme``
URI); the values of the published NCIP schemes the gateway sends or acts on are
constants below (the Version 1 schemes of the NCIP implementation profile, which NCIP
2 implementations use as published, under http://www.niso.org/ncip/v1_0/).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

NS = "http://www.niso.org/2008/ncip"
# what we write in ncip:version: the schema's published location, as NCIP 2.02 peers do
VERSION = "http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"


@dataclass(frozen=True, slots=True)
class SchemeValue:
    """A SchemeValuePair: the value, and the URI of the scheme it comes from (optional)."""
    text: str
    scheme: str | None = None

    def means(self, other: SchemeValue) -> bool:
        """The same value as ``other`` (case and spacing aside), the scheme not compared:
        peers often send the values of a published scheme without naming it."""
        return _fold(self.text) == _fold(other.text)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


# ----------------------------------------------------------------- published schemes

_V1 = "http://www.niso.org/ncip/v1_0/schemes/"
_IMP1 = "http://www.niso.org/ncip/v1_0/imp1/schemes/"


def _values(scheme: str, *names: str) -> dict[str, SchemeValue]:
    return {n: SchemeValue(n, scheme) for n in names}


class Messaging:
    """messagingerrortype.scm: a message that could not be read."""
    SCHEME = _V1 + "messagingerrortype/messagingerrortype.scm"
    INVALID_MESSAGE_SYNTAX_ERROR = SchemeValue("Invalid Message Syntax Error", SCHEME)
    PROTOCOL_ERROR = SchemeValue("Protocol Error", SCHEME)
    UNKNOWN_ELEMENT = SchemeValue("Unknown Element", SCHEME)
    UNKNOWN_SCHEME = SchemeValue("Unknown Scheme", SCHEME)
    UNKNOWN_SERVICE = SchemeValue("Unknown Service", SCHEME)
    UNKNOWN_VALUE_FROM_KNOWN_SCHEME = SchemeValue("Unknown Value From Known Scheme", SCHEME)


class General:
    """generalprocessingerror.scm: problems of any service."""
    SCHEME = _V1 + "processingerrortype/generalprocessingerror.scm"
    AGENCY_AUTHENTICATION_FAILED = SchemeValue("Agency Authentication Failed", SCHEME)
    INVALID_DATE = SchemeValue("Invalid Date", SCHEME)
    NEEDED_DATA_MISSING = SchemeValue("Needed Data Missing", SCHEME)
    TEMPORARY_PROCESSING_FAILURE = SchemeValue("Temporary Processing Failure", SCHEME)
    UNAUTHORIZED_COMBINATION_OF_ELEMENT_VALUES_FOR_AGENCY = SchemeValue(
        "Unauthorized Combination Of Element Values For Agency", SCHEME)
    UNKNOWN_AGENCY = SchemeValue("Unknown Agency", SCHEME)
    UNSUPPORTED_SERVICE = SchemeValue("Unsupported Service", SCHEME)


class LookupUserError:
    SCHEME = _V1 + "processingerrortype/lookupuserprocessingerror.scm"
    UNKNOWN_USER = SchemeValue("Unknown User", SCHEME)


class AcceptItemError:
    SCHEME = _V1 + "processingerrortype/acceptitemprocessingerror.scm"
    CANNOT_ACCEPT_ITEM = SchemeValue("Cannot Accept Item", SCHEME)
    ELEMENT_RULE_VIOLATED = SchemeValue("Element Rule Violated", SCHEME)
    UNKNOWN_USER = SchemeValue("Unknown User", SCHEME)


class CheckOutItemError:
    SCHEME = _V1 + "processingerrortype/checkoutitemprocessingerror.scm"
    ITEM_DOES_NOT_CIRCULATE = SchemeValue("Item Does Not Circulate", SCHEME)
    MAXIMUM_CHECK_OUTS_EXCEEDED = SchemeValue("Maximum Check Outs Exceeded", SCHEME)
    RESOURCE_CANNOT_BE_PROVIDED = SchemeValue("Resource Cannot Be Provided", SCHEME)
    UNKNOWN_ITEM = SchemeValue("Unknown Item", SCHEME)
    UNKNOWN_USER = SchemeValue("Unknown User", SCHEME)
    USER_BLOCKED = SchemeValue("User Blocked", SCHEME)
    USER_INELIGIBLE_TO_CHECK_OUT_THIS_ITEM = SchemeValue("User Ineligible To Check Out This Item", SCHEME)


class CheckInItemError:
    SCHEME = _V1 + "processingerrortype/checkinitemprocessingerror.scm"
    ITEM_NOT_CHECKED_OUT = SchemeValue("Item Not Checked Out", SCHEME)
    UNKNOWN_ITEM = SchemeValue("Unknown Item", SCHEME)


class RequestItemError:
    SCHEME = _V1 + "processingerrortype/requestitemprocessingerror.scm"
    DUPLICATE_REQUEST = SchemeValue("Duplicate Request", SCHEME)
    ELEMENT_RULE_VIOLATED = SchemeValue("Element Rule Violated", SCHEME)
    ITEM_DOES_NOT_CIRCULATE = SchemeValue("Item Does Not Circulate", SCHEME)
    UNKNOWN_ITEM = SchemeValue("Unknown Item", SCHEME)
    UNKNOWN_USER = SchemeValue("Unknown User", SCHEME)
    USER_BLOCKED = SchemeValue("User Blocked", SCHEME)
    USER_INELIGIBLE_TO_REQUEST_THIS_ITEM = SchemeValue("User Ineligible To Request This Item", SCHEME)


class CancelRequestItemError:
    SCHEME = _V1 + "processingerrortype/cancelrequestitemprocessingerror.scm"
    ELEMENT_RULE_VIOLATED = SchemeValue("Element Rule Violated", SCHEME)
    REQUEST_ALREADY_PROCESSED = SchemeValue("Request Already Processed", SCHEME)
    UNKNOWN_ITEM = SchemeValue("Unknown Item", SCHEME)
    UNKNOWN_REQUEST = SchemeValue("Unknown Request", SCHEME)
    UNKNOWN_USER = SchemeValue("Unknown User", SCHEME)


# Implementation profile 1 schemes of the values the services read
REQUESTED_ACTION_TYPES = _values(_IMP1 + "requestedactiontype/requestedactiontype.scm",
                                 "Circulate", "Circulate And Notify", "Hold For Pickup",
                                 "Hold For Pickup And Notify")
REQUEST_TYPES = _values(_IMP1 + "requesttype/requesttype.scm",
                        "Estimate", "Hold", "Loan", "Non-returnable Copy", "Stack Retrieval")
REQUEST_SCOPE_TYPES = _values(_IMP1 + "requestscopetype/requestscopetype.scm", "Bibliographic Item", "Item")
USER_ELEMENT_TYPES = _values(_V1 + "userelementtype/userelementtype.scm",
                             "Authentication Input", "Block Or Trap", "Date Of Birth", "Name Information",
                             "User Address Information", "User Language", "User Privilege", "User Id",
                             "Previous User Id")


def known(values: dict[str, SchemeValue], given: SchemeValue) -> SchemeValue | None:
    """The published value ``given`` stands for (see :meth:`SchemeValue.means`), or None."""
    return next((v for v in values.values() if v.means(given)), None)


# ----------------------------------------------------------------- errors

class ProtocolError(Exception):
    """A message that cannot be taken as it is: the Problem to answer with.

    ``service`` is the initiation message being read (its response carries the
    Problem) or None when not even that is known (a top-level Problem answers)."""

    def __init__(self, problem_type: SchemeValue, detail: str = "", *, element: str | None = None,
                 value: str | None = None, service: str | None = None):
        super().__init__(f"{problem_type.text}: {detail}" if detail else problem_type.text)
        self.problem_type, self.detail = problem_type, detail
        self.element, self.value, self.service = element, value, service


# ----------------------------------------------------------------- common elements

def _xml(name: str, **kw):
    return field(metadata={"xml": name}, **kw)


@dataclass(frozen=True, slots=True)
class FromAgencyId:
    agency_id: SchemeValue


@dataclass(frozen=True, slots=True)
class ToAgencyId:
    agency_id: SchemeValue


@dataclass(frozen=True, slots=True)
class InitiationHeader:
    from_agency_id: FromAgencyId
    to_agency_id: ToAgencyId
    from_system_id: SchemeValue | None = None
    from_system_authentication: str | None = None
    from_agency_authentication: str | None = None
    to_system_id: SchemeValue | None = None
    application_profile_type: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    from_agency_id: FromAgencyId
    to_agency_id: ToAgencyId
    from_system_id: SchemeValue | None = None
    to_system_id: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class UserId:
    user_identifier_value: str
    agency_id: SchemeValue | None = None
    user_identifier_type: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class ItemId:
    item_identifier_value: str
    agency_id: SchemeValue | None = None
    item_identifier_type: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class RequestId:
    request_identifier_value: str
    agency_id: SchemeValue | None = None
    request_identifier_type: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class AuthenticationInput:
    authentication_input_data: str
    authentication_data_format_type: SchemeValue
    authentication_input_type: SchemeValue


@dataclass(frozen=True, slots=True)
class Problem:
    problem_type: SchemeValue
    problem_detail: str | None = None
    problem_element: str | None = None
    problem_value: str | None = None


@dataclass(frozen=True, slots=True)
class BibliographicItemId:
    bibliographic_item_identifier: str
    bibliographic_item_identifier_code: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class BibliographicRecordId:
    """The record id and, as the schema's choice, either the agency that gave it or a
    code naming the identifier system."""
    bibliographic_record_identifier: str
    agency_id: SchemeValue | None = None
    bibliographic_record_identifier_code: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class BibliographicId:
    bibliographic_item_id: BibliographicItemId | None = None
    bibliographic_record_id: BibliographicRecordId | None = None


@dataclass(frozen=True, slots=True)
class BibliographicDescription:
    author: str | None = None
    bibliographic_item_id: BibliographicItemId | None = None
    bibliographic_record_id: tuple[BibliographicRecordId, ...] = ()
    edition: str | None = None
    place_of_publication: str | None = None
    publication_date: str | None = None
    publisher: str | None = None
    title: str | None = None
    medium_type: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class ItemOptionalFields:
    bibliographic_description: BibliographicDescription | None = None
    date_due: datetime | None = None


@dataclass(frozen=True, slots=True)
class StructuredPersonalUserName:
    surname: str
    prefix: str | None = None
    given_name: str | None = None
    initials: str | None = None
    suffix: str | None = None


@dataclass(frozen=True, slots=True)
class PersonalNameInformation:
    structured_personal_user_name: StructuredPersonalUserName | None = None
    unstructured_personal_user_name: str | None = None


@dataclass(frozen=True, slots=True)
class NameInformation:
    personal_name_information: PersonalNameInformation


@dataclass(frozen=True, slots=True)
class UserPrivilegeStatus:
    user_privilege_status_type: SchemeValue
    date_of_user_privilege_status: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserPrivilege:
    agency_id: SchemeValue
    agency_user_privilege_type: SchemeValue
    valid_from_date: datetime | None = None
    valid_to_date: datetime | None = None
    user_privilege_status: UserPrivilegeStatus | None = None
    user_privilege_description: str | None = None


@dataclass(frozen=True, slots=True)
class BlockOrTrap:
    agency_id: SchemeValue
    block_or_trap_type: SchemeValue
    valid_from_date: datetime | None = None
    valid_to_date: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserOptionalFields:
    name_information: NameInformation | None = None
    user_privilege: tuple[UserPrivilege, ...] = ()
    block_or_trap: tuple[BlockOrTrap, ...] = ()
    user_id: tuple[UserId, ...] = ()


@dataclass(frozen=True, slots=True)
class LocationNameInstance:
    location_name_level: int = field(metadata={"min": 1})
    location_name_value: str = ""


@dataclass(frozen=True, slots=True)
class LocationName:
    location_name_instance: tuple[LocationNameInstance, ...]


@dataclass(frozen=True, slots=True)
class Location:
    location_type: SchemeValue
    location_name: LocationName


@dataclass(frozen=True, slots=True)
class Destination:
    location: Location


@dataclass(frozen=True, slots=True)
class RoutingInformation:
    routing_instructions: str
    destination: Destination


# ----------------------------------------------------------------- initiation messages

@dataclass(frozen=True, slots=True)
class LookupUser:
    initiation_header: InitiationHeader | None = None
    user_id: UserId | None = None
    authentication_input: tuple[AuthenticationInput, ...] = ()
    user_element_type: tuple[SchemeValue, ...] = ()
    loaned_items_desired: bool = False
    requested_items_desired: bool = False
    user_fiscal_account_desired: bool = False


@dataclass(frozen=True, slots=True)
class AcceptItem:
    request_id: RequestId
    requested_action_type: SchemeValue
    initiation_header: InitiationHeader | None = None
    user_id: UserId | None = None
    item_id: ItemId | None = None
    date_for_return: datetime | None = None
    indeterminate_loan_period_flag: bool = False
    non_returnable_flag: bool = False
    renewal_not_permitted: bool = False
    item_optional_fields: ItemOptionalFields | None = None
    pickup_location: SchemeValue | None = None
    pickup_expiry_date: datetime | None = None


@dataclass(frozen=True, slots=True)
class CheckOutItem:
    item_id: ItemId
    initiation_header: InitiationHeader | None = None
    user_id: UserId | None = None
    authentication_input: tuple[AuthenticationInput, ...] = ()
    request_id: RequestId | None = None
    desired_date_due: datetime | None = None
    item_element_type: tuple[SchemeValue, ...] = ()
    user_element_type: tuple[SchemeValue, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckInItem:
    item_id: ItemId
    initiation_header: InitiationHeader | None = None
    item_element_type: tuple[SchemeValue, ...] = ()
    user_element_type: tuple[SchemeValue, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestItem:
    request_type: SchemeValue
    request_scope_type: SchemeValue
    initiation_header: InitiationHeader | None = None
    user_id: UserId | None = None
    authentication_input: tuple[AuthenticationInput, ...] = ()
    bibliographic_id: tuple[BibliographicId, ...] = ()
    item_id: tuple[ItemId, ...] = ()
    request_id: RequestId | None = None
    item_optional_fields: ItemOptionalFields | None = None
    earliest_date_needed: datetime | None = None
    need_before_date: datetime | None = None
    pickup_location: SchemeValue | None = None
    pickup_expiry_date: datetime | None = None


@dataclass(frozen=True, slots=True)
class CancelRequestItem:
    request_type: SchemeValue
    initiation_header: InitiationHeader | None = None
    user_id: UserId | None = None
    authentication_input: tuple[AuthenticationInput, ...] = ()
    request_id: RequestId | None = None
    item_id: ItemId | None = None
    request_scope_type: SchemeValue | None = None


# ----------------------------------------------------------------- responses

@dataclass(frozen=True, slots=True)
class LookupUserResponse:
    response_header: ResponseHeader | None = None
    problem: tuple[Problem, ...] = ()
    user_id: UserId | None = None
    user_optional_fields: UserOptionalFields | None = None


@dataclass(frozen=True, slots=True)
class AcceptItemResponse:
    response_header: ResponseHeader | None = None
    problem: tuple[Problem, ...] = ()
    request_id: RequestId | None = None
    item_id: ItemId | None = None


@dataclass(frozen=True, slots=True)
class CheckOutItemResponse:
    response_header: ResponseHeader | None = None
    problem: tuple[Problem, ...] = ()
    item_id: ItemId | None = None
    user_id: UserId | None = None
    date_due: datetime | None = None
    indeterminate_loan_period_flag: bool = False
    non_returnable_flag: bool = False
    renewal_count: int | None = field(default=None, metadata={"min": 0})
    item_optional_fields: ItemOptionalFields | None = None
    user_optional_fields: UserOptionalFields | None = None


@dataclass(frozen=True, slots=True)
class CheckInItemResponse:
    response_header: ResponseHeader | None = None
    problem: tuple[Problem, ...] = ()
    item_id: ItemId | None = None
    user_id: UserId | None = None
    routing_information: RoutingInformation | None = None
    item_optional_fields: ItemOptionalFields | None = None
    user_optional_fields: UserOptionalFields | None = None


@dataclass(frozen=True, slots=True)
class RequestItemResponse:
    response_header: ResponseHeader | None = None
    problem: tuple[Problem, ...] = ()
    request_id: RequestId | None = None
    item_id: ItemId | None = None
    user_id: UserId | None = None
    request_type: SchemeValue | None = None
    request_scope_type: SchemeValue | None = None
    date_available: datetime | None = None
    hold_pickup_date: datetime | None = None
    item_optional_fields: ItemOptionalFields | None = None
    user_optional_fields: UserOptionalFields | None = None


@dataclass(frozen=True, slots=True)
class CancelRequestItemResponse:
    response_header: ResponseHeader | None = None
    problem: tuple[Problem, ...] = ()
    request_id: RequestId | None = None
    item_id: ItemId | None = None
    user_id: UserId | None = None
    item_optional_fields: ItemOptionalFields | None = None
    user_optional_fields: UserOptionalFields | None = None


@dataclass(frozen=True, slots=True)
class ProblemResponse:
    """Problems only: the response of a ``service`` we do not offer
    (``<{service}Response>``), or, with ``service`` None, a message that could not be
    read at all (``Problem`` elements directly under ``NCIPMessage``)."""
    problem: tuple[Problem, ...]
    service: str | None = None
    response_header: ResponseHeader | None = None


# ----------------------------------------------------------------- tables

# Field order of the schema's sequences (the dataclasses put required fields first)
ORDER: dict[type, tuple[str, ...]] = {
    InitiationHeader: ("from_system_id", "from_system_authentication", "from_agency_id",
                       "from_agency_authentication", "to_system_id", "to_agency_id", "application_profile_type"),
    ResponseHeader: ("from_system_id", "from_agency_id", "to_system_id", "to_agency_id"),
    UserId: ("agency_id", "user_identifier_type", "user_identifier_value"),
    ItemId: ("agency_id", "item_identifier_type", "item_identifier_value"),
    RequestId: ("agency_id", "request_identifier_type", "request_identifier_value"),
    StructuredPersonalUserName: ("prefix", "given_name", "initials", "surname", "suffix"),
    AcceptItem: ("initiation_header", "request_id", "requested_action_type", "user_id", "item_id",
                 "date_for_return", "indeterminate_loan_period_flag", "non_returnable_flag",
                 "renewal_not_permitted", "item_optional_fields", "pickup_location", "pickup_expiry_date"),
    CheckOutItem: ("initiation_header", "user_id", "authentication_input", "item_id", "request_id",
                   "desired_date_due", "item_element_type", "user_element_type"),
    CheckInItem: ("initiation_header", "item_id", "item_element_type", "user_element_type"),
    RequestItem: ("initiation_header", "user_id", "authentication_input", "bibliographic_id", "item_id",
                  "request_id", "request_type", "request_scope_type", "item_optional_fields",
                  "earliest_date_needed", "need_before_date", "pickup_location", "pickup_expiry_date"),
    CancelRequestItem: ("initiation_header", "user_id", "authentication_input", "request_id", "item_id",
                        "request_type", "request_scope_type"),
    ProblemResponse: ("response_header", "problem"),
}

# Elements the schema allows there that the services do not read: skipped when reading
# (an Ext, the schema's extension point, is skipped everywhere).
SKIPPED: dict[type, frozenset[str]] = {
    InitiationHeader: frozenset({"OnBehalfOfAgency"}),
    ResponseHeader: frozenset({"FromSystemAuthentication", "FromAgencyAuthentication"}),
    AcceptItem: frozenset({"MandatedAction", "FiscalTransactionInformation", "UserOptionalFields"}),
    CheckOutItem: frozenset({"MandatedAction", "AcknowledgedFeeAmount", "PaidFeeAmount",
                             "AcknowledgedItemUseRestrictionType", "ShippingInformation", "ResourceDesired"}),
    CheckInItem: frozenset({"MandatedAction"}),
    RequestItem: frozenset({"MandatedAction", "ShippingInformation", "AcknowledgedFeeAmount", "PaidFeeAmount",
                            "AcknowledgedItemUseRestrictionType", "ItemElementType", "UserElementType"}),
    CancelRequestItem: frozenset({"MandatedAction", "AcknowledgedFeeAmount", "PaidFeeAmount",
                                  "ItemElementType", "UserElementType"}),
    BibliographicDescription: frozenset({"AuthorOfComponent", "ComponentId", "Pagination",
                                         "PublicationDateOfComponent", "SeriesTitleNumber", "TitleOfComponent",
                                         "BibliographicLevel", "SponsoringBody", "ElectronicDataFormatType",
                                         "Language"}),
    ItemOptionalFields: frozenset({"ItemUseRestrictionType", "CirculationStatus", "HoldQueueLength",
                                   "ItemDescription", "Location", "PhysicalCondition", "ElectronicResource",
                                   "SecurityMarker", "SensitizationFlag"}),
    UserOptionalFields: frozenset({"UserAddressInformation", "DateOfBirth", "UserLanguage", "PreviousUserId"}),
    UserPrivilege: frozenset({"UserPrivilegeFee"}),
    NameInformation: frozenset({"OrganizationNameInformation"}),
    LookupUserResponse: frozenset({"UserFiscalAccount", "LoanedItemsCount", "LoanedItem", "RequestedItemsCount",
                                   "RequestedItem"}),
    CheckOutItemResponse: frozenset({"RequiredFeeAmount", "RequiredItemUseRestrictionType", "ElectronicResource",
                                     "FiscalTransactionInformation"}),
    CheckInItemResponse: frozenset({"FiscalTransactionInformation"}),
    RequestItemResponse: frozenset({"RequiredFeeAmount", "RequiredItemUseRestrictionType", "ShippingInformation",
                                    "FiscalTransactionInformation"}),
    CancelRequestItemResponse: frozenset({"FiscalTransactionInformation"}),
    Destination: frozenset({"BinNumber"}),
    RoutingInformation: frozenset({"RequestType", "UserId", "NameInformation"}),
}

INITIATIONS = (LookupUser, AcceptItem, CheckOutItem, CheckInItem, RequestItem, CancelRequestItem)
RESPONSE_FOR: dict[type, type] = {
    LookupUser: LookupUserResponse, AcceptItem: AcceptItemResponse, CheckOutItem: CheckOutItemResponse,
    CheckInItem: CheckInItemResponse, RequestItem: RequestItemResponse,
    CancelRequestItem: CancelRequestItemResponse,
}
RESPONSES = tuple(RESPONSE_FOR.values())
MESSAGE_TYPES: dict[str, type] = {cls.__name__: cls for cls in INITIATIONS + RESPONSES}

# Every initiation message of NCIP 2.02 (each has a <name>Response in the schema): one we
# do not model is answered with Unsupported Service in its own response element.
SERVICES = frozenset({
    "AcceptItem", "AgencyCreated", "AgencyUpdated", "CancelRecallItem", "CancelRequestItem", "CheckInItem",
    "CheckOutItem", "CirculationStatusChangeReported", "CirculationStatusUpdated", "CreateAgency", "CreateItem",
    "CreateUser", "CreateUserFiscalTransaction", "DeleteItem", "DeleteUser", "ItemCheckedIn", "ItemCheckedOut",
    "ItemCreated", "ItemRecallCancelled", "ItemRecalled", "ItemReceived", "ItemRenewed", "ItemRequestCancelled",
    "ItemRequestUpdated", "ItemRequested", "ItemShipped", "ItemUpdated", "LookupAgency", "LookupItem",
    "LookupItemSet", "LookupRequest", "LookupUser", "RecallItem", "RenewItem", "ReportCirculationStatusChange",
    "RequestItem", "SendUserNotice", "UndoCheckOutItem", "UpdateAgency", "UpdateCirculationStatus", "UpdateItem",
    "UpdateRequestItem", "UpdateUser", "UserCreated", "UserFiscalTransactionCreated", "UserNoticeSent",
    "UserUpdated",
})

Initiation = LookupUser | AcceptItem | CheckOutItem | CheckInItem | RequestItem | CancelRequestItem
Response = (LookupUserResponse | AcceptItemResponse | CheckOutItemResponse | CheckInItemResponse
            | RequestItemResponse | CancelRequestItemResponse | ProblemResponse)
Message = Initiation | Response


def service_of(message) -> str | None:
    """The service a message belongs to (``CheckOutItem`` for CheckOutItem and its
    response); None for a top-level Problem."""
    if isinstance(message, ProblemResponse):
        return message.service
    name = type(message).__name__
    return name.removesuffix("Response")


# ----------------------------------------------------------------- choices

def _user_choice(o) -> str | None:
    if (o.user_id is None) == (not o.authentication_input):
        return "one of UserId or AuthenticationInput"
    return None


def _outcome(o, required: tuple[str, ...], *, either: tuple[str, ...] = ()) -> str | None:
    """A response holds Problems or the success elements, never both."""
    success = [f.name for f in dataclasses.fields(o) if f.name not in ("response_header", "problem")
               and _given(getattr(o, f.name))]
    if o.problem:
        return f"Problem with {success[0]}" if success else None
    missing = [f for f in required if getattr(o, f) is None]
    if missing:
        return f"{missing[0]} missing"
    if either and not any(_given(getattr(o, f)) for f in either):
        return f"one of {', '.join(either)}"
    return None


def _given(value) -> bool:
    return value is not None and value is not False and value != ()


def _at_most_one(o, *names: str) -> str | None:
    given = [n for n in names if _given(getattr(o, n))]
    return f"only one of {', '.join(given)}" if len(given) > 1 else None


def _exactly_one(o, *names: str) -> str | None:
    given = [n for n in names if getattr(o, n) is not None]
    return None if len(given) == 1 else f"one of {', '.join(names)}"


_RULES = {
    LookupUser: _user_choice,
    CheckOutItem: _user_choice,
    RequestItem: lambda o: _user_choice(o) or (
        None if (o.item_id or o.bibliographic_id) else "ItemId or BibliographicId"),
    CancelRequestItem: lambda o: _user_choice(o) or (
        None if (o.item_id or o.request_id) else "ItemId or RequestId"),
    AcceptItem: lambda o: _at_most_one(o, "date_for_return", "indeterminate_loan_period_flag",
                                       "non_returnable_flag"),
    BibliographicId: lambda o: _exactly_one(o, "bibliographic_item_id", "bibliographic_record_id"),
    BibliographicRecordId: lambda o: _exactly_one(o, "agency_id", "bibliographic_record_identifier_code"),
    PersonalNameInformation: lambda o: (None if o.structured_personal_user_name is not None
                                        or o.unstructured_personal_user_name is not None
                                        else "StructuredPersonalUserName or UnstructuredPersonalUserName"),
    LocationName: lambda o: None if o.location_name_instance else "LocationNameInstance missing",
    LookupUserResponse: lambda o: _outcome(o, ("user_id",)),
    AcceptItemResponse: lambda o: _outcome(o, ("request_id",)),
    CheckOutItemResponse: lambda o: _outcome(o, ("item_id", "user_id")) or (
        None if o.problem else _exactly_one_flag(o)),
    CheckInItemResponse: lambda o: _outcome(o, ("item_id",)),
    RequestItemResponse: lambda o: _outcome(o, ("user_id", "request_type", "request_scope_type"),
                                            either=("request_id", "item_id")),
    CancelRequestItemResponse: lambda o: _outcome(o, ("user_id",), either=("request_id", "item_id")),
    ProblemResponse: lambda o: None if o.problem else "Problem missing",
}


def _exactly_one_flag(o) -> str | None:
    given = [o.date_due is not None, o.indeterminate_loan_period_flag, o.non_returnable_flag]
    return None if sum(given) == 1 else "one of DateDue, IndeterminateLoanPeriodFlag, NonReturnableFlag"


def violation(obj) -> str | None:
    """What in ``obj`` breaks a choice of the schema (None when nothing does)."""
    rule = _RULES.get(type(obj))
    return rule(obj) if rule is not None else None
