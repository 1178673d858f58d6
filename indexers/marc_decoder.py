"""Decoding the fields of UTF-8 ISO 2709 records: rmarc when it is verified, else pymarc.

rmarc (a Rust implementation of pymarc's decoder, the ``fast`` extra) is used
only when it is importable and passes a start-up self-check that its output
equals pymarc's on sample records (Japanese text, an empty subfield, a field
with indicators only, a non-numeric tag); ``UNIONCAT_NO_RMARC`` turns it off.
Records with an unusual field layout (odd indicator counts, non-ASCII subfield
codes) always go through pymarc, whose handling of them rmarc does not share.

``decode_utf8`` decodes a record whose structure was checked
(``marc_structure.check_structure``) and rejects stray control characters first;
``decode_stored`` is the fast path for records this project stored itself.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable

import pymarc

from .marc_items import Bad, char_name, field_key, new_record
from .marc_structure import Layout, build_iso, field_checks, where

__all__ = ["get_rmarc", "rmarc_available", "decode_stored", "decode_utf8"]

# Stray characters in the data area of a UTF-8 record: C0 controls except the
# structural 0x1E/0x1F (checked separately), DEL, and C1 controls (UTF-8 C2 80..C2 9F).
_UTF8_STRAY = re.compile(rb"[\x00-\x1d\x7f]|\xc2[\x80-\x9f]")
_UTF8_C1 = re.compile(rb"\xc2[\x80-\x9f]")
# bytes.translate table for a fast scan: stray C0 controls and DEL become 0x00
_CTRL_TABLE = bytes(0 if (b < 0x1E or b == 0x7F) else 1 for b in range(256))
_SUBFIELD_CODE_NONASCII = re.compile(rb"\x1f[\x80-\xff]")

# ---------------------------------------------------------------------------
# rmarc (optional, verified against pymarc)

_rmarc_decode = None
_rmarc_checked = False


def _self_test_samples() -> list[bytes]:
    recs = []
    r = pymarc.Record(force_utf8=True, leader="00000nam a2200000 i 4500")
    r.add_field(pymarc.Field(tag="001", data="sample-1"))
    r.add_field(pymarc.Field(tag="008", data="200101s2020    ja            000 0 jpn d"))
    r.add_field(
        pymarc.Field(
            tag="245",
            indicators=pymarc.Indicators("1", "0"),
            subfields=[
                pymarc.Subfield("6", "880-01"),
                pymarc.Subfield("a", "Tōkyō no rekishi /"),
                pymarc.Subfield("c", "Yamada Tarō."),
            ],
        )
    )
    r.add_field(
        pymarc.Field(
            tag="880",
            indicators=pymarc.Indicators("1", "0"),
            subfields=[
                pymarc.Subfield("6", "245-01/$1"),
                pymarc.Subfield("a", "東京の歴史 /"),
                pymarc.Subfield("b", "ﾄｳｷｮｳ ﾉ ﾚｷｼ"),
            ],
        )
    )
    r.add_field(pymarc.Field(tag="500", indicators=pymarc.Indicators(" ", " "), subfields=[]))
    recs.append(r.as_marc())
    # an empty subfield, a field with indicators only, a non-numeric tag
    body = [("001", b"x2"), ("245", b"10\x1faOne\x1f\x1fbTwo"), ("246", b"3 "), ("CAT", b"  \x1faX")]
    recs.append(build_iso(body))
    # (records with a wrong number of indicators are decoded by pymarc: rmarc rejects them)
    return recs


def get_rmarc():
    """rmarc's field decoder if it is available and passed the self-check, else None."""
    global _rmarc_decode, _rmarc_checked
    if _rmarc_checked:
        return _rmarc_decode
    _rmarc_checked = True
    if os.environ.get("UNIONCAT_NO_RMARC"):
        return None
    try:
        from rmarc._rmarc import decode_marc_fields as rmarc_decode
    except Exception:  # noqa: BLE001 - not installed / incompatible build
        return None
    # rmarc builds the field classes it is given (pymarc's here); its stubs name its own
    decode_marc_fields: Callable[..., Any] = rmarc_decode
    try:
        for raw in _self_test_samples():
            want = pymarc.Record(data=raw, to_unicode=True, force_utf8=True)
            lead, fields = decode_marc_fields(
                raw, pymarc.Field, pymarc.Subfield, pymarc.Indicators, force_utf8=True
            )
            if lead != str(want.leader) or [field_key(f) for f in fields] != [
                field_key(f) for f in want.fields
            ]:
                return None
            if not all(type(f) is pymarc.Field for f in fields):
                return None
    except Exception:  # noqa: BLE001 - a self-check failing in any way: pymarc's decoder is used
        return None
    _rmarc_decode = decode_marc_fields
    return _rmarc_decode


def decode_stored(raw: bytes) -> pymarc.Record:
    """Decode a record this project stored itself (valid UTF-8 ISO 2709, already
    checked at ingest) -- the fast path for display, without the checks."""
    dec = get_rmarc()
    if dec is not None:
        try:
            leader, fields = dec(raw, pymarc.Field, pymarc.Subfield, pymarc.Indicators, force_utf8=True)
            return new_record(leader, fields)
        except Exception:  # noqa: BLE001 - fall back to pymarc's decoder
            pass
    return pymarc.Record(data=raw, to_unicode=True, force_utf8=True)


def rmarc_available() -> bool:
    """True if rmarc is importable and its output matched pymarc's in the self-check."""
    return get_rmarc() is not None


# ---------------------------------------------------------------------------
# UTF-8 records


def decode_utf8(rec: bytes, lay: Layout, warnings: list[str], leader: str, rmarc) -> pymarc.Record:
    """The fields of a UTF-8 record (``rmarc``: get_rmarc()'s decoder or None for
    pymarc).  Raises Bad for stray control characters."""
    n = len(rec)
    base = lay.base
    odd = lay.odd
    if rec.translate(_CTRL_TABLE).find(b"\x00", base, n - 1) >= 0 or (
        b"\xc2" in rec and _UTF8_C1.search(rec, base) is not None
    ):
        m = _UTF8_STRAY.search(rec, base, n - 1)
        assert m is not None            # one of the two tests above found such a character
        ch = m.group().decode("utf-8")
        raise Bad(f"stray control character {char_name(ch)} {where(lay.entries, m.start())}")
    if not rec.isascii():
        m = _SUBFIELD_CODE_NONASCII.search(rec, base)
        if m is not None:
            warnings.append(f"non-ASCII subfield code {where(lay.entries, m.start())}")
            odd = True
    data = rec if int(rec[:5]) <= n else b"00000" + rec[5:]
    if rmarc is not None and not odd:
        try:
            _lead, fields = rmarc(data, pymarc.Field, pymarc.Subfield, pymarc.Indicators, force_utf8=True)
            return new_record(leader, fields)
        except ValueError:
            field_checks(rec, lay, [])  # raises a specific reason if it finds one
    r = pymarc.Record(data=data, to_unicode=True, force_utf8=True, utf8_handling="strict")
    return new_record(leader, r.fields)
