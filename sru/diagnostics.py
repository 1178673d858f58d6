"""SRU diagnostics (the list at info:srw/diagnostic/1/N), as plain objects.

A *fatal* problem with a request is raised as :class:`SRUDiagnosticError`; the
front end turns it into a whole response with
:func:`sru.protocol.diagnostic_response`.  A *non-fatal* one (a record that cannot
be rendered, a first record position beyond the hit count, a sort specification
given twice) is a :class:`Diagnostic` placed in a normal response.

Nothing here knows about HTTP or XML.
"""
from __future__ import annotations

from dataclasses import dataclass

DIAGNOSTIC_URI_PREFIX = "info:srw/diagnostic/1/"

# Numbers used by this project (names follow the SRU diagnostics list).
GENERAL_SYSTEM_ERROR = 1
SYSTEM_TEMPORARILY_UNAVAILABLE = 2
UNSUPPORTED_OPERATION = 4
UNSUPPORTED_VERSION = 5
UNSUPPORTED_PARAMETER_VALUE = 6
MANDATORY_PARAMETER_NOT_SUPPLIED = 7
UNSUPPORTED_PARAMETER = 8
QUERY_SYNTAX_ERROR = 10
UNSUPPORTED_INDEX = 16
FIRST_RECORD_POSITION_OUT_OF_RANGE = 61
RECORD_TEMPORARILY_UNAVAILABLE = 64
RECORD_DOES_NOT_EXIST = 65
UNKNOWN_SCHEMA_FOR_RETRIEVAL = 66
RECORD_NOT_AVAILABLE_IN_THIS_SCHEMA = 67
UNSUPPORTED_RECORD_PACKING = 71
XPATH_RETRIEVAL_UNSUPPORTED = 72
SORT_NOT_SUPPORTED = 80
UNSUPPORTED_PATH_FOR_SORT = 88
UNSUPPORTED_DIRECTION = 90
UNSUPPORTED_MISSING_VALUE_ACTION = 92
SORT_BOTH_QUERY_PREVAILS = 94
UNSUPPORTED_STYLESHEET = 111
RESPONSE_POSITION_OUT_OF_RANGE = 120
DATABASE_DOES_NOT_EXIST = 235

# Short descriptions, in the project's own words, keyed by diagnostic number.
MESSAGES: dict[int, str] = {
    1: "General system error",
    2: "System temporarily unavailable",
    3: "Authentication error",
    4: "Unsupported operation",
    5: "Unsupported version",
    6: "Unsupported parameter value",
    7: "Mandatory parameter not supplied",
    8: "Unsupported parameter",
    10: "Query syntax error",
    12: "Too many characters in query",
    13: "Invalid or unsupported use of parentheses",
    14: "Invalid or unsupported use of quotes",
    15: "Unsupported context set",
    16: "Unsupported index",
    18: "Unsupported combination of indexes",
    19: "Unsupported relation",
    20: "Unsupported relation modifier",
    21: "Unsupported combination of relation modifiers",
    22: "Unsupported combination of relation and index",
    23: "Too many characters in term",
    24: "Unsupported combination of relation and term",
    26: "Non special character escaped in term",
    27: "Empty term unsupported",
    28: "Masking character not supported",
    29: "Masked words too short",
    30: "Too many masking characters in term",
    31: "Anchoring character not supported",
    32: "Anchoring character in unsupported position",
    33: "Combination of proximity/adjacency and masking characters not supported",
    34: "Combination of proximity/adjacency and anchoring characters not supported",
    35: "Term contains only stopwords",
    36: "Term in invalid format for index or relation",
    37: "Unsupported boolean operator",
    38: "Too many boolean operators in query",
    39: "Proximity not supported",
    40: "Unsupported proximity relation",
    41: "Unsupported proximity distance",
    42: "Unsupported proximity unit",
    43: "Unsupported proximity ordering",
    44: "Unsupported combination of proximity modifiers",
    46: "Unsupported boolean modifier",
    47: "Cannot process query; reason unknown",
    48: "Query feature unsupported",
    49: "Masking character in unsupported position",
    50: "Result sets not supported",
    51: "Result set does not exist",
    52: "Result set temporarily unavailable",
    53: "Result sets only supported for retrieval",
    55: "Combination of result sets with search terms not supported",
    58: "Result set created with unpredictable partial results available",
    59: "Result set created with valid partial results available",
    60: "Result set not created: too many matching records",
    61: "First record position out of range",
    64: "Record temporarily unavailable",
    65: "Record does not exist",
    66: "Unknown schema for retrieval",
    67: "Record not available in this schema",
    68: "Not authorised to send record",
    69: "Not authorised to send record in this schema",
    70: "Record too large to send",
    71: "Unsupported record packing",
    72: "XPath retrieval unsupported",
    73: "XPath expression contains unsupported feature",
    74: "Unable to evaluate XPath expression",
    80: "Sort not supported",
    82: "Unsupported sort sequence",
    83: "Too many records to sort",
    84: "Too many sort keys to sort",
    86: "Cannot sort: incompatible record formats",
    87: "Unsupported schema for sort",
    88: "Unsupported path for sort",
    89: "Path unsupported for schema",
    90: "Unsupported direction",
    91: "Unsupported case",
    92: "Unsupported missing value action",
    93: "Sort ended due to missing value",
    94: "Sort spec included both in query and protocol: query prevails",
    95: "Sort spec included both in query and protocol: protocol prevails",
    96: "Sort spec included both in query and protocol: error",
    101: "Explain request type not supported",
    102: "Explain record temporarily unavailable",
    110: "Stylesheets not supported",
    111: "Unsupported stylesheet",
    120: "Response position out of range",
    121: "Too many terms requested",
    235: "Database does not exist",
}


def diagnostic_uri(code: int) -> str:
    return f"{DIAGNOSTIC_URI_PREFIX}{code}"


def default_message(code: int) -> str:
    return MESSAGES.get(code, f"Diagnostic {code}")


@dataclass(frozen=True)
class Diagnostic:
    """One SRU diagnostic: ``uri`` is info:srw/diagnostic/1/<code>; ``details``
    follows the list's "details format" (e.g. the name of a parameter);
    ``message`` is human-readable text (defaults to the list's description)."""

    code: int
    details: str = ""
    message: str = ""

    @property
    def uri(self) -> str:
        return diagnostic_uri(self.code)

    @property
    def text(self) -> str:
        return self.message or default_message(self.code)


class SRUDiagnosticError(Exception):
    """A request that cannot be answered normally.

    ``version`` is the SRU version the diagnostic response must be written in
    (None: the version of the request, or 2.0 when unknown); ``operation`` is the
    operation the request was for, when known ("searchRetrieve", "scan",
    "explain"), so the front end knows which response to build.
    """

    def __init__(
        self,
        code: int,
        details: str = "",
        message: str | None = None,
        version: str | None = None,
        operation: str | None = None,
    ):
        self.code = code
        self.details = details
        self.message = message or default_message(code)
        self.version = version
        self.operation = operation
        super().__init__(f"info:srw/diagnostic/1/{code} {self.message}: {details}")

    @property
    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.code, self.details, self.message)


def from_query_error(err, *, version: str | None = None,
                     operation: str | None = None) -> SRUDiagnosticError:
    """Wrap an indexers.query_model.QueryError (or anything with .code,
    .details, .message) as an SRUDiagnosticError."""
    code = getattr(err, "code", GENERAL_SYSTEM_ERROR)
    details = getattr(err, "details", "") or ""
    message = getattr(err, "message", "") or ""
    # QueryError defaults its message to the details; prefer the list's text then.
    if message == details:
        message = ""
    return SRUDiagnosticError(code, details, message or None, version, operation)
