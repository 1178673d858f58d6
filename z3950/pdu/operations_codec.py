"""BER encoding and decoding of the Search, Present, DeleteResultSet, Scan and
Sort APDUs (the ASN.1 is quoted in ``operations``)."""
from __future__ import annotations

from ..ber import (
    CONTEXT,
    EXTERNAL,
    GENERAL_STRING,
    INTEGER,
    OBJECT_IDENTIFIER,
    SEQUENCE,
    UNIVERSAL,
    VISIBLE_STRING,
    BERError,
    Element,
    enc_bool,
    enc_explicit,
    enc_int,
    enc_null,
    enc_octets,
    enc_oid,
    enc_seq,
    enc_str,
    enc_tlv,
    encode,
)
from .fields import (
    _OTHER_INFO,
    _REFERENCE_ID,
    DELETE_RESULT_SET_REQUEST,
    DELETE_RESULT_SET_RESPONSE,
    PRESENT_REQUEST,
    PRESENT_RESPONSE,
    SCAN_REQUEST,
    SCAN_RESPONSE,
    SEARCH_REQUEST,
    SEARCH_RESPONSE,
    SORT_REQUEST,
    SORT_RESPONSE,
    _explicit_inner,
    _Fields,
    _opt_str,
    _opt_text,
)
from .operations import (
    _ADDITIONAL_SEARCH_INFO,
    _DATABASE_NAME,
    _ELEMENT_SET_NAME,
    _MULTIPLE_NON_SUR_DIAGNOSTICS,
    _NON_SURROGATE_DIAGNOSTIC,
    _PREFERRED_RECORD_SYNTAX,
    _PRESENT_STATUS,
    _RESPONSE_RECORDS,
    _RESULT_SET_ID,
    CQL_QUERY_OID,
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

# -- encoding helpers

def _ref(ref: bytes | None) -> bytes:
    return b"" if ref is None else enc_octets(_REFERENCE_ID, ref)


def _raw(element: Element | None) -> bytes:
    return b"" if element is None else encode(element)


def _opt_int(tag: int, value: int | None) -> bytes:
    return b"" if value is None else enc_int(tag, value)


def _enc_db_names(tag: int, names: tuple[str, ...], encoding: str) -> bytes:
    return enc_seq(tag, [enc_str(_DATABASE_NAME, n, CONTEXT, encoding) for n in names])


def _enc_esn(names: ElementSetNames, encoding: str) -> bytes:
    """ElementSetNames (a CHOICE, so callers wrap it in their explicit tag)."""
    if isinstance(names, str):
        return enc_str(0, names, CONTEXT, encoding)
    return enc_seq(1, [enc_seq(SEQUENCE, [enc_str(_DATABASE_NAME, db, CONTEXT, encoding),
                                          enc_str(_ELEMENT_SET_NAME, esn, CONTEXT, encoding)], UNIVERSAL)
                       for db, esn in names])


def enc_diagnostic(diag: Diagnostic, encoding: str = "utf-8") -> bytes:
    """A DiagRec: DefaultDiagFormat as a universal SEQUENCE (v3 addinfo), or the EXTERNAL."""
    if diag.external is not None:
        return encode(diag.external)
    return enc_seq(SEQUENCE, _default_diag_parts(diag, encoding), UNIVERSAL)


def _default_diag_parts(diag: Diagnostic, encoding: str) -> list[bytes]:
    return [enc_oid(OBJECT_IDENTIFIER, diag.diagnostic_set, UNIVERSAL), enc_int(INTEGER, diag.condition, UNIVERSAL),
            enc_str(GENERAL_STRING, diag.addinfo or "", UNIVERSAL, encoding)]


def _enc_records(records: tuple[NamePlusRecord, ...] | None, diagnostics: tuple[Diagnostic, ...],
                 encoding: str) -> bytes:
    if records is not None and diagnostics:
        raise ValueError("a response carries records or non-surrogate diagnostics, not both")
    if diagnostics:
        if len(diagnostics) == 1 and diagnostics[0].external is None:
            return enc_seq(_NON_SURROGATE_DIAGNOSTIC, _default_diag_parts(diagnostics[0], encoding))
        return enc_seq(_MULTIPLE_NON_SUR_DIAGNOSTICS, [enc_diagnostic(d, encoding) for d in diagnostics])
    if records is None:
        return b""
    parts = []
    names: dict[str | None, bytes] = {}          # the database name, encoded once per response
    for npr in records:
        if npr.diagnostic is not None:
            inner = enc_explicit(2, enc_diagnostic(npr.diagnostic, encoding))
        elif npr.record is not None:
            ext = npr.record if isinstance(npr.record, (bytes, bytearray)) else encode(npr.record)
            inner = enc_explicit(1, ext)
        elif npr.fragment is not None:
            inner = enc_explicit(npr.fragment[0], encode(npr.fragment[1]))
        else:
            raise ValueError("NamePlusRecord without a record or a diagnostic")
        name = names.get(npr.database)
        if name is None:
            name = names[npr.database] = _opt_str(0, npr.database, encoding)
        parts.append(enc_seq(SEQUENCE, [name, enc_explicit(1, inner)], UNIVERSAL))
    return enc_seq(_RESPONSE_RECORDS, parts)


def _enc_query(query, rpn_type: int, encoding: str) -> bytes:
    from .. import rpn
    if isinstance(query, rpn.RPNQuery):
        return rpn.encode_rpn_query(query, tag=rpn_type, encoding=encoding)
    if isinstance(query, CQLQuery):   # [104] IMPLICIT EXTERNAL, CQL text as single-ASN1-type
        return enc_seq(104, [enc_oid(OBJECT_IDENTIFIER, CQL_QUERY_OID, UNIVERSAL),
                             enc_explicit(0, enc_str(GENERAL_STRING, query.text, UNIVERSAL, encoding))])
    if isinstance(query, OtherQuery):
        return encode(query.element)
    raise TypeError(f"not a query: {query!r}")


def _enc_search_request(pdu: SearchRequest, encoding: str) -> bytes:
    return enc_seq(SEARCH_REQUEST, [
        _ref(pdu.reference_id),
        enc_int(13, pdu.small_set_upper_bound), enc_int(14, pdu.large_set_lower_bound),
        enc_int(15, pdu.medium_set_present_number), enc_bool(16, pdu.replace_indicator),
        enc_str(17, pdu.result_set_name, CONTEXT, encoding),
        _enc_db_names(18, pdu.database_names, encoding),
        b"" if pdu.small_set_element_set_names is None
        else enc_explicit(100, _enc_esn(pdu.small_set_element_set_names, encoding)),
        b"" if pdu.medium_set_element_set_names is None
        else enc_explicit(101, _enc_esn(pdu.medium_set_element_set_names, encoding)),
        b"" if pdu.preferred_record_syntax is None else enc_oid(_PREFERRED_RECORD_SYNTAX, pdu.preferred_record_syntax),
        enc_explicit(21, _enc_query(pdu.query, pdu.rpn_type, encoding)),
        _raw(pdu.additional_search_info), _raw(pdu.other_info),
    ])


def _enc_search_response(pdu: SearchResponse, encoding: str) -> bytes:
    if (pdu.records is None and not pdu.diagnostics and pdu.result_set_status is None
            and pdu.present_status is None and pdu.additional_search_info is None and pdu.other_info is None):
        return _enc_plain_search_response(pdu)
    return _enc_search_response_generic(pdu, encoding)


def _short_int(head: int, n: int) -> bytes:
    """``[CONTEXT head] IMPLICIT INTEGER`` (a one-octet primitive identifier): enc_int's octets."""
    c = n.to_bytes((n + (n < 0)).bit_length() // 8 + 1, "big", signed=True)
    if len(c) > 127:                        # (not a count anyone has: the long length form)
        return enc_int(head & 0x1F, n)
    return bytes((head, len(c))) + c


def _enc_plain_search_response(pdu: SearchResponse) -> bytes:
    """The usual searchResponse -- a count, nothing piggy-backed, no diagnostic -- in one
    pass: the same octets as the generic encoder (tests/test_z3950_pdu.py compares them),
    without a call per field.  Identifiers: [23] 0x97, [24] 0x98, [25] 0x99, [22] 0x96,
    the APDU [23] constructed 0xB7."""
    ref = pdu.reference_id
    body = b"".join((
        b"" if ref is None else enc_octets(_REFERENCE_ID, ref),
        _short_int(0x97, pdu.result_count), _short_int(0x98, pdu.number_of_records_returned),
        _short_int(0x99, pdu.next_result_set_position),
        b"\x96\x01\xff" if pdu.search_status else b"\x96\x01\x00"))
    return enc_tlv(CONTEXT, True, SEARCH_RESPONSE, body)


def _enc_search_response_generic(pdu: SearchResponse, encoding: str) -> bytes:
    return enc_seq(SEARCH_RESPONSE, [
        _ref(pdu.reference_id),
        enc_int(23, pdu.result_count), enc_int(24, pdu.number_of_records_returned),
        enc_int(25, pdu.next_result_set_position), enc_bool(22, pdu.search_status),
        _opt_int(26, pdu.result_set_status), _opt_int(_PRESENT_STATUS, pdu.present_status),
        _enc_records(pdu.records, pdu.diagnostics, encoding),
        _raw(pdu.additional_search_info), _raw(pdu.other_info),
    ])


def _enc_present_request(pdu: PresentRequest, encoding: str) -> bytes:
    ranges = b"" if not pdu.additional_ranges else enc_seq(212, [
        enc_seq(SEQUENCE, [enc_int(1, start), enc_int(2, count)], UNIVERSAL) for start, count in pdu.additional_ranges])
    if pdu.comp_spec is not None:
        composition = encode(pdu.comp_spec)
    elif pdu.element_set_names is not None:
        composition = enc_explicit(19, _enc_esn(pdu.element_set_names, encoding))
    else:
        composition = b""
    return enc_seq(PRESENT_REQUEST, [
        _ref(pdu.reference_id), enc_str(_RESULT_SET_ID, pdu.result_set_id, CONTEXT, encoding),
        enc_int(30, pdu.start_point), enc_int(29, pdu.number_of_records), ranges, composition,
        b"" if pdu.preferred_record_syntax is None else enc_oid(_PREFERRED_RECORD_SYNTAX, pdu.preferred_record_syntax),
        _opt_int(204, pdu.max_segment_count), _opt_int(206, pdu.max_record_size), _opt_int(207, pdu.max_segment_size),
        _raw(pdu.other_info),
    ])


def _enc_present_response(pdu: PresentResponse, encoding: str) -> bytes:
    return enc_seq(PRESENT_RESPONSE, [
        _ref(pdu.reference_id), enc_int(24, pdu.number_of_records_returned),
        enc_int(25, pdu.next_result_set_position), enc_int(_PRESENT_STATUS, pdu.present_status),
        _enc_records(pdu.records, pdu.diagnostics, encoding), _raw(pdu.other_info),
    ])


def _enc_list_statuses(tag: int, statuses: tuple[tuple[str, int], ...] | None, encoding: str) -> bytes:
    if statuses is None:
        return b""
    return enc_seq(tag, [enc_seq(SEQUENCE, [enc_str(_RESULT_SET_ID, name, CONTEXT, encoding), enc_int(33, status)],
                                 UNIVERSAL) for name, status in statuses])


def _enc_delete_request(pdu: DeleteResultSetRequest, encoding: str) -> bytes:
    names = b"" if not pdu.result_set_list else enc_seq(SEQUENCE, [
        enc_str(_RESULT_SET_ID, n, CONTEXT, encoding) for n in pdu.result_set_list], UNIVERSAL)
    return enc_seq(DELETE_RESULT_SET_REQUEST, [_ref(pdu.reference_id), enc_int(32, pdu.delete_function), names,
                                               _raw(pdu.other_info)])


def _enc_delete_response(pdu: DeleteResultSetResponse, encoding: str) -> bytes:
    return enc_seq(DELETE_RESULT_SET_RESPONSE, [
        _ref(pdu.reference_id), enc_int(0, pdu.delete_operation_status),
        _enc_list_statuses(1, pdu.delete_list_statuses, encoding), _opt_int(34, pdu.number_not_deleted),
        _enc_list_statuses(35, pdu.bulk_statuses, encoding), _opt_str(36, pdu.delete_message, encoding),
        _raw(pdu.other_info),
    ])


def _enc_scan_request(pdu: ScanRequest, encoding: str) -> bytes:
    from .. import rpn
    return enc_seq(SCAN_REQUEST, [
        _ref(pdu.reference_id), _enc_db_names(3, pdu.database_names, encoding),
        b"" if pdu.attribute_set is None else enc_oid(OBJECT_IDENTIFIER, pdu.attribute_set, UNIVERSAL),
        rpn.encode_apt(pdu.term, encoding=encoding), _opt_int(5, pdu.step_size),
        enc_int(6, pdu.number_of_terms_requested), _opt_int(7, pdu.preferred_position), _raw(pdu.other_info),
    ])


def _enc_term(term, term_type: str, encoding: str) -> bytes:
    if isinstance(term, Element):
        return encode(term)
    if term_type == "numeric":
        return enc_int(215, int(term))
    if term_type == "characterString":
        return enc_str(216, str(term), CONTEXT, encoding)
    return enc_str(45, term, CONTEXT, encoding)


def _enc_scan_response(pdu: ScanResponse, encoding: str) -> bytes:
    entries = b""
    if pdu.entries is not None or pdu.diagnostics:
        items = []
        for entry in pdu.entries or ():
            if isinstance(entry, Diagnostic):
                items.append(enc_explicit(2, enc_diagnostic(entry, encoding)))
            else:
                items.append(enc_seq(1, [
                    _enc_term(entry.term, entry.term_type, encoding), _opt_str(0, entry.display_term, encoding),
                    _opt_int(2, entry.occurrences)]))
        entries = enc_seq(7, [
            b"" if pdu.entries is None else enc_seq(1, items),
            b"" if not pdu.diagnostics else enc_seq(2, [enc_diagnostic(d, encoding) for d in pdu.diagnostics])])
    return enc_seq(SCAN_RESPONSE, [
        _ref(pdu.reference_id), _opt_int(3, pdu.step_size), enc_int(4, pdu.scan_status),
        enc_int(5, pdu.number_of_entries_returned), _opt_int(6, pdu.position_of_term), entries,
        b"" if pdu.attribute_set is None else enc_oid(8, pdu.attribute_set), _raw(pdu.other_info),
    ])


def _enc_sort_key_spec(spec: SortKeySpec, encoding: str) -> bytes:
    from .. import rpn
    if spec.database_specific is not None:
        element = encode(spec.database_specific)
    else:
        if spec.sort_field is not None:
            key = enc_str(0, spec.sort_field, CONTEXT, encoding)
        elif spec.attributes is not None:
            key = enc_seq(2, [enc_oid(OBJECT_IDENTIFIER, spec.attribute_set or "1.2.840.10003.3.1", UNIVERSAL),
                              rpn.encode_attribute_list(spec.attributes, encoding=encoding)])
        elif spec.element_spec is not None:
            key = encode(spec.element_spec)
        else:
            raise ValueError("SortKeySpec needs a sort field, attributes or an element spec")
        element = enc_explicit(1, key)
    mva = spec.missing_value_action
    if mva is None:
        missing = b""
    elif mva == "abort" or mva == "null":
        missing = enc_explicit(3, enc_null(1 if mva == "abort" else 2))
    elif isinstance(mva, str):
        raise TypeError(f"missing_value_action {mva!r}: 'abort', 'null', bytes or None")
    else:
        missing = enc_explicit(3, enc_octets(3, bytes(mva)))
    return enc_seq(SEQUENCE, [element, enc_int(1, spec.relation), enc_int(2, spec.case_sensitivity), missing],
                   UNIVERSAL)


def _enc_sort_request(pdu: SortRequest, encoding: str) -> bytes:
    return enc_seq(SORT_REQUEST, [
        _ref(pdu.reference_id),
        enc_seq(3, [enc_str(GENERAL_STRING, n, UNIVERSAL, encoding) for n in pdu.input_result_set_names]),
        enc_str(4, pdu.sorted_result_set_name, CONTEXT, encoding),
        enc_seq(5, [_enc_sort_key_spec(s, encoding) for s in pdu.sort_sequence]), _raw(pdu.other_info),
    ])


def _enc_sort_response(pdu: SortResponse, encoding: str) -> bytes:
    return enc_seq(SORT_RESPONSE, [
        _ref(pdu.reference_id), enc_int(3, pdu.sort_status), _opt_int(4, pdu.result_set_status),
        b"" if not pdu.diagnostics else enc_seq(5, [enc_diagnostic(d, encoding) for d in pdu.diagnostics]),
        _opt_int(6, pdu.result_count), _raw(pdu.other_info),
    ])


# -- decoding helpers

def _ref_of(f: _Fields) -> bytes | None:
    ref = f.opt(CONTEXT, _REFERENCE_ID)
    return None if ref is None else ref.octets()


def _opt_int_of(element: Element | None) -> int | None:
    return None if element is None else element.as_int()


def _db_names(element: Element, encoding: str) -> tuple[str, ...]:
    return tuple(c.expect(CONTEXT, _DATABASE_NAME).as_text(encoding) for c in element.children)


def _dec_esn(wrapper: Element, encoding: str) -> ElementSetNames:
    inner = _explicit_inner(wrapper)
    if inner.is_(CONTEXT, 0):
        return inner.as_text(encoding)
    inner.expect(CONTEXT, 1, True)
    pairs = []
    for item in inner.children:
        f = _Fields(item.expect(UNIVERSAL, SEQUENCE, True), "databaseSpecific")
        pairs.append((f.req(CONTEXT, _DATABASE_NAME, "dbName").as_text(encoding),
                      f.req(CONTEXT, _ELEMENT_SET_NAME, "esn").as_text(encoding)))
        f.end()
    return tuple(pairs)


def _dec_default_diag(parts: Element, encoding: str) -> Diagnostic:
    f = _Fields(parts, "DefaultDiagFormat")
    oid = f.req(UNIVERSAL, OBJECT_IDENTIFIER, "diagnosticSetId").as_oid()
    condition = f.req(UNIVERSAL, INTEGER, "condition").as_int()
    addinfo = f.opt(UNIVERSAL, GENERAL_STRING) or f.opt(UNIVERSAL, VISIBLE_STRING)
    f.end()
    return Diagnostic(condition, None if addinfo is None else addinfo.as_text(encoding), oid)


def decode_diagnostic(element: Element, encoding: str = "utf-8") -> Diagnostic:
    """A DiagRec (DefaultDiagFormat SEQUENCE or EXTERNAL)."""
    if element.is_(UNIVERSAL, EXTERNAL):
        _ = element.children   # a primitive EXTERNAL raises BERError here
        return Diagnostic(0, None, "", element)
    return _dec_default_diag(element.expect(UNIVERSAL, SEQUENCE, True), encoding)


def _dec_records(f: _Fields, encoding: str) -> tuple[tuple[NamePlusRecord, ...] | None, tuple[Diagnostic, ...]]:
    single = f.opt(CONTEXT, _NON_SURROGATE_DIAGNOSTIC)
    if single is not None:
        return None, (_dec_default_diag(single, encoding),)
    multiple = f.opt(CONTEXT, _MULTIPLE_NON_SUR_DIAGNOSTICS)
    if multiple is not None:
        return None, tuple(decode_diagnostic(d, encoding) for d in multiple.children)
    records = f.opt(CONTEXT, _RESPONSE_RECORDS)
    if records is None:
        return None, ()
    out = []
    for item in records.children:
        g = _Fields(item.expect(UNIVERSAL, SEQUENCE, True), "NamePlusRecord")
        name = _opt_text(g.opt(CONTEXT, 0), encoding)
        choice = _explicit_inner(g.req(CONTEXT, 1, "record"))
        g.end()
        if choice.cls != CONTEXT or not choice.constructed or not 1 <= choice.tag <= 5:
            raise BERError(f"NamePlusRecord: unexpected record choice {choice.describe()}", choice.offset)
        inner = _explicit_inner(choice)
        if choice.tag == 1:
            inner.expect(UNIVERSAL, EXTERNAL, True)
            out.append(NamePlusRecord(name, record=inner))
        elif choice.tag == 2:
            out.append(NamePlusRecord(name, diagnostic=decode_diagnostic(inner, encoding)))
        else:
            out.append(NamePlusRecord(name, fragment=(choice.tag, inner)))
    return tuple(out), ()


def _dec_query(wrapper: Element, encoding: str):
    from .. import rpn
    query = _explicit_inner(wrapper)
    if query.cls != CONTEXT:
        raise BERError(f"query: unexpected {query.describe()}", query.offset)
    if query.tag in (1, 101) and query.constructed:
        return rpn.decode_rpn_query(query, encoding=encoding), query.tag
    if query.tag == 104 and query.constructed:
        g = _Fields(query, "type-104 EXTERNAL")
        oid = g.req(UNIVERSAL, OBJECT_IDENTIFIER, "direct-reference").as_oid()
        g.opt(UNIVERSAL, INTEGER)
        g.opt(UNIVERSAL, 7)       # ObjectDescriptor
        if oid == CQL_QUERY_OID:
            enc = g.opt(CONTEXT, 0)
            if enc is not None:
                text = _explicit_inner(enc).as_text(encoding)
            else:
                text = g.req(CONTEXT, 1, "encoding").as_text(encoding)
            g.end()
            return CQLQuery(text), 1
    return OtherQuery(query.tag, query), 1


def _dec_search_request(apdu: Element, encoding: str) -> SearchRequest:
    f = _Fields(apdu, "searchRequest")
    ref = _ref_of(f)
    small = f.req(CONTEXT, 13, "smallSetUpperBound").as_int()
    large = f.req(CONTEXT, 14, "largeSetLowerBound").as_int()
    medium = f.req(CONTEXT, 15, "mediumSetPresentNumber").as_int()
    replace = f.req(CONTEXT, 16, "replaceIndicator").as_bool()
    name = f.req(CONTEXT, 17, "resultSetName").as_text(encoding)
    dbs = _db_names(f.req(CONTEXT, 18, "databaseNames"), encoding)
    ssesn = f.opt(CONTEXT, 100)
    msesn = f.opt(CONTEXT, 101)
    syntax = f.opt(CONTEXT, _PREFERRED_RECORD_SYNTAX)
    query, rpn_type = _dec_query(f.req(CONTEXT, 21, "query"), encoding)
    additional = f.opt(CONTEXT, _ADDITIONAL_SEARCH_INFO)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return SearchRequest(
        query=query, database_names=dbs, result_set_name=name, replace_indicator=replace,
        small_set_upper_bound=small, large_set_lower_bound=large, medium_set_present_number=medium,
        small_set_element_set_names=None if ssesn is None else _dec_esn(ssesn, encoding),
        medium_set_element_set_names=None if msesn is None else _dec_esn(msesn, encoding),
        preferred_record_syntax=None if syntax is None else syntax.as_oid(), reference_id=ref,
        additional_search_info=additional, other_info=other, rpn_type=rpn_type)


def _dec_search_response(apdu: Element, encoding: str) -> SearchResponse:
    f = _Fields(apdu, "searchResponse")
    ref = _ref_of(f)
    count = f.req(CONTEXT, 23, "resultCount").as_int()
    returned = f.req(CONTEXT, 24, "numberOfRecordsReturned").as_int()
    nxt = f.req(CONTEXT, 25, "nextResultSetPosition").as_int()
    status = f.req(CONTEXT, 22, "searchStatus").as_bool()
    rs_status = _opt_int_of(f.opt(CONTEXT, 26))
    present_status = _opt_int_of(f.opt(CONTEXT, _PRESENT_STATUS))
    records, diagnostics = _dec_records(f, encoding)
    additional = f.opt(CONTEXT, _ADDITIONAL_SEARCH_INFO)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return SearchResponse(count, returned, nxt, status, rs_status, present_status, records, diagnostics, ref,
                          additional, other)


def _dec_present_request(apdu: Element, encoding: str) -> PresentRequest:
    f = _Fields(apdu, "presentRequest")
    ref = _ref_of(f)
    rs = f.req(CONTEXT, _RESULT_SET_ID, "resultSetId").as_text(encoding)
    start = f.req(CONTEXT, 30, "resultSetStartPoint").as_int()
    number = f.req(CONTEXT, 29, "numberOfRecordsRequested").as_int()
    ranges_el = f.opt(CONTEXT, 212)
    ranges = []
    for r in () if ranges_el is None else ranges_el.children:
        g = _Fields(r.expect(UNIVERSAL, SEQUENCE, True), "Range")
        ranges.append((g.req(CONTEXT, 1, "startingPosition").as_int(), g.req(CONTEXT, 2, "numberOfRecords").as_int()))
        g.end()
    simple = f.opt(CONTEXT, 19)
    complex_ = f.opt(CONTEXT, 209) if simple is None else None
    syntax = f.opt(CONTEXT, _PREFERRED_RECORD_SYNTAX)
    seg_count = _opt_int_of(f.opt(CONTEXT, 204))
    rec_size = _opt_int_of(f.opt(CONTEXT, 206))
    seg_size = _opt_int_of(f.opt(CONTEXT, 207))
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return PresentRequest(
        rs, start, number, None if simple is None else _dec_esn(simple, encoding),
        None if syntax is None else syntax.as_oid(), tuple(ranges), complex_, seg_count, rec_size, seg_size,
        ref, other)


def _dec_present_response(apdu: Element, encoding: str) -> PresentResponse:
    f = _Fields(apdu, "presentResponse")
    ref = _ref_of(f)
    returned = f.req(CONTEXT, 24, "numberOfRecordsReturned").as_int()
    nxt = f.req(CONTEXT, 25, "nextResultSetPosition").as_int()
    status = f.req(CONTEXT, _PRESENT_STATUS, "presentStatus").as_int()
    records, diagnostics = _dec_records(f, encoding)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return PresentResponse(returned, nxt, status, records, diagnostics, ref, other)


def _dec_list_statuses(element: Element | None, encoding: str) -> tuple[tuple[str, int], ...] | None:
    if element is None:
        return None
    out = []
    for item in element.children:
        g = _Fields(item.expect(UNIVERSAL, SEQUENCE, True), "ListStatuses")
        out.append((g.req(CONTEXT, _RESULT_SET_ID, "id").as_text(encoding), g.req(CONTEXT, 33, "status").as_int()))
        g.end()
    return tuple(out)


def _dec_delete_request(apdu: Element, encoding: str) -> DeleteResultSetRequest:
    f = _Fields(apdu, "deleteResultSetRequest")
    ref = _ref_of(f)
    function = f.req(CONTEXT, 32, "deleteFunction").as_int()
    names = f.opt(UNIVERSAL, SEQUENCE)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return DeleteResultSetRequest(
        function, () if names is None else tuple(c.expect(CONTEXT, _RESULT_SET_ID).as_text(encoding)
                                                  for c in names.children), ref, other)


def _dec_delete_response(apdu: Element, encoding: str) -> DeleteResultSetResponse:
    f = _Fields(apdu, "deleteResultSetResponse")
    ref = _ref_of(f)
    status = f.req(CONTEXT, 0, "deleteOperationStatus").as_int()
    statuses = _dec_list_statuses(f.opt(CONTEXT, 1), encoding)
    not_deleted = _opt_int_of(f.opt(CONTEXT, 34))
    bulk = _dec_list_statuses(f.opt(CONTEXT, 35), encoding)
    message = _opt_text(f.opt(CONTEXT, 36), encoding)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return DeleteResultSetResponse(status, statuses, not_deleted, bulk, message, ref, other)


def _dec_scan_request(apdu: Element, encoding: str) -> ScanRequest:
    from .. import rpn
    f = _Fields(apdu, "scanRequest")
    ref = _ref_of(f)
    dbs = _db_names(f.req(CONTEXT, 3, "databaseNames"), encoding)
    attrset = f.opt(UNIVERSAL, OBJECT_IDENTIFIER)
    apt = rpn.decode_apt(f.req(CONTEXT, 102, "termListAndStartPoint"), encoding=encoding)
    step = _opt_int_of(f.opt(CONTEXT, 5))
    number = f.req(CONTEXT, 6, "numberOfTermsRequested").as_int()
    position = _opt_int_of(f.opt(CONTEXT, 7))
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return ScanRequest(apt, dbs, None if attrset is None else attrset.as_oid(), number, step, position, ref, other)


def _dec_term(element: Element, encoding: str) -> tuple[str | int | Element, str]:
    if element.is_(CONTEXT, 45):
        return element.as_text(encoding), "general"
    if element.is_(CONTEXT, 215):
        return element.as_int(), "numeric"
    if element.is_(CONTEXT, 216):
        return element.as_text(encoding), "characterString"
    if element.cls == CONTEXT and element.tag in (217, 218, 219, 220, 221):
        return element, "other"
    raise BERError(f"Term: unexpected {element.describe()}", element.offset)


def _dec_scan_response(apdu: Element, encoding: str) -> ScanResponse:
    f = _Fields(apdu, "scanResponse")
    ref = _ref_of(f)
    step = _opt_int_of(f.opt(CONTEXT, 3))
    status = f.req(CONTEXT, 4, "scanStatus").as_int()
    number = f.req(CONTEXT, 5, "numberOfEntriesReturned").as_int()
    position = _opt_int_of(f.opt(CONTEXT, 6))
    list_entries = f.opt(CONTEXT, 7)
    attrset = f.opt(CONTEXT, 8)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    entries: list | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    if list_entries is not None:
        g = _Fields(list_entries, "ListEntries")
        items = g.opt(CONTEXT, 1)
        diags = g.opt(CONTEXT, 2)
        g.end()
        if items is not None:
            entries = []
            for item in items.children:
                if item.is_(CONTEXT, 2):
                    entries.append(decode_diagnostic(_explicit_inner(item), encoding))
                    continue
                h = _Fields(item.expect(CONTEXT, 1, True), "TermInfo")
                if h.i >= len(h.items):
                    raise BERError("TermInfo without a term", item.offset)
                term, term_type = _dec_term(h.items[0], encoding)
                h.i = 1
                display = _opt_text(h.opt(CONTEXT, 0), encoding)
                h.opt(CONTEXT, 44)           # suggestedAttributes
                h.opt(CONTEXT, 4)            # alternativeTerm
                occurrences = _opt_int_of(h.opt(CONTEXT, 2))
                h.opt(CONTEXT, 3)            # byAttributes
                h.opt(CONTEXT, _OTHER_INFO)
                h.end()
                entries.append(ScanEntry(term, display, occurrences, term_type))
        if diags is not None:
            diagnostics = tuple(decode_diagnostic(d, encoding) for d in diags.children)
    return ScanResponse(status, number, position, None if entries is None else tuple(entries), diagnostics, step,
                        None if attrset is None else attrset.as_oid(), ref, other)


def _dec_sort_key_spec(element: Element, encoding: str) -> SortKeySpec:
    from .. import rpn
    f = _Fields(element.expect(UNIVERSAL, SEQUENCE, True), "SortKeySpec")
    if f.i >= len(f.items):
        raise BERError("SortKeySpec without a sort element", element.offset)
    sort_element = f.items[0]
    f.i = 1
    fields: dict = {}
    if sort_element.is_(CONTEXT, 1):
        key = _explicit_inner(sort_element)
        if key.is_(CONTEXT, 0):
            fields["sort_field"] = key.as_text(encoding)
        elif key.is_(CONTEXT, 2) and key.constructed:
            g = _Fields(key, "sortAttributes")
            fields["attribute_set"] = g.req(UNIVERSAL, OBJECT_IDENTIFIER, "id").as_oid()
            fields["attributes"] = rpn.decode_attribute_list(g.req(CONTEXT, 44, "list"), encoding=encoding)
            g.end()
        elif key.is_(CONTEXT, 1):
            fields["element_spec"] = key
        else:
            raise BERError(f"SortKey: unexpected {key.describe()}", key.offset)
    elif sort_element.is_(CONTEXT, 2) and sort_element.constructed:
        fields["database_specific"] = sort_element
    else:
        raise BERError(f"SortElement: unexpected {sort_element.describe()}", sort_element.offset)
    fields["relation"] = f.req(CONTEXT, 1, "sortRelation").as_int()
    fields["case_sensitivity"] = f.req(CONTEXT, 2, "caseSensitivity").as_int()
    missing = f.opt(CONTEXT, 3)
    f.end()
    if missing is not None:
        action = _explicit_inner(missing)
        if action.is_(CONTEXT, 1):
            fields["missing_value_action"] = "abort"
        elif action.is_(CONTEXT, 2):
            fields["missing_value_action"] = "null"
        elif action.is_(CONTEXT, 3):
            fields["missing_value_action"] = action.octets()
        else:
            raise BERError(f"missingValueAction: unexpected {action.describe()}", action.offset)
    return SortKeySpec(**fields)


def _dec_sort_request(apdu: Element, encoding: str) -> SortRequest:
    f = _Fields(apdu, "sortRequest")
    ref = _ref_of(f)
    inputs = tuple(c.as_text(encoding) for c in f.req(CONTEXT, 3, "inputResultSetNames").children)
    sorted_name = f.req(CONTEXT, 4, "sortedResultSetName").as_text(encoding)
    keys = tuple(_dec_sort_key_spec(c, encoding) for c in f.req(CONTEXT, 5, "sortSequence").children)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return SortRequest(inputs, sorted_name, keys, ref, other)


def _dec_sort_response(apdu: Element, encoding: str) -> SortResponse:
    f = _Fields(apdu, "sortResponse")
    ref = _ref_of(f)
    status = f.req(CONTEXT, 3, "sortStatus").as_int()
    rs_status = _opt_int_of(f.opt(CONTEXT, 4))
    diags = f.opt(CONTEXT, 5)
    count = _opt_int_of(f.opt(CONTEXT, 6))
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return SortResponse(status, rs_status, () if diags is None else tuple(decode_diagnostic(d, encoding)
                                                                          for d in diags.children),
                        count, ref, other)
