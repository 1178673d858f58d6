"""BER (ITU-T X.690 Basic Encoding Rules) for the ASN.1 types Z39.50 uses.

Decoding turns bytes into a tree of ``Element`` (tag + raw content, or children);
typed readings (``Element.as_int()``, ``as_oid()``, ...) are separate, so the
structural pass never interprets content.  Every failure on untrusted input is
a ``BERError`` carrying a reason and a byte offset; the decoder is iterative (no
recursion) and bounded by ``max_length`` (bytes in one top-level element),
``max_depth`` (constructed nesting) and ``max_elements`` (elements in one
top-level element), so no input can make it hang or allocate without bound.

Encoding (``enc_*``) always produces the canonical definite-length form: short
length form below 128, otherwise the minimal long form (X.690 8.1.3), minimal
two's-complement integers (8.3.2), and BOOLEAN true as 0xFF.

``Framer`` splits a byte stream into top-level elements (Z39.50 APDUs) and can
refuse an oversized PDU as soon as its length octets arrive.

Section numbers below refer to ITU-T X.690 (02/2021).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, cast

__all__ = [
    "UNIVERSAL", "APPLICATION", "CONTEXT", "PRIVATE",
    "BOOLEAN", "INTEGER", "BIT_STRING", "OCTET_STRING", "NULL", "OBJECT_IDENTIFIER",
    "EXTERNAL", "ENUMERATED", "SEQUENCE", "SET", "VISIBLE_STRING", "GENERAL_STRING",
    "DEFAULT_MAX_LENGTH", "DEFAULT_MAX_DEPTH", "DEFAULT_MAX_ELEMENTS",
    "BERError", "Truncated", "Element", "decode", "decode_all", "Framer",
    "enc_tag", "enc_length", "enc_tlv", "int_content", "oid_content", "bits_content",
    "enc_int", "enc_enum", "enc_bool", "enc_null", "enc_octets", "enc_str", "enc_oid",
    "enc_bits", "enc_seq", "enc_explicit", "encode",
]

# Tag classes (X.690 8.1.2.2, table 1): the two high bits of the identifier octet.
UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = 0, 1, 2, 3

# Universal tag numbers (ITU-T X.680 8.4, table 1) used by Z39.50.
BOOLEAN = 1
INTEGER = 2
BIT_STRING = 3
OCTET_STRING = 4
NULL = 5
OBJECT_IDENTIFIER = 6
EXTERNAL = 8
ENUMERATED = 10
SEQUENCE = 16
SET = 17
VISIBLE_STRING = 26
GENERAL_STRING = 27     # Z39.50 InternationalString ::= GeneralString

DEFAULT_MAX_LENGTH = 4 * 1024 * 1024
DEFAULT_MAX_DEPTH = 128
DEFAULT_MAX_ELEMENTS = 100_000

MAX_TAG_OCTETS = 4        # subsequent tag octets: tag numbers below 2**28
MAX_LENGTH_OCTETS = 4     # long-form length octets: lengths below 2**32
MAX_OID_ARC_OCTETS = 20   # 140 bits per arc (UUID arcs under 2.25 need 19 octets)


class BERError(ValueError):
    """Malformed, unsupported or over-limit BER; ``offset`` is the byte position
    (from the start of the decoded buffer) where the problem was found."""

    def __init__(self, reason: str, offset: int = 0):
        super().__init__(f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


class Truncated(BERError):
    """The input ended inside an element: more bytes might make it valid."""


@dataclass(slots=True)   # not frozen: a frozen __init__ costs a third of decoding; treat as immutable
class Element:
    """One decoded TLV.  ``value`` is the content octets of a primitive element,
    or the children of a constructed one.  ``offset`` (position of the identifier
    octet) is informative and does not take part in equality."""

    cls: int
    constructed: bool
    tag: int
    value: bytes | tuple[Element, ...]
    offset: int = field(default=0, compare=False)

    def is_(self, cls: int, tag: int) -> bool:
        return self.cls == cls and self.tag == tag

    def expect(self, cls: int, tag: int, constructed: bool | None = None) -> Element:
        """Return self if the tag (and, if given, the form) matches, else raise."""
        if not self.is_(cls, tag) or (constructed is not None and self.constructed != constructed):
            form = "" if constructed is None else (" constructed" if constructed else " primitive")
            raise BERError(f"expected [{_CLASS_NAMES[cls]} {tag}]{form}, found {self.describe()}", self.offset)
        return self

    def describe(self) -> str:
        form = "constructed" if self.constructed else "primitive"
        return f"[{_CLASS_NAMES[self.cls]} {self.tag}] {form}"

    @property
    def children(self) -> tuple[Element, ...]:
        if not self.constructed:
            raise BERError(f"{self.describe()} where a constructed element was expected", self.offset)
        return self.value  # type: ignore[return-value]

    def primitive(self) -> bytes:
        if self.constructed:
            raise BERError(f"{self.describe()} where a primitive element was expected", self.offset)
        return self.value  # type: ignore[return-value]

    def octets(self) -> bytes:
        """OCTET STRING content (X.690 8.7), also for the restricted character
        strings, which are encoded like it (8.23).  A constructed value is the
        concatenation of its segments, each a universal OCTET STRING (8.7.3),
        which may themselves be constructed; walked without recursion."""
        if not self.constructed:
            return cast(bytes, self.value)
        parts: list[bytes] = []
        stack: list[Iterator[Element]] = [iter(cast("tuple[Element, ...]", self.value))]
        while stack:
            seg = next(stack[-1], None)
            if seg is None:
                stack.pop()
            elif not seg.is_(UNIVERSAL, OCTET_STRING):
                raise BERError(f"segment of a constructed string is {seg.describe()}, not an OCTET STRING", seg.offset)
            elif seg.constructed:
                stack.append(iter(cast("tuple[Element, ...]", seg.value)))
            else:
                parts.append(cast(bytes, seg.value))
        return b"".join(parts)

    def as_int(self) -> int:
        """INTEGER or ENUMERATED content (8.3, 8.4): two's complement, big-endian,
        at least one octet.  Redundant leading 0x00/0xFF octets, which 8.3.2
        forbids, are tolerated on input since some encoders emit them."""
        content = self.primitive()
        if not content:
            raise BERError("INTEGER with no content octets", self.offset)
        return int.from_bytes(content, "big", signed=True)

    def as_bool(self) -> bool:
        """BOOLEAN (8.2): exactly one octet, zero is FALSE, anything else TRUE."""
        content = self.primitive()
        if len(content) != 1:
            raise BERError(f"BOOLEAN with {len(content)} content octets", self.offset)
        return content != b"\x00"

    def as_null(self) -> None:
        """NULL (8.8): no content octets."""
        if self.primitive():
            raise BERError("NULL with content octets", self.offset)

    def as_oid(self) -> str:
        """OBJECT IDENTIFIER (8.19) as a dotted string.  Each subidentifier is
        base 128, high bit set on all but its last octet, and may not start with
        0x80 (8.19.2); the first one packs the first two arcs as 40*X + Y (8.19.4)."""
        content = self.primitive()
        if not content:
            raise BERError("OBJECT IDENTIFIER with no content octets", self.offset)
        if content[-1] & 0x80:
            raise BERError("OBJECT IDENTIFIER ends inside a subidentifier", self.offset)
        arcs: list[int] = []
        value = 0
        length = 0
        for b in content:
            if length == 0 and b == 0x80:
                raise BERError("OBJECT IDENTIFIER subidentifier with a 0x80 leading octet", self.offset)
            length += 1
            if length > MAX_OID_ARC_OCTETS:
                raise BERError(f"OBJECT IDENTIFIER arc longer than {MAX_OID_ARC_OCTETS} octets", self.offset)
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                arcs.append(value)
                value = length = 0
        first = arcs[0]
        head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
        return ".".join(str(a) for a in head + arcs[1:])

    def as_bits(self) -> tuple[bool, ...]:
        """BIT STRING (8.6) as booleans, bit 0 being the most significant bit of
        the first octet (as in ASN.1 named bit lists).  The first content octet
        counts the unused bits of the last octet (0..7, and 0 if there is no
        other octet).  A constructed value is a series of primitive BIT STRING
        segments where only the last may have unused bits (8.6.4)."""
        segments = [self] if not self.constructed else list(cast("tuple[Element, ...]", self.value))
        if not segments:
            raise BERError("constructed BIT STRING with no segments", self.offset)
        bits: list[bool] = []
        for i, seg in enumerate(segments):
            if seg is not self and (not seg.is_(UNIVERSAL, BIT_STRING) or seg.constructed):
                raise BERError(f"segment of a constructed BIT STRING is {seg.describe()}", seg.offset)
            content = seg.primitive()
            if not content:
                raise BERError("BIT STRING without the unused-bits octet", seg.offset)
            unused = content[0]
            if unused > 7 or (unused and len(content) == 1):
                raise BERError(f"BIT STRING with {unused} unused bits", seg.offset)
            if unused and i != len(segments) - 1:
                raise BERError("unused bits in a BIT STRING segment other than the last", seg.offset)
            for octet in content[1:]:
                bits.extend(bool(octet & (0x80 >> k)) for k in range(8))
            del bits[len(bits) - unused:]
        return tuple(bits)

    def as_text(self, encoding: str = "utf-8") -> str:
        """A character string (OCTET STRING, GeneralString, VisibleString...) decoded
        with ``encoding``; a codec failure becomes a BERError whose reason is the
        codec's message (the UnicodeDecodeError is chained as ``__cause__``)."""
        raw = self.octets()
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise BERError(f"{exc.encoding}: {exc.reason} at octet {exc.start} of the string", self.offset) from exc


_CLASS_NAMES = ("UNIVERSAL", "APPLICATION", "CONTEXT", "PRIVATE")


# ---------------------------------------------------------------------------
# Decoding

def _header(data: bytes | bytearray, pos: int, bound: int, bound_what: str) -> tuple[int, bool, int, int | None, int]:
    """Read identifier and length octets at ``pos`` (8.1.2, 8.1.3); return
    (class, constructed, tag number, content length or None if indefinite,
    position of the first content octet).  Bytes at or past ``bound`` are not
    part of this element (its parent ended, or ``max_length``)."""
    if pos + 1 < bound and pos + 1 < len(data):   # fast path: low tag number, short-form length
        first, b = data[pos], data[pos + 1]
        if first & 0x1F != 0x1F and b < 0x80 and (first >> 6 or first & 0x1F):
            return first >> 6, bool(first & 0x20), first & 0x1F, b, pos + 2
        # fast path: a tag number of one high-form octet (31..127: most Z39.50
        # context tags), short-form length
        if first & 0x1F == 0x1F and 31 <= b < 0x80 and pos + 2 < bound and pos + 2 < len(data):
            n = data[pos + 2]
            if n < 0x80:
                return first >> 6, bool(first & 0x20), b, n, pos + 3
    i = pos

    def octet() -> int:
        nonlocal i
        if i >= bound:
            raise BERError(f"header runs past {bound_what}", pos)
        if i >= len(data):
            raise Truncated("input ends inside an identifier or length", pos)
        i += 1
        return data[i - 1]

    first = octet()
    cls, constructed, tag = first >> 6, bool(first & 0x20), first & 0x1F
    if tag == 0x1F:                         # high tag number form, 8.1.2.4
        tag = 0
        for n in range(MAX_TAG_OCTETS + 1):
            if n == MAX_TAG_OCTETS:
                raise BERError(f"tag number longer than {MAX_TAG_OCTETS} octets", pos)
            b = octet()
            if n == 0 and b == 0x80:
                raise BERError("high tag number with a 0x80 leading octet", pos)
            tag = (tag << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        if tag < 31:
            raise BERError(f"tag number {tag} in the high tag number form", pos)
    if cls == UNIVERSAL and tag == 0:
        raise BERError("end-of-contents octets outside an indefinite-length element", pos)

    b = octet()
    length: int | None
    if b < 0x80:                            # short form, 8.1.3.4
        length = b
    elif b == 0x80:                         # indefinite form, 8.1.3.6
        if not constructed:
            raise BERError("indefinite length on a primitive element", pos)
        length = None
    elif b == 0xFF:                         # reserved, 8.1.3.5 c
        raise BERError("reserved length octet 0xFF", pos)
    else:                                   # long form, 8.1.3.5
        n = b & 0x7F
        if n > MAX_LENGTH_OCTETS:
            raise BERError(f"length in {n} octets (at most {MAX_LENGTH_OCTETS} accepted)", pos)
        length = 0
        for _ in range(n):
            length = (length << 8) | octet()
    return cls, constructed, tag, length, i


def _check_limits(max_length: int, max_depth: int, max_elements: int) -> None:
    for name, value in (("max_length", max_length), ("max_depth", max_depth), ("max_elements", max_elements)):
        if not isinstance(value, int) or value < 1:
            raise TypeError(f"{name} must be a positive int, not {value!r}")


class _Frame:
    """A constructed element being decoded."""
    __slots__ = ("cls", "tag", "offset", "end", "bound", "bound_what", "children")

    def __init__(self, cls, tag, offset, end, bound, bound_what):
        self.cls, self.tag, self.offset = cls, tag, offset
        self.end = end                # None: indefinite length, ends with 00 00
        self.bound, self.bound_what = bound, bound_what
        self.children: list[Element] = []


def decode(data: bytes | bytearray | memoryview, *, max_length: int = DEFAULT_MAX_LENGTH,
           max_depth: int = DEFAULT_MAX_DEPTH, max_elements: int = DEFAULT_MAX_ELEMENTS,
           ) -> tuple[Element, int]:
    """Decode the element at the start of ``data``; return it and the number of
    bytes it took (any following bytes are left alone).

    Accepts definite lengths (short and long form) everywhere and the indefinite
    form (8.1.3.6, closed by end-of-contents 00 00, 8.1.5) on constructed
    elements.  Raises ``Truncated`` if ``data`` ends inside the element and
    ``BERError`` for anything malformed or beyond the limits: the element may
    span at most ``max_length`` bytes, nest at most ``max_depth`` constructed
    levels and contain at most ``max_elements`` elements (itself included).
    """
    _check_limits(max_length, max_depth, max_elements)
    data = bytes(data)
    stack: list[_Frame] = []
    pos = 0
    count = 0
    while True:
        if stack:
            top = stack[-1]
            if top.end is None:
                done = pos < len(data) and data[pos] == 0
                if done:
                    if pos + 1 >= min(len(data), top.bound):
                        if pos + 1 >= top.bound:
                            raise BERError(f"end-of-contents runs past {top.bound_what}", pos)
                        raise Truncated("input ends inside end-of-contents", pos)
                    if data[pos + 1] != 0:
                        raise BERError("end-of-contents with a non-zero length octet", pos)
                    pos += 2
            else:
                done = pos == top.end
            if done:
                stack.pop()
                element = Element(top.cls, True, top.tag, tuple(top.children), top.offset)
                if not stack:
                    return element, pos
                stack[-1].children.append(element)
                continue
            bound, bound_what = top.bound, top.bound_what
        else:
            bound, bound_what = max_length, f"max_length ({max_length} bytes)"

        offset = pos
        cls, constructed, tag, length, start = _header(data, pos, bound, bound_what)
        count += 1
        if count > max_elements:
            raise BERError(f"more than max_elements ({max_elements}) elements", offset)
        if length is not None:
            end = start + length
            if end > bound:
                raise BERError(f"length {length} runs past {bound_what}", offset)
            if end > len(data):
                raise Truncated(f"input ends inside an element of length {length}", offset)
        else:
            end = None
        if constructed:
            if len(stack) >= max_depth:
                raise BERError(f"nesting deeper than max_depth ({max_depth})", offset)
            if end is None:
                stack.append(_Frame(cls, tag, offset, None, bound, bound_what))
            else:
                stack.append(_Frame(cls, tag, offset, end, end, "the end of the enclosing element"))
            pos = start
            continue
        element = Element(cls, False, tag, data[start:end], offset)
        pos = end  # type: ignore[assignment]
        if not stack:
            return element, pos
        stack[-1].children.append(element)


def decode_all(data: bytes | bytearray | memoryview, **limits: int) -> Element:
    """Decode exactly one element that must fill ``data``."""
    element, used = decode(data, **limits)
    if used != len(data):
        raise BERError(f"{len(data) - used} bytes after the element", used)
    return element


class Framer:
    """Cut a byte stream into complete top-level elements (one Z39.50 APDU each).

    ``feed(chunk)`` returns the bytes of every element completed so far (possibly
    none) and keeps the rest.  Only the framing is checked here -- identifier and
    length octets, and for an indefinite-length top-level element the headers
    inside it down to the matching end-of-contents; decode each frame to validate
    it fully.  A definite length beyond ``max_length`` is refused as soon as the
    length octets are in, before the content is buffered.  After a BERError the
    stream is unusable and every later ``feed`` raises the same error.

    ``accept(cls, constructed, tag)`` may refuse a top-level tag early (e.g.
    anything that is not a Z39.50 APDU), which catches a peer speaking another
    protocol at its first bytes instead of after a bogus length.
    """

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH, max_depth: int = DEFAULT_MAX_DEPTH,
                 max_elements: int = DEFAULT_MAX_ELEMENTS,
                 accept: Callable[[int, bool, int], bool] | None = None):
        _check_limits(max_length, max_depth, max_elements)
        self.max_length, self.max_depth, self.max_elements = max_length, max_depth, max_elements
        self.accept = accept
        self._buf = bytearray()
        self._need = 2
        self._scan: tuple[int, int, int] | None = None   # indefinite element: (pos, depth, count)
        self._error: BERError | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a complete element."""
        return len(self._buf)

    def need(self) -> int:
        """A lower bound on the bytes still missing before the next element is
        complete (exact once a definite length has been read)."""
        return self._need

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Buffer ``chunk``; return the elements it completed, in order.  If the
        chunk holds garbage after complete elements, the error wins and those
        elements are not returned (the connection is to be dropped anyway)."""
        if self._error is not None:
            raise self._error
        if not self._buf and self._scan is None and type(chunk) is bytes:
            # the usual read: exactly one whole definite-length element, returned as it
            # came (no copy through the buffer); anything else takes the general way
            try:
                cls, constructed, tag, length, start = _header(chunk, 0, self.max_length, "")
            except (Truncated, BERError):
                pass
            else:
                if (length is not None and start + length == len(chunk) <= self.max_length
                        and (self.accept is None or self.accept(cls, constructed, tag))):
                    self._need = 2
                    return [chunk]
        self._buf += chunk
        frames: list[bytes] = []
        try:
            while self._buf:
                end = self._frame_end()
                if end is None:
                    break
                frames.append(bytes(self._buf[:end]))
                del self._buf[:end]
                self._scan = None
            if not self._buf:
                self._need = 2
        except BERError as exc:
            self._error = exc
            raise
        return frames

    def _frame_end(self) -> int | None:
        """Length of the complete element at the head of the buffer, or None."""
        buf = self._buf
        if self._scan is not None:
            return self._scan_indefinite()
        limit_what = f"max_length ({self.max_length} bytes)"
        try:
            cls, constructed, tag, length, start = _header(buf, 0, self.max_length, limit_what)
        except Truncated:
            self._need = 1
            return None
        if self.accept is not None and not self.accept(cls, constructed, tag):
            raise BERError(f"unexpected top-level element [{_CLASS_NAMES[cls]} {tag}]", 0)
        if length is None:
            self._scan = (start, 1, 1)
            return self._scan_indefinite()
        end = start + length
        if end > self.max_length:
            raise BERError(f"length {length} runs past {limit_what}", 0)
        if end > len(buf):
            self._need = end - len(buf)
            return None
        return end

    def _scan_indefinite(self) -> int | None:
        """Resume walking an indefinite-length top-level element: descend into
        indefinite-length children, skip definite-length ones whole, stop at the
        end-of-contents that closes the top level."""
        buf = self._buf
        pos, depth, count = self._scan  # type: ignore[misc]
        limit_what = f"max_length ({self.max_length} bytes)"
        try:
            while True:
                if pos < len(buf) and buf[pos] == 0:
                    if pos + 1 >= self.max_length:
                        raise BERError(f"end-of-contents runs past {limit_what}", pos)
                    if pos + 1 >= len(buf):
                        raise Truncated("input ends inside end-of-contents", pos)
                    if buf[pos + 1] != 0:
                        raise BERError("end-of-contents with a non-zero length octet", pos)
                    pos += 2
                    depth -= 1
                    if depth == 0:
                        return pos
                    continue
                _cls, _constructed, _tag, length, start = _header(buf, pos, self.max_length, limit_what)
                if count + 1 > self.max_elements:
                    raise BERError(f"more than max_elements ({self.max_elements}) elements", pos)
                if length is None:
                    if depth + 1 > self.max_depth:
                        raise BERError(f"nesting deeper than max_depth ({self.max_depth})", pos)
                    depth, count, pos = depth + 1, count + 1, start
                    continue
                end = start + length
                if end > self.max_length:
                    raise BERError(f"length {length} runs past {limit_what}", pos)
                if end > len(buf):
                    raise Truncated("element not complete", pos)
                count, pos = count + 1, end
        except Truncated:
            self._scan = (pos, depth, count)
            self._need = 1
            return None


# ---------------------------------------------------------------------------
# Encoding

def _check_tag(cls: int, tag: int) -> None:
    if cls not in (UNIVERSAL, APPLICATION, CONTEXT, PRIVATE):
        raise ValueError(f"tag class must be 0..3, not {cls!r}")
    if not 0 <= tag < 1 << (7 * MAX_TAG_OCTETS) or (cls == UNIVERSAL and tag == 0):
        raise ValueError(f"tag number {tag!r} cannot be encoded")


def enc_tag(cls: int, constructed: bool, tag: int) -> bytes:
    """Identifier octets (8.1.2): one octet for tag numbers 0..30, otherwise
    0x1F followed by the number in base 128, most significant group first."""
    hit = _ONE_OCTET_TAGS.get((cls, constructed, tag))
    if hit is not None:
        return hit
    _check_tag(cls, tag)
    lead = (cls << 6) | (0x20 if constructed else 0)
    if tag < 31:
        return bytes([lead | tag])
    groups = []
    while True:
        groups.append(tag & 0x7F)
        tag >>= 7
        if not tag:
            break
    groups.reverse()
    return bytes([lead | 0x1F] + [g | 0x80 for g in groups[:-1]] + [groups[-1]])


def enc_length(n: int) -> bytes:
    """Definite length octets (8.1.3): short form below 128, else the long form
    with the fewest octets."""
    if 0 <= n < 0x80:
        return _SHORT_LENGTHS[n]
    if n < 0:
        raise ValueError("negative length")
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(body) > MAX_LENGTH_OCTETS:
        raise ValueError(f"length {n} needs more than {MAX_LENGTH_OCTETS} length octets")
    return bytes([0x80 | len(body)]) + body


def enc_tlv(cls: int, constructed: bool, tag: int, content: bytes) -> bytes:
    # the common case inline: a one-octet tag (cached) and the short length form
    head = _ONE_OCTET_TAGS.get((cls, constructed, tag))
    if head is None:
        head = enc_tag(cls, constructed, tag)
    n = len(content)
    return head + (_SHORT_LENGTHS[n] if n < 0x80 else enc_length(n)) + (
        content if type(content) is bytes else bytes(content))


# Identifier octets of every valid one-octet tag (keyed also by 0/1 for the form:
# True == 1 and False == 0 as dict keys), and the short-form length octets.
_ONE_OCTET_TAGS: dict[tuple[int, int, int], bytes] = {
    (c, f, t): bytes([(c << 6) | (0x20 if f else 0) | t])
    for c in (UNIVERSAL, APPLICATION, CONTEXT, PRIVATE) for f in (False, True) for t in range(31)
    if not (c == UNIVERSAL and t == 0)}
_SHORT_LENGTHS = tuple(bytes([n]) for n in range(0x80))


def int_content(n: int) -> bytes:
    """Minimal two's-complement content octets of an INTEGER (8.3.2)."""
    return n.to_bytes((n + (n < 0)).bit_length() // 8 + 1, "big", signed=True)


def oid_content(oid: str) -> bytes:
    """Content octets of an OBJECT IDENTIFIER given as a dotted string (8.19)."""
    hit = _OID_CACHE.get(oid) if type(oid) is str else None
    if hit is not None:
        return hit
    out = _oid_content(oid)
    if len(_OID_CACHE) < 1024:        # the few OIDs a server sends (record syntaxes, Bib-1, ...)
        _OID_CACHE[oid] = out
    return out


_OID_CACHE: dict[str, bytes] = {}


def _oid_content(oid: str) -> bytes:
    try:
        if not oid or not all(part.isascii() and part.isdigit() for part in oid.split(".")):
            raise ValueError
        arcs = [int(part) for part in oid.split(".")]
    except (ValueError, AttributeError):
        raise ValueError(f"not a dotted OBJECT IDENTIFIER: {oid!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"OBJECT IDENTIFIER {oid!r} breaks the first-two-arcs rule (X.660)")
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1]] + arcs[2:]:
        groups = [arc & 0x7F]
        arc >>= 7
        while arc:
            groups.append((arc & 0x7F) | 0x80)
            arc >>= 7
        if len(groups) > MAX_OID_ARC_OCTETS:
            raise ValueError(f"OBJECT IDENTIFIER arc longer than {MAX_OID_ARC_OCTETS} octets")
        out += bytes(reversed(groups))
    return bytes(out)


def bits_content(bits: Iterable[bool | int]) -> bytes:
    """Content octets of a BIT STRING (8.6): the unused-bits count, then the
    bits packed from the most significant end, unused trailing bits zero."""
    bits = [bool(b) for b in bits]
    out = bytearray([(-len(bits)) % 8])
    for i in range(0, len(bits), 8):
        octet = 0
        for k, bit in enumerate(bits[i:i + 8]):
            if bit:
                octet |= 0x80 >> k
        out.append(octet)
    return bytes(out)


def enc_int(tag: int, n: int, cls: int = CONTEXT) -> bytes:
    """INTEGER under ``[cls tag] IMPLICIT`` (universal INTEGER: ``enc_int(INTEGER, n, UNIVERSAL)``)."""
    return enc_tlv(cls, False, tag, int_content(n))


def enc_enum(tag: int, n: int, cls: int = CONTEXT) -> bytes:
    """ENUMERATED (8.4): encoded as the INTEGER value."""
    return enc_tlv(cls, False, tag, int_content(n))


def enc_bool(tag: int, value: bool, cls: int = CONTEXT) -> bytes:
    return enc_tlv(cls, False, tag, b"\xff" if value else b"\x00")


def enc_null(tag: int, cls: int = CONTEXT) -> bytes:
    return enc_tlv(cls, False, tag, b"")


def enc_octets(tag: int, value: bytes, cls: int = CONTEXT) -> bytes:
    """Primitive OCTET STRING (segmented form is never produced)."""
    return enc_tlv(cls, False, tag, value)


def enc_str(tag: int, value: str | bytes, cls: int = CONTEXT, encoding: str = "utf-8") -> bytes:
    """A character string (GeneralString, VisibleString, ...) as a primitive
    element; ``str`` is encoded with ``encoding``, ``bytes`` go as they are."""
    return enc_tlv(cls, False, tag, value.encode(encoding) if isinstance(value, str) else value)


def enc_oid(tag: int, oid: str, cls: int = CONTEXT) -> bytes:
    return enc_tlv(cls, False, tag, oid_content(oid))


def enc_bits(tag: int, bits: Iterable[bool | int], cls: int = CONTEXT) -> bytes:
    return enc_tlv(cls, False, tag, bits_content(bits))


def enc_seq(tag: int, children: Iterable[bytes], cls: int = CONTEXT) -> bytes:
    """A constructed element whose content is the already-encoded ``children``
    (SEQUENCE, SET, IMPLICIT-tagged sequences, EXTERNAL...)."""
    return enc_tlv(cls, True, tag, b"".join(children))


def enc_explicit(tag: int, inner: bytes, cls: int = CONTEXT) -> bytes:
    """An EXPLICIT tag (8.14): a constructed wrapper around one encoding."""
    return enc_tlv(cls, True, tag, inner)


def encode(element: Element) -> bytes:
    """Re-encode a decoded (or hand-built) Element in the definite form; a
    decoded element round-trips to the same tree.  Iterative, like decode."""
    # Post-order walk: each stack entry is (element, encoded children so far).
    stack: list[tuple[Element, list[bytes]]] = [(element, [])]
    result = b""
    while stack:
        el, done = stack[-1]
        if el.constructed and len(done) < len(el.value):
            stack.append((cast("tuple[Element, ...]", el.value)[len(done)], []))
            continue
        stack.pop()
        if el.constructed:
            out = enc_tlv(el.cls, True, el.tag, b"".join(done))
        else:
            if not isinstance(el.value, (bytes, bytearray)):
                raise TypeError("a primitive Element needs bytes as its value")
            out = enc_tlv(el.cls, False, el.tag, el.value)
        if stack:
            stack[-1][1].append(out)
        else:
            result = out
    return result
