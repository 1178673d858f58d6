"""One APDU in, one APDU out: ``encode_pdu`` and ``decode_pdu`` dispatch on the
APDU's type (or choice tag) to the codecs of ``association`` and
``operations_codec``; ``apdu_framer`` cuts APDUs out of a byte stream."""
from __future__ import annotations

from typing import Any, Callable, Union

from ..ber import CONTEXT, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ELEMENTS, BERError, Element, Framer, decode_all
from .association import Close, InitializeRequest, InitializeResponse, _dec_close, _dec_init, _enc_close, _enc_init
from .fields import (
    CLOSE,
    DELETE_RESULT_SET_REQUEST,
    DELETE_RESULT_SET_RESPONSE,
    INIT_REQUEST,
    INIT_RESPONSE,
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
    DeleteResultSetRequest,
    DeleteResultSetResponse,
    PresentRequest,
    PresentResponse,
    ScanRequest,
    ScanResponse,
    SearchRequest,
    SearchResponse,
    SortRequest,
    SortResponse,
)
from .operations_codec import (
    _dec_delete_request,
    _dec_delete_response,
    _dec_present_request,
    _dec_present_response,
    _dec_scan_request,
    _dec_scan_response,
    _dec_search_request,
    _dec_search_response,
    _dec_sort_request,
    _dec_sort_response,
    _enc_delete_request,
    _enc_delete_response,
    _enc_present_request,
    _enc_present_response,
    _enc_scan_request,
    _enc_scan_response,
    _enc_search_request,
    _enc_search_response,
    _enc_sort_request,
    _enc_sort_response,
)
from .search_fast import FAST_MAX_RPN_DEPTH, decode_search_request

_SEARCH_FIRST_OCTET = bytes([0xA0 | SEARCH_REQUEST])   # [22] context, constructed
_FAST_MIN_DEPTH = FAST_MAX_RPN_DEPTH + 16             # the BER nesting a fast-read request can reach, and more

PDU = Union[InitializeRequest, InitializeResponse, Close, SearchRequest, SearchResponse, PresentRequest,
            PresentResponse, DeleteResultSetRequest, DeleteResultSetResponse, ScanRequest, ScanResponse,
            SortRequest, SortResponse]


class UnsupportedAPDU(BERError):
    """A well-framed APDU of a kind this module does not decode (yet); ``tag``
    is its PDU choice tag, e.g. 22 for searchRequest."""

    def __init__(self, tag: int, offset: int = 0):
        super().__init__(f"APDU [{tag}] is not supported", offset)
        self.tag = tag


_ENCODERS: dict[type, Callable[[Any, str], bytes]] = {
    SearchRequest: _enc_search_request, SearchResponse: _enc_search_response,
    PresentRequest: _enc_present_request, PresentResponse: _enc_present_response,
    DeleteResultSetRequest: _enc_delete_request, DeleteResultSetResponse: _enc_delete_response,
    ScanRequest: _enc_scan_request, ScanResponse: _enc_scan_response,
    SortRequest: _enc_sort_request, SortResponse: _enc_sort_response,
}
_DECODERS: dict[int, Callable[[Element, str], PDU]] = {
    SEARCH_REQUEST: _dec_search_request, SEARCH_RESPONSE: _dec_search_response,
    PRESENT_REQUEST: _dec_present_request, PRESENT_RESPONSE: _dec_present_response,
    DELETE_RESULT_SET_REQUEST: _dec_delete_request, DELETE_RESULT_SET_RESPONSE: _dec_delete_response,
    SCAN_REQUEST: _dec_scan_request, SCAN_RESPONSE: _dec_scan_response,
    SORT_REQUEST: _dec_sort_request, SORT_RESPONSE: _dec_sort_response,
}


def encode_pdu(pdu: PDU, *, encoding: str = "utf-8") -> bytes:
    """The BER encoding of one APDU, ready to send."""
    if isinstance(pdu, (InitializeRequest, InitializeResponse)):
        return _enc_init(pdu, encoding)
    if isinstance(pdu, Close):
        return _enc_close(pdu, encoding)
    encoder = _ENCODERS.get(type(pdu))
    if encoder is not None:
        return encoder(pdu, encoding)
    raise TypeError(f"not an APDU: {pdu!r}")


def decode_pdu(data: bytes, *, encoding: str = "utf-8", max_length: int | None = None,
               max_depth: int = DEFAULT_MAX_DEPTH, max_elements: int = DEFAULT_MAX_ELEMENTS) -> PDU:
    """Decode one complete APDU (as cut by ``apdu_framer``).  Raises BERError for
    anything malformed, UnsupportedAPDU for a valid APDU tag not handled here.

    A SearchRequest of the usual shape is read straight from the bytes
    (``search_fast``); anything that module declines, the generic decoder reads
    (or refuses), so both give the same answer for every input."""
    if (data[:1] == _SEARCH_FIRST_OCTET and max_depth >= _FAST_MIN_DEPTH and max_elements * 2 >= len(data)
            and len(data) <= (max_length or len(data))):
        fast = decode_search_request(data, encoding)
        if fast is not None:
            return fast
    element = decode_all(data, max_length=max_length or max(len(data), 1), max_depth=max_depth,
                         max_elements=max_elements)
    if not (element.cls == CONTEXT and element.constructed and is_apdu_tag(element.tag)):
        raise BERError(f"not a Z39.50 APDU: {element.describe()}", element.offset)
    if element.tag in (INIT_REQUEST, INIT_RESPONSE):
        return _dec_init(element, encoding)
    if element.tag == CLOSE:
        return _dec_close(element, encoding)
    decoder = _DECODERS.get(element.tag)
    if decoder is not None:
        try:
            return decoder(element, encoding)
        except RecursionError:
            raise BERError("APDU nested too deeply", element.offset) from None
    raise UnsupportedAPDU(element.tag, element.offset)


def apdu_framer(max_length: int = 1024 * 1024, **limits: int) -> Framer:
    """A Framer that accepts only Z39.50 APDUs (context-class constructed tags
    20..50) at the top level, so a peer speaking something else is refused at
    its first bytes."""
    return Framer(max_length=max_length, accept=lambda cls, constructed, tag:
                  cls == CONTEXT and constructed and is_apdu_tag(tag), **limits)
