"""What every APDU module shares: the APDU choice tags, the tags common to
several APDUs (referenceId, otherInfo), and the small readers and writers of
SEQUENCE components (``_Fields`` walks a SEQUENCE's components in order)."""
from __future__ import annotations

from ..ber import CONTEXT, BERError, Element, enc_str

# APDU choice tags (context class, constructed)
INIT_REQUEST = 20
INIT_RESPONSE = 21
SEARCH_REQUEST = 22
SEARCH_RESPONSE = 23
PRESENT_REQUEST = 24
PRESENT_RESPONSE = 25
DELETE_RESULT_SET_REQUEST = 26
DELETE_RESULT_SET_RESPONSE = 27
SCAN_REQUEST = 35
SCAN_RESPONSE = 36
SORT_REQUEST = 43
SORT_RESPONSE = 44
CLOSE = 48
FIRST_APDU_TAG, LAST_APDU_TAG = 20, 50   # initRequest .. duplicateDetectionResponse

# Tags used by more than one APDU
_REFERENCE_ID = 2               # ReferenceId ::= [2] IMPLICIT OCTET STRING
_OTHER_INFO = 201               # OtherInformation ::= [201] IMPLICIT SEQUENCE OF ...


def is_apdu_tag(tag: int) -> bool:
    return FIRST_APDU_TAG <= tag <= LAST_APDU_TAG


def _opt_str(tag: int, value: str | None, encoding: str) -> bytes:
    return b"" if value is None else enc_str(tag, value, CONTEXT, encoding)


class _Fields:
    """Walk the components of a SEQUENCE in order, taking optional ones if their
    tag is next; whatever is left at the end is an error."""

    def __init__(self, seq: Element, what: str):
        self.items, self.i, self.seq, self.what = seq.children, 0, seq, what

    def opt(self, cls: int, tag: int) -> Element | None:
        if self.i < len(self.items) and self.items[self.i].is_(cls, tag):
            self.i += 1
            return self.items[self.i - 1]
        return None

    def req(self, cls: int, tag: int, name: str) -> Element:
        element = self.opt(cls, tag)
        if element is None:
            at = self.items[self.i].offset if self.i < len(self.items) else self.seq.offset
            raise BERError(f"{self.what}: {name} missing", at)
        return element

    def end(self) -> None:
        if self.i < len(self.items):
            extra = self.items[self.i]
            raise BERError(f"{self.what}: unexpected {extra.describe()}", extra.offset)


def _explicit_inner(element: Element) -> Element:
    """The single encoding inside an EXPLICIT tag."""
    if len(element.children) != 1:
        raise BERError(f"explicit tag {element.describe()} with {len(element.children)} elements inside",
                       element.offset)
    return element.children[0]


def _opt_text(element: Element | None, encoding: str) -> str | None:
    return None if element is None else element.as_text(encoding)

