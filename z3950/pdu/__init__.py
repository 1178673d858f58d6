"""Z39.50-2003 APDUs on top of ``z3950.ber``: Init, Search, Present,
DeleteResultSet, Scan, Sort (requests and responses) and Close.

Follows the ASN.1 module Z39-50-APDU-1995 in ANSI/NISO Z39.50-2003:
the module's default tagging is EXPLICIT, so a tag written without IMPLICIT wraps
the inner encoding (``idAuthentication [7]``, ``userInformationField [11]``).

    PDU ::= CHOICE { initRequest [20] IMPLICIT InitializeRequest,
                     initResponse [21] IMPLICIT InitializeResponse, ...
                     close [48] IMPLICIT Close, ... }

Character strings (InternationalString ::= GeneralString) are read and written
as UTF-8 unless another ``encoding`` is given.  Parts this layer does not model
(userInformationField, otherInfo, resourceReport, idAuthentication 'other') are
kept as raw ``Element`` trees and re-encoded as they came.

The package is split by the seams of the protocol (it re-exports every public name,
so ``from z3950 import pdu`` and ``pdu.SearchRequest`` work as before):

* :mod:`z3950.pdu.fields` -- the APDU tags and the SEQUENCE walker every codec shares;
* :mod:`z3950.pdu.association` -- Init and Close, IdAuthentication, the Options bits;
* :mod:`z3950.pdu.operations` -- Search, Present, DeleteResultSet, Scan, Sort as dataclasses;
* :mod:`z3950.pdu.operations_codec` -- their BER;
* :mod:`z3950.pdu.apdu` -- ``encode_pdu``/``decode_pdu`` (dispatch on the APDU) and ``apdu_framer``.
"""
from __future__ import annotations

from .apdu import PDU, UnsupportedAPDU, apdu_framer, decode_pdu, encode_pdu
from .association import (
                          CLOSE_REASONS,
                          OPTION_BITS,
                          Close,
                          IdAnonymous,
                          IdAuthentication,
                          IdOpen,
                          IdOther,
                          IdPass,
                          InitializeRequest,
                          InitializeResponse,
)
from .fields import (
                          CLOSE,
                          DELETE_RESULT_SET_REQUEST,
                          DELETE_RESULT_SET_RESPONSE,
                          FIRST_APDU_TAG,
                          INIT_REQUEST,
                          INIT_RESPONSE,
                          LAST_APDU_TAG,
                          PRESENT_REQUEST,
                          PRESENT_RESPONSE,
                          SCAN_REQUEST,
                          SCAN_RESPONSE,
                          SEARCH_REQUEST,
                          SEARCH_RESPONSE,
                          SORT_REQUEST,
                          SORT_RESPONSE,
                          is_apdu_tag,
)
from .operations import (
                          BIB1_DIAGNOSTICS,
                          CQL_QUERY_OID,
                          DELETE_SET_STATUS,
                          PRESENT_STATUS,
                          RESULT_SET_STATUS,
                          SCAN_STATUS,
                          SORT_STATUS,
                          CQLQuery,
                          DeleteResultSetRequest,
                          DeleteResultSetResponse,
                          Diagnostic,
                          ElementSetNames,
                          NamePlusRecord,
                          OtherQuery,
                          PresentRequest,
                          PresentResponse,
                          ScanEntry,
                          ScanRequest,
                          ScanResponse,
                          SearchRequest,
                          SearchResponse,
                          SortKeySpec,
                          SortRequest,
                          SortResponse,
)
from .operations_codec import decode_diagnostic, enc_diagnostic

__all__ = [
    "INIT_REQUEST", "INIT_RESPONSE", "SEARCH_REQUEST", "SEARCH_RESPONSE", "PRESENT_REQUEST",
    "PRESENT_RESPONSE", "DELETE_RESULT_SET_REQUEST", "DELETE_RESULT_SET_RESPONSE", "SCAN_REQUEST",
    "SCAN_RESPONSE", "SORT_REQUEST", "SORT_RESPONSE", "CLOSE", "OPTION_BITS", "CLOSE_REASONS",
    "BIB1_DIAGNOSTICS", "CQL_QUERY_OID", "PRESENT_STATUS", "SCAN_STATUS", "SORT_STATUS", "DELETE_SET_STATUS",
    "IdOpen", "IdPass", "IdAnonymous", "IdOther", "IdAuthentication",
    "InitializeRequest", "InitializeResponse", "Close", "Diagnostic", "CQLQuery", "OtherQuery",
    "SearchRequest", "SearchResponse", "NamePlusRecord", "PresentRequest", "PresentResponse",
    "DeleteResultSetRequest", "DeleteResultSetResponse", "ScanRequest", "ScanResponse", "ScanEntry",
    "SortKeySpec", "SortRequest", "SortResponse", "PDU", "UnsupportedAPDU",
    "encode_pdu", "decode_pdu", "decode_diagnostic", "enc_diagnostic", "apdu_framer", "is_apdu_tag",
    "FIRST_APDU_TAG", "LAST_APDU_TAG", "RESULT_SET_STATUS", "ElementSetNames",
]
