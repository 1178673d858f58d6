"""Bib-1 diagnostics (diagnostic set 1.2.840.10003.4.1) for the Z39.50 front end.

A request that cannot be carried out raises :class:`Bib1Diagnostic` with the
diagnostic's number (``code``) and its "additional information" (``addinfo``,
whose content each entry of the Bib-1 list prescribes: the unsupported
attribute value, the database name, ...).  The server turns it into a
DefaultDiagFormat record; nothing here knows about BER or sockets.

:data:`MESSAGES` gives a short description of every Bib-1 diagnostic this
project can produce (and of the neighbouring ones a peer may send us), written
for this project after the Bib-1 diagnostic list of the Z39.50 Maintenance
Agency.

:func:`from_query_error` converts an SRU diagnostic carried by
:class:`indexers.query_model.QueryError` (raised by the CQL parser and the
index backends) into the Bib-1 diagnostic a Z39.50 client should see.  The
table :data:`SRU_TO_BIB1` follows the correspondence between the two lists that
the SRU diagnostics list and common toolkits use, with these choices where the
correspondence is one-to-many or loose:

* SRU 27 (empty term) -> 125 *malformed search term* (the term-level
  diagnostic; some toolkits answer 108 *malformed query*).
* SRU 28 (masking character not supported): the backends raise it for two
  reasons.  A masked word that expands to too many index words (the message
  says "too many" / "more than") becomes 7 *too many truncated words*; a mask
  the index cannot honour (``*`` inside a CJK sequence) becomes 120
  *unsupported truncation attribute*.
* SRU 39 (proximity not supported; our backends raise it for operands that are
  not two simple clauses on one text index) -> 201 *proximity not supported with
  this attribute combination*, not 129 (which is about result sets as operands).
* SRU 80 (sort not supported: the key has no sort column) and 82 (unsupported
  sort sequence) -> 207 *cannot sort according to sequence*.
* SRU 66 (unknown schema) -> 239 *record syntax not supported*; 67 (record not
  available in this schema) -> 238 *record not available in requested syntax*.
* Codes without a counterpart fall back to 100 *unspecified error*, with the
  SRU number and details in addinfo (never 1, which would claim a permanent
  system failure for what is usually a bad request).
"""
from __future__ import annotations

from indexers.query_model import QueryError

__all__ = [
    "BIB1_DIAGNOSTIC_SET", "MESSAGES", "SRU_TO_BIB1", "BIB1_TO_SRU", "Bib1Diagnostic", "message",
    "from_query_error", "to_query_error",
]

BIB1_DIAGNOSTIC_SET = "1.2.840.10003.4.1"

# Short descriptions, in this project's wording, keyed by Bib-1 diagnostic number.
MESSAGES: dict[int, str] = {
    1: "Permanent system error",
    2: "Temporary system error",
    3: "Unsupported search",
    4: "Search terms are only stop words",
    5: "Too many words in the search",
    6: "Too many boolean operators in the query",
    7: "Too many truncated words",
    8: "Too many incomplete subfields",
    9: "Truncated words are too short",
    10: "Invalid format of a record number used as search term",
    11: "Too many characters in the search statement",
    12: "Too many records retrieved",
    13: "Present request out of range",
    14: "System error while presenting records",
    15: "Record may not be sent to another system",
    16: "Record larger than the preferred message size",
    17: "Record larger than the exceptional record size",
    18: "Result set not supported as a search term",
    19: "Only a single result set is supported as a search term",
    20: "Only ANDing of a single result set is supported as a search term",
    21: "Result set exists and the replace indicator is off",
    22: "Naming of result sets not supported",
    23: "This combination of databases is not supported",
    24: "Element set names not supported",
    25: "Element set name not valid for this database",
    26: "Only one element set name is supported",
    27: "Result set no longer exists: deleted by the server",
    28: "Result set is in use",
    29: "One of the databases is locked",
    30: "Result set does not exist",
    31: "Resources exhausted: no results available",
    32: "Resources exhausted: unpredictable partial results available",
    33: "Resources exhausted: valid subset of results available",
    100: "Unspecified error",
    101: "Access control failure",
    102: "Security challenge required but could not be issued: request terminated",
    103: "Security challenge required but could not be issued: record not included",
    104: "Security challenge failed: record not included",
    105: "Terminated at the origin's request (negative continue response)",
    106: "No abstract syntax agreed for this record",
    107: "Query type not supported",
    108: "Malformed query",
    109: "Database unavailable",
    110: "Operator not supported",
    111: "Too many databases in the request",
    112: "Too many result sets created",
    113: "Unsupported attribute type",
    114: "Unsupported use attribute",
    115: "Unsupported term value for the use attribute",
    116: "Use attribute required but not supplied",
    117: "Unsupported relation attribute",
    118: "Unsupported structure attribute",
    119: "Unsupported position attribute",
    120: "Unsupported truncation attribute",
    121: "Unsupported attribute set",
    122: "Unsupported completeness attribute",
    123: "Unsupported attribute combination",
    124: "Unsupported coded value for the term",
    125: "Malformed search term",
    126: "Term value not allowed for this attribute",
    127: "Unparsable format for an un-normalized value",
    128: "Illegal result set name",
    129: "Proximity search of result sets not supported",
    130: "Illegal result set in a proximity search",
    131: "Unsupported proximity relation",
    132: "Unsupported proximity unit",
    201: "Proximity not supported with this attribute combination",
    202: "Unsupported proximity distance",
    203: "Ordered flag not supported for proximity",
    205: "Scan: only step size zero supported",
    206: "Scan: this step size is not supported",
    207: "Cannot sort according to this sort key",
    208: "Sort: no result set name supplied",
    209: "Generic sort not supported (only database-specific sort)",
    210: "Database-specific sort not supported",
    211: "Too many sort keys",
    212: "Duplicate sort keys",
    213: "Unsupported missing data action",
    214: "Illegal sort relation",
    215: "Illegal case value",
    216: "Illegal missing data action",
    217: "Segmentation: cannot guarantee records will fit in the segments",
    218: "ES: package name already in use",
    219: "ES: no such package",
    220: "ES: quota exceeded",
    221: "ES: extended service type not supported",
    222: "ES: permission denied (id not authorized)",
    223: "ES: permission denied (cannot modify or delete)",
    224: "ES: immediate execution failed",
    225: "ES: immediate execution not supported for this service",
    226: "ES: immediate execution not supported for these parameters",
    227: "No data available in the requested record syntax",
    228: "Scan: malformed scan",
    229: "Term type not supported",
    230: "Sort: too many input result sets",
    231: "Sort: incompatible record formats",
    232: "Scan: term list not supported",
    233: "Scan: unsupported position in response",
    234: "Too many index terms processed",
    235: "Database does not exist",
    236: "Access to this database denied",
    237: "Sort: illegal sort request",
    238: "Record not available in the requested syntax",
    239: "Record syntax not supported",
    240: "Scan: resources exhausted looking for matching terms",
    241: "Scan: beginning or end of the term list",
    242: "Segmentation: maximum segment size too small for the record",
    243: "Present: additional ranges not supported",
    244: "Present: comp-spec not supported",
    245: "Type-1 query: restriction operand (resultAttr) not supported",
    246: "Type-1 query: complex attribute value not supported",
    247: "Type-1 query: attribute set inside an attribute element not supported",
    1001: "Malformed APDU",
    1005: "Response records in the search response not supported",
    1024: "Unsupported attribute",
    1025: "Service not supported for this database",
    1028: "Record deleted",
    1029: "Scan: too many terms requested",
    1051: "Scan: attribute set id required but not supplied",
    1056: "Attribute not supported for this database",
    1069: "No syntaxes available for this request",
    1072: "Query term has characters that cannot be converted to the server's character set",
}

# SRU diagnostic (info:srw/diagnostic/1/N) -> Bib-1 diagnostic.  See the module
# docstring for the choices; 28 is handled in from_query_error.
SRU_TO_BIB1: dict[int, int] = {
    1: 1,       # general system error
    2: 2,       # system temporarily unavailable
    3: 101,     # authentication error
    4: 3,       # unsupported operation
    10: 108,    # query syntax error
    12: 11,     # too many characters in query
    13: 108,    # invalid use of parentheses
    14: 108,    # invalid use of quotes
    15: 121,    # unsupported context set
    16: 114,    # unsupported index
    17: 123,    # unsupported combination of index and context set
    18: 123,    # unsupported combination of indexes
    19: 117,    # unsupported relation
    20: 117,    # unsupported relation modifier
    21: 123,    # unsupported combination of relation modifiers
    22: 123,    # unsupported combination of relation and index
    23: 11,     # too many characters in term
    24: 126,    # unsupported combination of relation and term
    25: 125,    # special characters not quoted in term
    26: 125,    # non special character escaped in term
    27: 125,    # empty term unsupported
    29: 9,      # masked words too short
    30: 7,      # too many masking characters in term
    31: 119,    # anchoring character not supported
    32: 119,    # anchoring character in unsupported position
    33: 201,    # proximity/adjacency with masking characters
    34: 201,    # proximity/adjacency with anchoring characters
    35: 4,      # term contains only stopwords
    36: 126,    # term in invalid format for index or relation
    37: 110,    # unsupported boolean operator
    38: 6,      # too many boolean operators
    39: 201,    # proximity not supported (for these operands)
    40: 131,    # unsupported proximity relation
    41: 202,    # unsupported proximity distance
    42: 132,    # unsupported proximity unit
    43: 203,    # unsupported proximity ordering
    44: 201,    # unsupported combination of proximity modifiers
    46: 110,    # unsupported boolean modifier
    47: 100,    # cannot process query; reason unknown
    48: 3,      # query feature unsupported
    50: 18,     # result sets not supported
    51: 30,     # result set does not exist
    52: 28,     # result set temporarily unavailable
    55: 19,     # combination of result sets with search terms not supported
    58: 32,     # result set created with unpredictable partial results
    59: 33,     # result set created with valid partial results
    60: 12,     # result set not created: too many matching records
    61: 13,     # first record position out of range
    64: 14,     # record temporarily unavailable
    65: 14,     # record does not exist
    66: 239,    # unknown schema for retrieval
    67: 238,    # record not available in this schema
    68: 15,     # not authorised to send record
    69: 15,     # not authorised to send record in this schema
    70: 17,     # record too large to send
    80: 207,    # sort not supported (for this key)
    82: 207,    # unsupported sort sequence
    83: 230,    # too many records to sort
    84: 211,    # too many sort keys
    85: 212,    # duplicate sort keys
    86: 231,    # cannot sort: incompatible record formats
    90: 214,    # unsupported direction
    91: 215,    # unsupported case
    92: 213,    # unsupported missing value action
    120: 233,   # response position out of range (scan)
    121: 1029,  # too many terms requested (scan)
    235: 235,   # database does not exist
}

# Bib-1 -> SRU, for a type-1 query that reaches the gateway over SRU (x-pquery,
# queryType=pqf): the diagnostics the Bib-1 mapping (z3950/rpn/bib1.py) raises.
# SRU has no attributes; an attribute the server cannot honour is said as the
# query feature it stands for (index, relation, masking, anchoring, context
# set), or as 48 *query feature unsupported*.  Others: 47 with the Bib-1 number.
BIB1_TO_SRU: dict[int, int] = {
    1: 1, 2: 2,
    6: 38,      # too many boolean operators
    7: 30,      # too many truncated words -> too many masking characters
    11: 12,     # query too long
    30: 51,     # result set does not exist
    108: 10,    # malformed query -> query syntax error
    109: 235, 235: 235,
    110: 37,    # unsupported operator
    113: 48,    # unsupported attribute type
    114: 16,    # unsupported use attribute -> unsupported index
    116: 16,    # use attribute required but not supplied (a sort key)
    117: 19,    # unsupported relation attribute
    118: 48,    # unsupported structure attribute
    119: 32,    # unsupported position attribute -> anchoring in unsupported position
    120: 28,    # unsupported truncation attribute -> masking character not supported
    121: 15,    # unsupported attribute set -> unsupported context set
    122: 48,    # unsupported completeness attribute
    123: 48,    # unsupported attribute combination
    125: 27,    # malformed (empty) search term
    126: 36,    # non-special term in invalid format
    128: 51,    # illegal result set name
    129: 39,    # proximity with result sets
    131: 40,    # unsupported proximity relation
    132: 42,    # unsupported proximity unit
    201: 39,    # proximity not supported with this attribute combination
    202: 41,    # unsupported proximity distance
    207: 80,    # cannot sort according to sequence
    229: 36,    # unsupported term type
    237: 82,    # illegal sort relation (embedded sort keys)
    245: 48,    # type-101 result attributes
    246: 48,    # complex attribute values
}
_CANNOT_PROCESS = 47

_TOO_MANY_TRUNCATED = 7
_UNSUPPORTED_TRUNCATION = 120
_UNSPECIFIED = 100


def message(code: int) -> str:
    """The description of a Bib-1 diagnostic (a generic one for unknown numbers)."""
    return MESSAGES.get(code, f"Bib-1 diagnostic {code}")


class Bib1Diagnostic(Exception):
    """A Bib-1 diagnostic: ``code`` (int), ``addinfo`` (str, sent to the client as
    the diagnostic's additional information) and a human-readable ``message``."""

    diagnostic_set = BIB1_DIAGNOSTIC_SET

    def __init__(self, code: int, addinfo: str | None = "", message: str = ""):
        self.code = int(code)
        self.addinfo = "" if addinfo is None else str(addinfo)
        self.message = message or MESSAGES.get(self.code, f"Bib-1 diagnostic {self.code}")
        text = f"Bib-1 diagnostic {self.code}: {self.message}"
        super().__init__(f"{text} ({self.addinfo})" if self.addinfo else text)


def from_query_error(err: QueryError) -> Bib1Diagnostic:
    """The Bib-1 diagnostic for a QueryError (SRU diagnostic number ``err.code``,
    or the Bib-1 number the error names itself, ``err.bib1``).  addinfo is the
    SRU diagnostic's details (else its message)."""
    sru = int(err.code)
    details = err.details or err.message or ""
    bib1 = getattr(err, "bib1", None)
    if bib1 is not None:
        return Bib1Diagnostic(bib1, details)
    if sru == 28:
        text = (err.message or "").lower()
        code = _TOO_MANY_TRUNCATED if ("too many" in text or "more than" in text) else _UNSUPPORTED_TRUNCATION
        return Bib1Diagnostic(code, details)
    mapped = SRU_TO_BIB1.get(sru)
    if mapped is None:
        info = f"SRU diagnostic {sru}" + (f": {details}" if details else "")
        return Bib1Diagnostic(_UNSPECIFIED, info)
    return Bib1Diagnostic(mapped, details)


def to_query_error(diag: Bib1Diagnostic) -> QueryError:
    """The SRU diagnostic (a QueryError) for a Bib-1 diagnostic of the type-1
    query mapping, keeping the Bib-1 number (``bib1``) and its addinfo."""
    code = BIB1_TO_SRU.get(diag.code)
    details = diag.addinfo
    if code is None:
        code, details = _CANNOT_PROCESS, f"Bib-1 diagnostic {diag.code}" + (f": {diag.addinfo}" if diag.addinfo else "")
    return QueryError(code, details, diag.message, bib1=diag.code)
