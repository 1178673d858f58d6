"""The common SearchRequest read straight from its bytes, without the generic BER tree.

Nearly every search a client sends has the same shape: definite lengths, primitive
strings, numeric Bib-1 attributes, general (OCTET STRING) terms, and/or/and-not, a
result set name as operand at most.  ``decode_search_request`` reads exactly that
shape in one pass over the bytes into the same ``SearchRequest`` the generic path
(``z3950.ber.decode`` + ``operations_codec._dec_search_request``) builds, and
returns None for anything else -- a form it does not read (indefinite lengths,
constructed strings, multi-octet tags, complex attributes, attribute sets per
attribute, other term types, prox, otherInfo, additionalSearchInfo, database-specific
element set names, a CQL or other query type) as well as anything malformed.  The
caller then decodes with the generic path, which stays the reference: it gives the
answer or the error for everything this module declines.  So this module never
raises and never accepts what the generic path would refuse (the tests compare the
two on generated and mutated APDUs).  Sans-I/O.
"""
from __future__ import annotations

from ..ber import OBJECT_IDENTIFIER, UNIVERSAL, BERError, Element
from ..rpn.model import APT, AttributeElement, ResultSetRef, RPNOp, RPNQuery
from .operations import SearchRequest

__all__ = ["decode_search_request", "FAST_MAX_BYTES", "FAST_MAX_RPN_DEPTH"]

FAST_MAX_BYTES = 16 * 1024       # longer APDUs go the generic way (and its element limits)
FAST_MAX_RPN_DEPTH = 32          # deeper RPN trees too (generic: 100 levels, BER depth 128)

# identifier octets (X.690 8.1.2): class CONTEXT = 0x80, constructed = 0x20
_C = 0xA0                        # context, constructed, + low tag number
_P = 0x80                        # context, primitive, + low tag number
_HIGH_C, _HIGH_P = 0xBF, 0x9F    # context, high tag number form (one octet follows)
_SEQ = 0x30                      # universal SEQUENCE, constructed
_OID = 0x06                      # universal OBJECT IDENTIFIER, primitive


def _hc(tag: int) -> int:
    """head()'s identifier of a context-class constructed element with a one-octet high tag number."""
    return (_C << 8) | tag


def _hp(tag: int) -> int:
    """... and of a primitive one."""
    return (_P << 8) | tag


class _Decline(Exception):
    """Not the common shape (or not well formed): the generic path decides."""


_DECLINE = _Decline()

# immutable pieces that recur from request to request, by their bytes
_OIDS: dict[bytes, str] = {}
_ATTRS: dict[bytes, AttributeElement] = {}
_CACHE_MAX = 4096


def _oid(content: bytes) -> str:
    s = _OIDS.get(content)
    if s is None:
        try:
            s = Element(UNIVERSAL, False, OBJECT_IDENTIFIER, content).as_oid()
        except BERError:
            raise _DECLINE from None
        if len(_OIDS) >= _CACHE_MAX:
            _OIDS.clear()
        _OIDS[content] = s
    return s


class _Reader:
    __slots__ = ("d", "enc")

    def __init__(self, data: bytes, encoding: str):
        self.d = data
        self.enc = encoding

    def head(self, pos: int, end: int) -> tuple[int, int, int]:
        """(identifier: the first octet, or class and form << 8 + tag for a one-octet high tag number;
        content start; content end) of the element at ``pos``, which must end by ``end``."""
        d = self.d
        if pos + 2 > end:
            raise _DECLINE
        first = d[pos]
        pos += 1
        if first & 0x1F == 0x1F:
            b = d[pos]
            if not 31 <= b < 0x80:
                raise _DECLINE
            ident = (first & 0xE0) << 8 | b               # above any one-octet identifier
            pos += 1
            if pos >= end:
                raise _DECLINE
        else:
            ident = first
        b = d[pos]
        pos += 1
        if b < 0x80:
            length = b
        else:
            n = b & 0x7F
            if b == 0x80 or b == 0xFF or n > 4 or pos + n > end:
                raise _DECLINE
            length = int.from_bytes(d[pos:pos + n], "big")
            pos += n
        stop = pos + length
        if stop > end:
            raise _DECLINE
        return ident, pos, stop

    def int_(self, start: int, stop: int) -> int:
        if not 0 < stop - start <= 8:
            raise _DECLINE
        return int.from_bytes(self.d[start:stop], "big", signed=True)

    def text(self, start: int, stop: int) -> str:
        try:
            return self.d[start:stop].decode(self.enc)
        except (UnicodeDecodeError, LookupError):
            raise _DECLINE from None

    # -- the RPN query
    def structure(self, ident: int, start: int, stop: int, depth: int):
        if depth > FAST_MAX_RPN_DEPTH:
            raise _DECLINE
        if ident == _C | 0:                                  # op [0]: one operand
            oid_, s, e = self.head(start, stop)
            if e != stop:
                raise _DECLINE
            if oid_ == _APT_ID:                             # [102] AttributesPlusTerm
                return self.apt(s, e)
            if oid_ == _RSID:                              # [31] resultSetId, primitive
                return ResultSetRef(self.text(s, e))
            raise _DECLINE
        if ident == _C | 1:                                  # rpnRpnOp [1]: left, right, operator
            i1, s1, e1 = self.head(start, stop)
            left = self.structure(i1, s1, e1, depth + 1)
            i2, s2, e2 = self.head(e1, stop)
            right = self.structure(i2, s2, e2, depth + 1)
            i3, s3, e3 = self.head(e2, stop)
            if e3 != stop or i3 != _OPERATOR:
                raise _DECLINE
            io, so, eo = self.head(s3, e3)                   # Operator [46] EXPLICIT: [0] and, [1] or, [2] and-not
            if eo != e3 or so != eo or io not in (_P | 0, _P | 1, _P | 2):
                raise _DECLINE
            return RPNOp(("and", "or", "and-not")[io & 0x1F], left, right, None)
        raise _DECLINE

    def apt(self, start: int, stop: int) -> APT:
        d = self.d
        ia, sa, ea = self.head(start, stop)
        if ia != _ATTRLIST:                # attributes [44] IMPLICIT SEQUENCE OF
            raise _DECLINE
        attrs = []
        pos = sa
        while pos < ea:
            i, s, e = self.head(pos, ea)
            if i != _SEQ:
                raise _DECLINE
            raw = d[s:e]
            a = _ATTRS.get(raw)
            if a is None:
                # { attributeType [120] INTEGER, attributeValue numeric [121] INTEGER }
                it, st, et = self.head(s, e)
                iv, sv, ev = self.head(et, e)
                if (it != _ATYPE or iv != _AVALUE or ev != e):
                    raise _DECLINE
                a = AttributeElement(self.int_(st, et), self.int_(sv, ev), None, None)
                if len(_ATTRS) >= _CACHE_MAX:
                    _ATTRS.clear()
                _ATTRS[raw] = a
            attrs.append(a)
            pos = e
        it, st, et = self.head(ea, stop)
        if it != _GENERAL or et != stop:   # term: general [45] OCTET STRING
            raise _DECLINE
        return APT(tuple(attrs), self.text(st, et), "general")


# identifiers as head() returns them
_APT_ID, _RSID, _OPERATOR, _ATTRLIST = _hc(102), _hp(31), _hc(46), _hc(44)
_ATYPE, _AVALUE, _GENERAL = _hp(120), _hp(121), _hp(45)
_REF = _P | 2
_SMALL, _LARGE, _MEDIUM, _REPLACE, _NAME, _DBS = _P | 13, _P | 14, _P | 15, _P | 16, _P | 17, _C | 18
_DBNAME = _hp(105)
_SSESN, _MSESN = _hc(100), _hc(101)
_SYNTAX = _hp(104)
_QUERY = _C | 21
_TYPE1, _TYPE101 = _C | 1, _hc(101)


def decode_search_request(data: bytes, encoding: str = "utf-8") -> SearchRequest | None:
    """The SearchRequest APDU ``data`` (one whole APDU, [22] first) in the common
    shape, or None: decode it with the generic path then."""
    if len(data) > FAST_MAX_BYTES or not data or data[0] != (_C | 22):
        return None
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        return _decode(_Reader(data, encoding), len(data))
    except _Decline:
        return None
    except (IndexError, ValueError):   # a bound this reader missed: still the generic path's to judge
        return None


def _decode(r: _Reader, n: int) -> SearchRequest:
    ident, pos, end = r.head(0, n)
    if end != n:
        raise _DECLINE
    i, s, e = r.head(pos, end)
    ref = None
    if i == _REF:
        ref = r.d[s:e]
        i, s, e = r.head(e, end)
    if i != _SMALL:
        raise _DECLINE
    small = r.int_(s, e)
    i, s, e = r.head(e, end)
    if i != _LARGE:
        raise _DECLINE
    large = r.int_(s, e)
    i, s, e = r.head(e, end)
    if i != _MEDIUM:
        raise _DECLINE
    medium = r.int_(s, e)
    i, s, e = r.head(e, end)
    if i != _REPLACE or e - s != 1:
        raise _DECLINE
    replace = r.d[s] != 0
    i, s, e = r.head(e, end)
    if i != _NAME:
        raise _DECLINE
    name = r.text(s, e)
    i, s, e = r.head(e, end)
    if i != _DBS:
        raise _DECLINE
    dbs = []
    pos = s
    while pos < e:
        di, ds, de = r.head(pos, e)
        if di != _DBNAME:
            raise _DECLINE
        dbs.append(r.text(ds, de))
        pos = de
    i, s, e = r.head(e, end)
    esns: list[str | None] = []
    for tag in (_SSESN, _MSESN):
        if i == tag:               # [100]/[101] EXPLICIT ElementSetNames: genericElementSetName [0] only
            gi, gs, ge = r.head(s, e)
            if gi != _P | 0 or ge != e:
                raise _DECLINE
            esns.append(r.text(gs, ge))
            i, s, e = r.head(e, end)
        else:
            esns.append(None)
    syntax = None
    if i == _SYNTAX:
        syntax = _oid(r.d[s:e])
        i, s, e = r.head(e, end)
    if i != _QUERY or e != end:   # the query last: no additionalSearchInfo, no otherInfo
        raise _DECLINE
    qi, qs, qe = r.head(s, e)
    if qe != e or qi not in (_TYPE1, _TYPE101):
        raise _DECLINE
    oi, os_, oe = r.head(qs, qe)
    if oi != _OID:
        raise _DECLINE
    attribute_set = _oid(r.d[os_:oe])
    si, ss, se = r.head(oe, qe)
    if se != qe:
        raise _DECLINE
    root = r.structure(si, ss, se, 1)
    return SearchRequest(
        query=RPNQuery(attribute_set, root), database_names=tuple(dbs), result_set_name=name,
        replace_indicator=replace, small_set_upper_bound=small, large_set_lower_bound=large,
        medium_set_present_number=medium, small_set_element_set_names=esns[0],
        medium_set_element_set_names=esns[1], preferred_record_syntax=syntax, reference_id=ref,
        additional_search_info=None, other_info=None, rpn_type=1 if qi == _TYPE1 else 101)
