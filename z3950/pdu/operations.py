"""The APDUs of searching and retrieving (Z39.50-2003 3.2.2 - 3.2.7): Search,
Present, DeleteResultSet, Scan and Sort, requests and responses, as frozen
dataclasses; their BER is in ``operations_codec``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple, Union

from ..ber import Element

if TYPE_CHECKING:            # rpn imports this package: its types only, for the checker
    from ..rpn import APT

# ---------------------------------------------------------------------------
# Search, Present, DeleteResultSet, Scan, Sort (Z39.50-2003 3.2.2 - 3.2.7)
#
#   DatabaseName ::= [105] IMPLICIT InternationalString
#   ResultSetId ::= [31] IMPLICIT InternationalString
#   ElementSetNames ::= CHOICE { genericElementSetName [0] IMPLICIT InternationalString,
#       databaseSpecific [1] IMPLICIT SEQUENCE OF SEQUENCE { dbName DatabaseName, esn ElementSetName } }
#   ElementSetName ::= [103] IMPLICIT InternationalString
#   DiagRec ::= CHOICE { defaultFormat DefaultDiagFormat, externallyDefined EXTERNAL }
#   DefaultDiagFormat ::= SEQUENCE { diagnosticSetId OBJECT IDENTIFIER, condition INTEGER,
#       addinfo CHOICE { v2Addinfo VisibleString, v3Addinfo InternationalString } }

BIB1_DIAGNOSTICS = "1.2.840.10003.4.1"
CQL_QUERY_OID = "1.2.840.10003.16.2"     # type-104 query definition for CQL

_DATABASE_NAME = 105
_RESULT_SET_ID = 31
_ELEMENT_SET_NAME = 103
_PREFERRED_RECORD_SYNTAX = 104
_ADDITIONAL_SEARCH_INFO = 203
_RESPONSE_RECORDS, _NON_SURROGATE_DIAGNOSTIC, _MULTIPLE_NON_SUR_DIAGNOSTICS = 28, 130, 205
_PRESENT_STATUS = 27

PRESENT_STATUS = {0: "success", 1: "partial-1", 2: "partial-2", 3: "partial-3", 4: "partial-4", 5: "failure"}
RESULT_SET_STATUS = {1: "subset", 2: "interim", 3: "none"}
SCAN_STATUS = {0: "success", 1: "partial-1", 2: "partial-2", 3: "partial-3", 4: "partial-4", 5: "partial-5",
               6: "failure"}
SORT_STATUS = {0: "success", 1: "partial-1", 2: "failure"}
DELETE_SET_STATUS = {
    0: "success", 1: "resultSetDidNotExist", 2: "previouslyDeletedByTarget", 3: "systemProblemAtTarget",
    4: "accessNotAllowed", 5: "resourceControlAtOrigin", 6: "resourceControlAtTarget",
    7: "bulkDeleteNotSupported", 8: "notAllRsltSetsDeletedOnBulkDlte", 9: "notAllRequestedResultSetsDeleted",
    10: "resultSetInUse",
}

# An element set name: generic ("F", "B") or per database ((database, name), ...)
ElementSetNames = Union[str, Tuple[Tuple[str, str], ...]]


@dataclass(frozen=True)
class Diagnostic:
    """A DiagRec: ``condition`` from ``diagnostic_set`` (Bib-1 by default) with
    its addinfo.  An externally defined DiagRec keeps its EXTERNAL in ``external``
    (condition is then 0 and the other fields are empty)."""
    condition: int
    addinfo: str | None = None
    diagnostic_set: str = BIB1_DIAGNOSTICS
    external: Element | None = None


@dataclass(frozen=True)
class CQLQuery:
    """A type-104 query whose definition is CQL (1.2.840.10003.16.2)."""
    text: str


@dataclass(frozen=True)
class OtherQuery:
    """A query of a type this layer does not interpret (type-0, 2, 100, 102, a
    type-104 other than CQL); ``element`` is the Query choice as it came."""
    type: int
    element: Element


@dataclass(frozen=True)
class SearchRequest:
    query: object                       # rpn.RPNQuery | CQLQuery | OtherQuery
    database_names: tuple[str, ...] = ("Default",)
    result_set_name: str = "default"
    replace_indicator: bool = True
    small_set_upper_bound: int = 0
    large_set_lower_bound: int = 1
    medium_set_present_number: int = 0
    small_set_element_set_names: ElementSetNames | None = None
    medium_set_element_set_names: ElementSetNames | None = None
    preferred_record_syntax: str | None = None
    reference_id: bytes | None = None
    additional_search_info: Element | None = None   # the [203] element
    other_info: Element | None = None
    rpn_type: int = 1                   # 1 or 101 for an RPN query


@dataclass(frozen=True)
class NamePlusRecord:
    """One response record: the EXTERNAL (``record``; encoded bytes when built
    for sending, the decoded Element when received) or a surrogate diagnostic.
    A fragment (segmentation, not used by this gateway) arrives in ``fragment``
    as ([3..5] tag, element)."""
    database: str | None = None
    record: bytes | Element | None = None
    diagnostic: Diagnostic | None = None
    fragment: tuple[int, Element] | None = None


@dataclass(frozen=True)
class SearchResponse:
    result_count: int
    number_of_records_returned: int = 0
    next_result_set_position: int = 1
    search_status: bool = True
    result_set_status: int | None = None      # RESULT_SET_STATUS, only when search_status is False
    present_status: int | None = None         # PRESENT_STATUS, when records were asked for
    records: tuple[NamePlusRecord, ...] | None = None
    diagnostics: tuple[Diagnostic, ...] = ()  # non-surrogate: one -> [130], several -> [205]
    reference_id: bytes | None = None
    additional_search_info: Element | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class PresentRequest:
    result_set_id: str
    start_point: int = 1
    number_of_records: int = 1
    element_set_names: ElementSetNames | None = None
    preferred_record_syntax: str | None = None
    additional_ranges: tuple[tuple[int, int], ...] = ()
    comp_spec: Element | None = None          # recordComposition complex [209], as it came
    max_segment_count: int | None = None
    max_record_size: int | None = None
    max_segment_size: int | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class PresentResponse:
    number_of_records_returned: int = 0
    next_result_set_position: int = 0
    present_status: int = 0
    records: tuple[NamePlusRecord, ...] | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class DeleteResultSetRequest:
    delete_function: int = 0                  # 0 list, 1 all
    result_set_list: tuple[str, ...] = ()
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class DeleteResultSetResponse:
    delete_operation_status: int = 0          # DELETE_SET_STATUS
    delete_list_statuses: tuple[tuple[str, int], ...] | None = None
    number_not_deleted: int | None = None
    bulk_statuses: tuple[tuple[str, int], ...] | None = None
    delete_message: str | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class ScanRequest:
    term: APT                                 # attributes plus the start term
    database_names: tuple[str, ...] = ("Default",)
    attribute_set: str | None = None
    number_of_terms_requested: int = 20
    step_size: int | None = None
    preferred_position: int | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class ScanEntry:
    """A TermInfo: the term (text for general and characterString terms,
    int for numeric, the raw Element for other term types)."""
    term: str | int | Element
    display_term: str | None = None
    occurrences: int | None = None
    term_type: str = "general"


@dataclass(frozen=True)
class ScanResponse:
    scan_status: int = 0
    number_of_entries_returned: int = 0
    position_of_term: int | None = None
    entries: tuple[ScanEntry | Diagnostic, ...] | None = None
    diagnostics: tuple[Diagnostic, ...] = ()  # ListEntries.nonsurrogateDiagnostics
    step_size: int | None = None
    attribute_set: str | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class SortKeySpec:
    """One key of a Sort request.  The key is a sort field name, or Bib-1
    style sort attributes (``attributes``, rpn.AttributeElement tuple, with
    ``attribute_set``), or an element spec / database-specific keys kept as
    Elements.  ``relation`` 0 ascending, 1 descending (3, 4 by frequency);
    ``missing_value_action`` is "abort", "null", missing-value bytes or None."""
    sort_field: str | None = None
    attributes: tuple | None = None
    attribute_set: str | None = None
    element_spec: Element | None = None
    database_specific: Element | None = None
    relation: int = 0
    case_sensitivity: int = 1
    missing_value_action: str | bytes | None = None


@dataclass(frozen=True)
class SortRequest:
    input_result_set_names: tuple[str, ...]
    sorted_result_set_name: str
    sort_sequence: tuple[SortKeySpec, ...]
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class SortResponse:
    sort_status: int = 0
    result_set_status: int | None = None      # 1 empty, 2 interim, 3 unchanged, 4 none
    diagnostics: tuple[Diagnostic, ...] = ()
    result_count: int | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None
