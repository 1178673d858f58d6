"""ISO 18626:2017 (schema v1.2) messages as plain data.

Every element of the v1.2 schema is a frozen dataclass here, its fields in the
schema's sequence order; the XML name of a field is its name in camelCase
(``requesting_agency_id`` → ``requestingAgencyId``) unless the field's metadata
says otherwise.  Optional elements default to ``None``; repeatable ones are
tuples.  Closed code lists of the schema are enums; open ones (agency id types,
reasons unfilled/retry, loan conditions, …) are :class:`SchemeValue`, a text with
an optional ``scheme`` URI, with the values of the published open code lists as
constants below.  :mod:`.codec` turns these into XML and back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum

NS = "http://illtransactions.org/2013/iso18626"
VERSION = "1.2"


# ----------------------------------------------------------------- closed lists

class Action(str, Enum):
    STATUS_REQUEST = "StatusRequest"
    RECEIVED = "Received"
    CANCEL = "Cancel"
    RENEW = "Renew"
    SHIPPED_RETURN = "ShippedReturn"
    SHIPPED_FORWARD = "ShippedForward"
    NOTIFICATION = "Notification"


class ReasonForMessage(str, Enum):
    REQUEST_RESPONSE = "RequestResponse"
    STATUS_REQUEST_RESPONSE = "StatusRequestResponse"
    RENEW_RESPONSE = "RenewResponse"
    CANCEL_RESPONSE = "CancelResponse"
    STATUS_CHANGE = "StatusChange"
    NOTIFICATION = "Notification"


class Status(str, Enum):
    REQUEST_RECEIVED = "RequestReceived"
    EXPECT_TO_SUPPLY = "ExpectToSupply"
    WILL_SUPPLY = "WillSupply"
    LOANED = "Loaned"
    OVERDUE = "Overdue"
    RECALLED = "Recalled"
    RETRY_POSSIBLE = "RetryPossible"
    UNFILLED = "Unfilled"
    COPY_COMPLETED = "CopyCompleted"
    LOAN_COMPLETED = "LoanCompleted"
    COMPLETED_WITHOUT_RETURN = "CompletedWithoutReturn"
    CANCELLED = "Cancelled"


class ErrorType(str, Enum):
    UNSUPPORTED_ACTION_TYPE = "UnsupportedActionType"
    UNSUPPORTED_REASON_FOR_MESSAGE_TYPE = "UnsupportedReasonForMessageType"
    UNRECOGNISED_DATA_ELEMENT = "UnrecognisedDataElement"
    UNRECOGNISED_DATA_VALUE = "UnrecognisedDataValue"
    BADLY_FORMED_MESSAGE = "BadlyFormedMessage"


class MessageStatus(str, Enum):
    OK = "OK"
    ERROR = "ERROR"


class RequestType(str, Enum):
    NEW = "New"
    RETRY = "Retry"
    REMINDER = "Reminder"


class RequestSubType(str, Enum):
    BOOKING_REQUEST = "BookingRequest"
    MULTIPLE_ITEM_REQUEST = "MultipleItemRequest"
    PATRON_REQUEST = "PatronRequest"
    TRANSFER_REQUEST = "TransferRequest"
    SUPPLYING_LIBRARYS_CHOICE = "SupplyingLibrarysChoice"


class ServiceType(str, Enum):
    COPY = "Copy"
    LOAN = "Loan"
    COPY_OR_LOAN = "CopyOrLoan"


class YesNo(str, Enum):
    Y = "Y"
    N = "N"


# ----------------------------------------------------------------- open lists
# Values of the published ISO 18626 open code lists (illtransactions.org) that the
# gateway sends or acts on; any other value is accepted and kept as text.

class ReasonUnfilled:
    NOT_HELD = "NotHeld"
    NOT_AVAILABLE_FOR_ILL = "NotAvailableForILL"
    NOT_ON_SHELF = "NotOnShelf"
    NON_CIRCULATING = "NonCirculating"
    POLICY_PROBLEM = "PolicyProblem"
    POOR_CONDITION = "PoorCondition"


class ReasonRetry:
    AT_BINDERY = "AtBindery"
    COST_EXCEEDS_MAX_COST = "CostExceedsMaxCost"
    MUST_MEET_LOAN_CONDITION = "MustMeetLoanCondition"
    LOAN_CONDITION = "LoanCondition"            # used by some implementations for the above
    NOT_CURRENT_AVAILABLE_FOR_ILL = "NotCurrentAvailableForILL"
    NOT_FOUND_AS_CITED = "NotFoundAsCited"
    ON_LOAN = "OnLoan"
    ON_ORDER = "OnOrder"


class LoanCondition:
    LIBRARY_USE_ONLY = "LibraryUseOnly"
    NO_REPRODUCTION = "NoReproduction"
    SIGNATURE_REQUIRED = "SignatureRequired"
    SPEC_COLL_SUPERV_REQ = "SpecCollSupervReq"
    WATCH_LIBRARY_USE_ONLY = "WatchLibraryUseOnly"


def _x(name: str) -> dict:
    """Field metadata: the XML element name where camelCase of the field name is not it."""
    return {"xml": name}


# ----------------------------------------------------------------- building blocks

@dataclass(frozen=True, slots=True)
class SchemeValue:
    """type_schemeValuePair: a value of an open code list, with its scheme URI."""
    text: str
    scheme: str | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class AgencyId:
    agency_id_type: SchemeValue
    agency_id_value: str

    @classmethod
    def of(cls, type_: str, value: str) -> AgencyId:
        return cls(SchemeValue(type_), value)

    @property
    def key(self) -> tuple[str, str]:
        """(type, value) with the type upper-cased: how agencies are compared."""
        return (self.agency_id_type.text.upper(), self.agency_id_value)

    def __str__(self) -> str:
        return f"{self.agency_id_type.text}:{self.agency_id_value}"


@dataclass(frozen=True, slots=True)
class Costs:
    currency_code: SchemeValue
    monetary_value: Decimal


@dataclass(frozen=True, slots=True)
class ElectronicAddress:
    electronic_address_type: SchemeValue
    electronic_address_data: str


@dataclass(frozen=True, slots=True)
class PhysicalAddress:
    line1: str | None = None
    line2: str | None = None
    locality: str | None = None
    postal_code: str | None = None
    region: SchemeValue | None = None
    country: SchemeValue | None = None


@dataclass(frozen=True, slots=True)
class Address:
    """A choice of exactly one of the two."""
    electronic_address: ElectronicAddress | None = None
    physical_address: PhysicalAddress | None = None


@dataclass(frozen=True, slots=True)
class Authentication:
    account_id: str | None = None
    security_code: str | None = None


@dataclass(frozen=True, slots=True)
class Header:
    supplying_agency_id: AgencyId
    requesting_agency_id: AgencyId
    timestamp: datetime
    requesting_agency_request_id: str
    # required by v1.2 (may be empty): "" is sent when there is none
    multiple_item_request_id: str = ""
    supplying_agency_request_id: str | None = None
    requesting_agency_authentication: Authentication | None = None


# element order of <header> in the schema (differs from the dataclass' for defaults)
HEADER_ORDER = ("supplying_agency_id", "requesting_agency_id", "multiple_item_request_id",
                "timestamp", "requesting_agency_request_id", "supplying_agency_request_id",
                "requesting_agency_authentication")


@dataclass(frozen=True, slots=True)
class ConfirmationHeader:
    timestamp: datetime
    timestamp_received: datetime
    message_status: MessageStatus
    supplying_agency_id: AgencyId | None = None
    requesting_agency_id: AgencyId | None = None
    requesting_agency_request_id: str | None = None
    multiple_item_request_id: str | None = None


CONFIRMATION_HEADER_ORDER = ("supplying_agency_id", "requesting_agency_id", "timestamp",
                             "requesting_agency_request_id", "multiple_item_request_id",
                             "timestamp_received", "message_status")


@dataclass(frozen=True, slots=True)
class ErrorData:
    error_type: ErrorType
    error_value: str | None = None


# ----------------------------------------------------------------- request parts

@dataclass(frozen=True, slots=True)
class BibliographicItemId:
    bibliographic_item_identifier: str
    bibliographic_item_identifier_code: SchemeValue     # ISBN, ISSN, …


@dataclass(frozen=True, slots=True)
class BibliographicRecordId:
    bibliographic_record_identifier_code: SchemeValue   # OCLC, LCCN, the union record's id scheme
    bibliographic_record_identifier: str


@dataclass(frozen=True, slots=True)
class BibliographicInfo:
    supplier_unique_record_id: str | None = None
    title: str | None = None
    author: str | None = None
    subtitle: str | None = None
    series_title: str | None = None
    edition: str | None = None
    title_of_component: str | None = None
    author_of_component: str | None = None
    volume: str | None = None
    issue: str | None = None
    pages_requested: str | None = None
    estimated_no_pages: str | None = field(default=None, metadata=_x("estimatedNoPages"))
    bibliographic_item_id: tuple[BibliographicItemId, ...] = ()
    sponsor: str | None = None
    information_source: str | None = None
    bibliographic_record_id: tuple[BibliographicRecordId, ...] = ()


@dataclass(frozen=True, slots=True)
class PublicationInfo:
    publisher: str | None = None
    publication_type: SchemeValue | None = None
    publication_date: str | None = None
    place_of_publication: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    service_type: ServiceType
    request_type: RequestType | None = None
    request_sub_type: tuple[RequestSubType, ...] = ()
    requesting_agency_previous_request_id: str | None = None
    service_level: SchemeValue | None = None
    preferred_format: SchemeValue | None = None
    need_before_date: datetime | None = None
    copyright_compliance: SchemeValue | None = None
    any_edition: YesNo | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    note: str | None = None


SERVICE_INFO_ORDER = ("request_type", "request_sub_type", "requesting_agency_previous_request_id",
                      "service_type", "service_level", "preferred_format", "need_before_date",
                      "copyright_compliance", "any_edition", "start_date", "end_date", "note")


@dataclass(frozen=True, slots=True)
class SupplierInfo:
    sort_order: int | None = None
    supplier_code: AgencyId | None = None
    supplier_description: str | None = None
    bibliographic_record_id: BibliographicRecordId | None = None
    call_number: str | None = None
    summary_holdings: str | None = None
    availability_note: str | None = None


@dataclass(frozen=True, slots=True)
class RequestedDeliveryInfo:
    sort_order: int | None = None
    address: Address | None = None


@dataclass(frozen=True, slots=True)
class RequestingAgencyInfo:
    name: str | None = None
    contact_name: str | None = None
    address: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True)
class PatronInfo:
    patron_id: str | None = None
    surname: str | None = None
    given_name: str | None = None
    patron_type: SchemeValue | None = None
    send_to_patron: YesNo | None = None
    address: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True)
class BillingInfo:
    payment_method: SchemeValue | None = None
    maximum_costs: Costs | None = None
    billing_method: SchemeValue | None = None
    billing_name: str | None = None
    address: Address | None = None


# ----------------------------------------------------------------- supplying agency parts

@dataclass(frozen=True, slots=True)
class MessageInfo:
    reason_for_message: ReasonForMessage
    answer_yes_no: YesNo | None = None
    note: str | None = None
    reason_unfilled: SchemeValue | None = None
    reason_retry: SchemeValue | None = None
    offered_costs: Costs | None = None
    retry_after: datetime | None = None
    retry_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class StatusInfo:
    status: Status
    last_change: datetime
    expected_delivery_date: datetime | None = None
    due_date: datetime | None = None


STATUS_INFO_ORDER = ("status", "expected_delivery_date", "due_date", "last_change")


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    date_sent: datetime
    item_id: str | None = None
    sent_via: SchemeValue | None = None
    sent_to_patron: bool | None = None
    loan_condition: SchemeValue | None = None
    delivered_format: SchemeValue | None = None
    delivery_costs: Costs | None = None


@dataclass(frozen=True, slots=True)
class ReturnInfo:
    return_agency_id: AgencyId | None = None
    name: str | None = None
    physical_address: PhysicalAddress | None = None


# ----------------------------------------------------------------- the six messages

@dataclass(frozen=True, slots=True)
class Request:
    header: Header
    bibliographic_info: BibliographicInfo
    publication_info: PublicationInfo | None = None
    service_info: ServiceInfo | None = None
    supplier_info: tuple[SupplierInfo, ...] = ()
    requested_delivery_info: tuple[RequestedDeliveryInfo, ...] = ()
    requesting_agency_info: RequestingAgencyInfo | None = None
    patron_info: PatronInfo | None = None
    billing_info: BillingInfo | None = None


@dataclass(frozen=True, slots=True)
class SupplyingAgencyMessage:
    header: Header
    message_info: MessageInfo
    status_info: StatusInfo
    delivery_info: DeliveryInfo | None = None
    return_info: ReturnInfo | None = None


@dataclass(frozen=True, slots=True)
class RequestingAgencyMessage:
    header: Header
    action: Action
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RequestConfirmation:
    confirmation_header: ConfirmationHeader
    error_data: ErrorData | None = None


@dataclass(frozen=True, slots=True)
class SupplyingAgencyMessageConfirmation:
    confirmation_header: ConfirmationHeader
    reason_for_message: ReasonForMessage | None = None
    error_data: ErrorData | None = None


@dataclass(frozen=True, slots=True)
class RequestingAgencyMessageConfirmation:
    confirmation_header: ConfirmationHeader
    action: Action | None = None
    error_data: ErrorData | None = None


Message = (Request | SupplyingAgencyMessage | RequestingAgencyMessage | RequestConfirmation
           | SupplyingAgencyMessageConfirmation | RequestingAgencyMessageConfirmation)
Confirmation = (RequestConfirmation | SupplyingAgencyMessageConfirmation
                | RequestingAgencyMessageConfirmation)

# root child element name of each message
ELEMENT: dict[type, str] = {
    Request: "request",
    RequestConfirmation: "requestConfirmation",
    SupplyingAgencyMessage: "supplyingAgencyMessage",
    SupplyingAgencyMessageConfirmation: "supplyingAgencyMessageConfirmation",
    RequestingAgencyMessage: "requestingAgencyMessage",
    RequestingAgencyMessageConfirmation: "requestingAgencyMessageConfirmation",
}
MESSAGE_TYPES: dict[str, type] = {v: k for k, v in ELEMENT.items()}

# the confirmation that answers each incoming message
CONFIRMATION_FOR: dict[type, type] = {
    Request: RequestConfirmation,
    SupplyingAgencyMessage: SupplyingAgencyMessageConfirmation,
    RequestingAgencyMessage: RequestingAgencyMessageConfirmation,
}

# fields whose schema order differs from the dataclass order (defaults must come last
# in a dataclass); every other class is encoded in field order
ORDER: dict[type, tuple[str, ...]] = {
    Header: HEADER_ORDER,
    ConfirmationHeader: CONFIRMATION_HEADER_ORDER,
    ServiceInfo: SERVICE_INFO_ORDER,
    StatusInfo: STATUS_INFO_ORDER,
}


class ProtocolError(Exception):
    """An incoming message that cannot be accepted: ``error_type`` and ``value`` go
    into the ERROR confirmation. ``kind`` is the message class when it was known
    (so the right confirmation answers), ``header`` whatever of the header could be
    read (ids to echo)."""

    def __init__(self, error_type: ErrorType, value: str, *, kind: type | None = None,
                 header: dict | None = None):
        super().__init__(f"{error_type.value}: {value}")
        self.error_type, self.value, self.kind = error_type, value, kind
        self.header = header or {}
