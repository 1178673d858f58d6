"""The structure of one ISO 2709 record: leader, directory, field terminators.

``check_structure(rec)`` checks the leader and directory of one framed record
and returns its ``Layout`` (or raises ``Bad`` with a specific reason: these are
the cases where the ISO 2709 reader tries another framing); ``field_checks`` and
``stray_ft`` look closer at the fields in the unusual cases; ``where`` names the
field a byte position falls in, for reasons.  Pure functions on bytes.
"""
from __future__ import annotations

import re

from .marc_items import Bad, show

__all__ = ["Layout", "check_structure", "field_checks", "stray_ft", "where", "build_iso", "FT", "RT", "ESC"]

FT = 0x1E  # field terminator
RT = 0x1D  # record terminator
ESC = 0x1B

# Directory entries: 3-character tag (printable ASCII), 4-digit length, 5-digit start.
_ENTRY_RE = re.compile(rb"([\x21-\x7e]{3})([0-9]{4})([0-9]{5})")
_ENTRY2_RE = re.compile(rb"([\x21-\x7e]{3})([0-9]{9})")
_TAGS_OK = re.compile(rb"(?:[0-9A-Za-z]{3}[0-9]{9})*")
_LEADER_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def field_at(entries, pos: int) -> tuple[str, int]:
    """(tag, byte offset within the field) of absolute record position pos."""
    for tag, start, end in entries:
        if start <= pos < end:
            return tag, pos - start
    return "", -1


def where(entries, pos: int) -> str:
    tag, off = field_at(entries, pos)
    if not tag:
        return f"at byte {pos} of the record"
    return f"in field {tag} at byte {off}"


class Layout:
    """Result of the structure check of one ISO 2709 record."""

    __slots__ = ("rec", "base", "nent", "odd", "ctl", "_entries")

    def __init__(self, rec: bytes, base: int, nent: int, odd: bool, ctl: bool, entries=None):
        self.rec = rec
        self.base = base
        self.nent = nent
        self.odd = odd  # some data field lacks the usual 2 indicators + subfield layout
        self.ctl = ctl  # some control field holds a 0x1F
        self._entries = entries

    @property
    def entries(self) -> list[tuple[str, int, int]]:
        """(tag, start, end) of every directory entry; end is one past the field terminator."""
        if self._entries is None:
            rec, base = self.rec, self.base
            self._entries = [
                (tag.decode("ascii"), base + int(lo[4:]), base + int(lo[4:]) + int(lo[:4]))
                for tag, lo in _ENTRY2_RE.findall(rec, 24, base - 1)
            ]
        return self._entries



def check_structure(rec: bytes) -> Layout:
    """Check the leader and directory of one framed record.

    Raises Bad with a specific reason when the record's structure is broken
    (these are the cases where the reader tries another framing).
    """
    n = len(rec)
    if n < 26:
        raise Bad(f"record too short ({n} bytes)")
    if not rec[:24].isascii():
        raise Bad(f"leader contains non-ASCII bytes: {show(rec[:24])}")
    m = _LEADER_CONTROL.search(rec, 0, 24)
    if m is not None:
        raise Bad(f"stray control character U+{rec[m.start()]:04X} in the leader at byte {m.start()}")
    basefield = rec[12:17]
    if not basefield.isdigit():
        raise Bad(f"base address of data is not numeric: {show(basefield)}")
    base = int(basefield)
    if base < 25 or base >= n:
        raise Bad(f"base address of data {base} is outside the record ({n} bytes)")
    if rec[base - 1] != FT:
        raise Bad(f"bad directory: no field terminator before the base address {base}")
    dlen = base - 25
    if dlen % 12:
        raise Bad(f"bad directory: length {dlen} is not a multiple of 12")
    if dlen == 0:
        raise Bad("bad directory: no fields")
    ents = _ENTRY2_RE.findall(rec, 24, base - 1)
    nent = dlen // 12
    if len(ents) != nent:  # (nent matches inside 12 * nent bytes cover them exactly)
        for i in range(nent):
            entry = rec[24 + 12 * i : 36 + 12 * i]
            if _ENTRY_RE.fullmatch(entry) is None:
                raise Bad(f"bad directory: entry {i + 1} is malformed: {show(entry)}")
        raise Bad("bad directory: malformed entries")
    if _TAGS_OK.fullmatch(rec, 24, base - 1) is None:
        # MARC tags are letters and digits (as MARCXML's schema says); anything else
        # in a tag is a damaged directory, not a field to keep
        for i, (tag, _lo) in enumerate(ents, 1):
            if not tag.isalnum():
                raise Bad(f"bad directory: entry {i} has a malformed tag {show(tag)}")
    # Fast path: fields stored in directory order, contiguous, each ending at
    # the only field terminator it contains.
    parts = rec[base : n - 1].split(b"\x1e")
    if len(parts) == nent + 1 and not parts[-1]:
        o = 0
        odd = ctl = False
        for (tag, lo), p in zip(ents, parts):
            lp = len(p) + 1
            if int(lo) != lp * 100000 + o:
                break
            o += lp
            if tag < b"010":
                if b"\x1f" in p and tag.isdigit():
                    ctl = True
            elif p[2:3] != b"\x1f" and len(p) != 2:
                odd = True
        else:
            return Layout(rec, base, nent, odd, ctl)
    # General path: any order, any layout; every entry must still end at a
    # field terminator inside the record, and the fields must cover the data
    # exactly: no byte in two fields, none in no field (either would change what
    # the record says without a trace).
    entries = []
    data_end = n - 1
    last = 0
    odd = ctl = False
    for i, (tag, lo) in enumerate(ents, 1):
        ln = int(lo[:4])
        s = base + int(lo[4:])
        e = s + ln
        tag = tag.decode("ascii")
        if ln == 0:
            raise Bad(f"bad directory: entry {i} (field {tag}) has length 0")
        if e > data_end:
            raise Bad(f"bad directory: entry {i} (field {tag}) points past end of record")
        if rec[e - 1] != FT:
            raise Bad(f"bad directory: entry {i} (field {tag}) does not end at a field terminator")
        if e > last:
            last = e
        if tag < "010" and tag.isdigit():
            if rec.find(b"\x1f", s, e) >= 0:
                ctl = True
        elif ln != 3 and rec[s + 2 : s + 3] != b"\x1f":
            odd = True
        entries.append((tag, s, e))
    if last != data_end:
        raise Bad(f"bad directory: fields end at byte {last} but the record data ends at byte {data_end}")
    at = base
    for s, e, i, tag in sorted((s, e, i, tag) for i, (tag, s, e) in enumerate(entries, 1)):
        if s < at:
            raise Bad(f"bad directory: entry {i} (field {tag}) overlaps another field")
        if s > at:
            raise Bad(f"bad directory: {s - at} bytes of data before entry {i} (field {tag}) belong to no field")
        at = e
    return Layout(rec, base, nent, odd, ctl, entries)


def field_checks(rec: bytes, lay: Layout, warnings: list[str]) -> None:
    """Per-field checks for the unusual cases: raises Bad for a 0x1F inside a
    control field, non-ASCII indicators or more than two bytes before a data
    field's first subfield; notes missing indicators or a single one."""
    for tag, s, e in lay.entries:
        if tag < "010" and tag.isdigit():
            k = rec.find(b"\x1f", s, e - 1)
            if k >= 0:
                raise Bad(f"stray control character U+001F in field {tag} at byte {k - s}")
            continue
        k = rec.find(b"\x1f", s, e - 1)
        ind = rec[s : (k if k >= 0 else e - 1)]
        if not ind.isascii():
            raise Bad(f"non-ASCII indicators in field {tag}: {show(ind)}")
        if len(ind) > 2:
            # a subfield delimiter is missing or damaged: decoding would drop the text
            raise Bad(f"field {tag}: {len(ind)} bytes before the first subfield ({show(ind[:40])}), "
                      "expected 2 indicators")
        if len(ind) != 2:
            if len(ind) == 0:
                warnings.append(f"field {tag}: missing indicators")
            else:
                warnings.append(f"field {tag}: expected 2 indicators, found {len(ind)} ({show(ind)})")


def stray_ft(rec: bytes, lay: Layout) -> int:
    """Position of the first field terminator that ends no field (-1: none)."""
    ends = {e - 1 for _t, _s, e in lay.entries}
    k = rec.find(b"\x1e", lay.base, len(rec) - 1)
    while k >= 0 and k in ends:
        k = rec.find(b"\x1e", k + 1, len(rec) - 1)
    return k


def build_iso(fields: list[tuple[str, bytes]], leader9: bytes = b"a") -> bytes:
    """A well-formed ISO 2709 record of (tag, field bytes without terminator) pairs."""
    directory = b""
    data = b""
    for tag, value in fields:
        value = value + b"\x1e"
        directory += tag.encode() + b"%04d%05d" % (len(value), len(data))
        data += value
    base = 24 + len(directory) + 1
    total = base + len(data) + 1
    leader = b"%05dnam %s22%05d   4500" % (total, leader9, base)
    return leader + directory + b"\x1e" + data + b"\x1d"
