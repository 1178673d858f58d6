"""Which character set an ISO 2709 record is in, and MARC-8.

``decode_record`` decides how to read a record whose structure was checked:
leader/09 ``a`` means UTF-8, blank means MARC-8 (converted with pymarc's MARC-8
converter, EACC CJK included).  Leaders lie: a UTF-8-flagged record that is not
valid UTF-8 but is MARC-8 beyond doubt (every control field ASCII, nothing the
converter would drop: a damaged UTF-8 record is far more likely) is read as
MARC-8, and a MARC-8-flagged record that has no escape sequences, has bytes >=
0x80 and is valid UTF-8 is read as UTF-8; both with a warning.  A record that is
neither is a ``Bad`` one.

``marc8_check`` walks one subfield's MARC-8 bytes the way pymarc's converter
reads them, so that a record the converter would garble is refused with the
byte and the reason instead.
"""
from __future__ import annotations

import re

import pymarc
from pymarc import marc8_mapping

from .marc_decoder import decode_utf8
from .marc_items import TEXT_STRAY, Bad, char_name, new_record
from .marc_structure import ESC, Layout, field_checks, stray_ft, where

__all__ = ["decode_record", "marc8_check", "marc8_problem", "decode_marc8"]

# Stray bytes in the data area of a MARC-8 record (ESC is legitimate there).
_MARC8_STRAY = re.compile(rb"[\x00-\x1a\x1c\x1d\x7f]")
_CODESETS = marc8_mapping.CODESETS
_ODD_MAP = marc8_mapping.ODD_MAP
_EACC = 0x31
_MARC8_DROPPED = {0x88: "non-sort begin", 0x89: "non-sort end", 0x8D: "joiner", 0x8E: "non-joiner"}


def decode_record(rec: bytes, lay: Layout, warnings: list[str], rmarc) -> tuple[pymarc.Record, str]:
    """(record, encoding) of a structurally checked record; ``rmarc``: the UTF-8
    field decoder to use (marc_decoder.get_rmarc() or None).  Raises Bad."""
    n = len(rec)
    base = lay.base
    leader = rec[:24].decode("ascii")  # checked in check_structure
    leader9 = leader[9]
    if lay.ctl or lay.odd:
        field_checks(rec, lay, warnings)  # raises for 0x1F in a control field
    if rec.count(b"\x1e", base, n - 1) != lay.nent:
        k = stray_ft(rec, lay)
        raise Bad(f"stray control character U+001E {where(lay.entries, k)}")

    ascii_only = rec.isascii()
    if leader9 == "a" or (ascii_only and rec.find(b"\x1b") < 0):
        utf8_err = None
        if not ascii_only:
            try:
                rec.decode("utf-8")
            except UnicodeDecodeError as exc:
                utf8_err = exc.start
        if utf8_err is None:
            if leader9 == "a":
                encoding = "utf-8"
            elif leader9 == " ":
                encoding = "marc-8"  # plain ASCII: MARC-8 and UTF-8 agree
            else:
                warnings.append(f"leader/09 is {leader9!r} (undefined); the record is plain ASCII")
                encoding = f"utf-8 (leader/09 is {leader9!r})"
            return decode_utf8(rec, lay, warnings, leader, rmarc), encoding
        # leader says UTF-8 but it is not: MARC-8 if it is MARC-8 beyond doubt
        utf8_problem = f"invalid UTF-8 {where(lay.entries, utf8_err)}"
        m8_notes: list[str] = []
        m8_problem = marc8_problem(rec, lay, m8_notes)
        if m8_problem is None and _MARC8_STRAY.search(rec, base, n - 1) is not None:
            m8_problem = "control characters"
        if m8_problem is None:
            m8_problem = _marc8_doubt(rec, lay, m8_notes)
        if m8_problem is None:
            warnings.append(
                f"leader/09 says UTF-8 but the record is not valid UTF-8 ({utf8_problem}); decoded as MARC-8"
            )
            record = decode_marc8(rec, lay, warnings, leader)
            return record, "marc-8 (leader says utf-8)"
        raise Bad(f"invalid characters: {utf8_problem}; not valid MARC-8 either ({m8_problem})")

    # leader says MARC-8 (blank) or something undefined
    has_esc = rec.find(b"\x1b", base) >= 0
    if not has_esc:
        try:
            rec.decode("utf-8")
            valid_utf8 = True
        except UnicodeDecodeError:
            valid_utf8 = False
        if valid_utf8:
            if leader9 == " ":
                warnings.append(
                    "leader/09 says MARC-8 but the record has no escape sequences and is valid UTF-8; "
                    "decoded as UTF-8"
                )
                encoding = "utf-8 (leader says marc-8)"
            else:
                warnings.append(f"leader/09 is {leader9!r} (undefined); record is valid UTF-8, decoded as UTF-8")
                encoding = f"utf-8 (leader/09 is {leader9!r})"
            return decode_utf8(rec, lay, warnings, leader, rmarc), encoding
    m = _MARC8_STRAY.search(rec, base, n - 1)
    if m is not None:
        raise Bad(f"stray control character U+{m.group()[0]:04X} {where(lay.entries, m.start())}")
    m8_problem = marc8_problem(rec, lay, warnings)
    if m8_problem is not None:
        if leader9 == " ":
            raise Bad(f"invalid characters: not valid MARC-8 ({m8_problem})")
        raise Bad(
            f"invalid characters: leader/09 is {leader9!r} and the record is neither UTF-8 "
            f"nor MARC-8 ({m8_problem})"
        )
    if leader9 != " ":
        warnings.append(f"leader/09 is {leader9!r} (undefined); decoded as MARC-8")
        encoding = f"marc-8 (leader/09 is {leader9!r})"
    else:
        encoding = "marc-8"
    return decode_marc8(rec, lay, warnings, leader), encoding


def _marc8_doubt(rec: bytes, lay: Layout, notes: list[str]) -> str | None:
    """Why a record that says UTF-8 but is not should not be read as MARC-8 either,
    or None.  Such a record is far more often UTF-8 with a damaged byte than MARC-8
    under a lying leader, so MARC-8 must fit without any loss: every control field
    ASCII (MARC-8 control fields are; a damaged byte there would be read as
    Latin-1) and nothing the converter would drop (a UTF-8 continuation byte
    0x88, 0x89, 0x8D or 0x8E is a MARC-8 non-sort mark or joiner)."""
    for tag, s, e in lay.entries:
        if tag < "010" and tag.isdigit() and not rec[s:e].isascii():
            k = next(i for i in range(s, e) if rec[i] >= 0x80)
            return f"non-ASCII byte 0x{rec[k]:02X} in control field {tag} at byte {k - s}"
    if notes:
        return notes[0]
    return None


def decode_marc8(rec: bytes, lay: Layout, warnings: list[str], leader: str) -> pymarc.Record:
    """The fields of a MARC-8 record converted to Unicode (checked with marc8_problem first)."""
    n = len(rec)
    data = rec if rec[:5].isdigit() and int(rec[:5]) <= n else b"00000" + rec[5:]
    # leader/09 must be blank for pymarc to use its MARC-8 converter
    data = data[:9] + b" " + data[10:]
    r = pymarc.Record(data=data, to_unicode=True, force_utf8=False, hide_utf8_warnings=True)
    for f in r.fields:
        if f.control_field:
            text = f.data or ""
            if not text.isascii():
                warnings.append(f"control field {f.tag} of a MARC-8 record has non-ASCII bytes (read as Latin-1)")
            m = TEXT_STRAY.search(text)
            if m:
                raise Bad(f"stray control character {char_name(m.group())} in field {f.tag}")
        else:
            for sf in f.subfields:
                m = TEXT_STRAY.search(sf.value)
                if m:
                    raise Bad(
                        f"stray control character {char_name(m.group())} in field {f.tag} "
                        f"subfield ${sf.code} after MARC-8 conversion"
                    )
    return new_record(leader, r.fields)


def marc8_check(data: bytes, warnings: list[str] | None = None) -> tuple[int, str] | None:
    """Check one subfield's MARC-8 bytes the way pymarc's converter reads them.

    Returns None if every byte sequence is an escape sequence or a mapped
    character, else (byte offset, problem).  Appends notes about characters
    pymarc's converter silently drops to ``warnings``.
    """
    g0, g1 = 0x42, 0x45
    i, n = 0, len(data)
    pending_combining = False
    while i < n:
        b = data[i]
        if b == ESC:
            nb = data[i + 1] if i + 1 < n else -1
            if nb in (0x28, 0x2C, 0x24):  # ( , $  -> G0
                j = i
                if nb == 0x24 and i + 2 < n and data[i + 2] == 0x2C:
                    j += 1
                if j + 2 >= n:
                    return i, "incomplete escape sequence"
                final = data[j + 2]
                if nb == 0x24 and final in (0x29, 0x2D):
                    return i, "unsupported escape sequence (multibyte G1 designation)"
                if final not in _CODESETS:
                    return i, f"escape sequence to unknown character set 0x{final:02X}"
                g0 = final
                i = j + 3
                continue
            if nb in (0x29, 0x2D):  # ) -  -> G1
                if i + 2 >= n:
                    return i, "incomplete escape sequence"
                final = data[i + 2]
                if final not in _CODESETS:
                    return i, f"escape sequence to unknown character set 0x{final:02X}"
                g1 = final
                i += 3
                continue
            if nb in _CODESETS:
                g0 = nb
                i += 2
                continue
            if nb == 0x73:  # ESC s: back to ASCII
                g0 = 0x42
                i += 2
                continue
            return i, "invalid escape sequence" if nb >= 0 else "escape at end of subfield"
        if g0 == _EACC:
            if i + 3 > n:
                return i, "truncated multibyte (EACC) character"
            cp = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2]
            entry = _CODESETS[_EACC].get(cp)
            if entry is None:
                if cp not in _ODD_MAP:
                    return i, f"unmapped EACC character 0x{cp:06X}"
            elif entry[1]:
                pending_combining = True
            else:
                pending_combining = False
            i += 3
            continue
        if b < 0x20:
            return i, f"control character 0x{b:02X}"
        if 0x80 <= b < 0xA0:
            if b in _MARC8_DROPPED and warnings is not None:
                warnings.append(f"MARC-8 {_MARC8_DROPPED[b]} character 0x{b:02X} dropped by the converter")
                i += 1
                continue
            return i, f"control character 0x{b:02X}"
        table = _CODESETS[g1] if b > 0x80 else _CODESETS[g0]
        entry = table.get(b)
        if entry is None:
            if b not in _ODD_MAP and b != 0x20:
                return i, f"unmapped MARC-8 character 0x{b:02X}"
        elif entry[1]:
            pending_combining = True
        else:
            pending_combining = False
        i += 1
    if pending_combining and warnings is not None:
        warnings.append("MARC-8 combining character at end of subfield dropped by the converter")
    return None


def marc8_problem(rec: bytes, lay: Layout, warnings) -> str | None:
    """The first MARC-8 problem in the data fields of a record, said with field and byte, or None."""
    for tag, s, e in lay.entries:
        if tag < "010" and tag.isdigit():
            continue
        # walk the subfields of the data field
        k = rec.find(b"\x1f", s, e - 1)
        while k >= 0:
            nxt = rec.find(b"\x1f", k + 1, e - 1)
            chunk_end = nxt if nxt >= 0 else e - 1
            value = rec[k + 2 : chunk_end]
            if value:
                problem = marc8_check(value, warnings)
                if problem is not None:
                    at, what = problem
                    return f"{what} in field {tag} at byte {k + 2 + at - s}"
            k = nxt
    return None
