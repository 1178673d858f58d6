"""Reading ISO 2709: framing records in a byte stream, and never losing a good one.

Framing is done here, not by pymarc: the 5-digit record length is checked
against the record terminator (0x1D); when they disagree the reader frames on
the terminator, and when a frame cannot be parsed it looks inside it for the
start of the next record so that good records following a damaged one are never
lost.  Each frame's structure is then checked (marc_structure), its character
set decided and its fields decoded (marc_charset, marc_decoder).
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from .marc_charset import decode_record
from .marc_items import Bad, BadRecord, Cursor, ReadRecord, read_exact, show
from .marc_structure import FT, RT, check_structure, field_checks

__all__ = ["Iso2709Reader", "UTF8_BOM", "LENGTH_WRONG"]

_CHUNK = 1 << 20
# Give up looking for a record terminator after this many bytes (a frame this
# large is reported as one BadRecord and reading resumes after it).
_MAX_FRAME = 16 << 20
_PAD = b" \t\r\n\x00\x0b\x0c\x1a"
UTF8_BOM = b"\xef\xbb\xbf"
# how the warning of a record framed on its terminator against its leader begins
LENGTH_WRONG = "record length wrong"
# A plausible leader (used to find the start of a record inside a damaged frame).
_LEADER_RE = re.compile(rb"[0-9]{5}[\x20-\x7e]{7}[0-9]{5}[\x20-\x7e]{7}")


class _StructErr:
    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


class Iso2709Reader:
    """The records of one ISO 2709 stream, in order (one format behind read_marc)."""

    def __init__(self, cursor: Cursor, rmarc=None):
        self.cursor = cursor
        self.rmarc = rmarc  # marc_decoder.get_rmarc()'s decoder, or None for pymarc

    def records(self, head: bytes, stream) -> Iterator[ReadRecord | BadRecord]:
        """The items of the stream (``head``: its first bytes, already read)."""
        cursor = self.cursor
        buf = head
        base_off = 0  # file offset of buf[0]
        pos = 0
        eof = False
        if buf.startswith(UTF8_BOM):
            pos = 3

        def refill():
            nonlocal buf, eof
            data = read_exact(stream, _CHUNK)
            if not data:
                eof = True
                return
            buf = buf + data

        while True:
            # compact the buffer between records (indices stay valid within one record)
            if pos >= _CHUNK:
                buf = buf[pos:]
                base_off += pos
                pos = 0
            # skip padding between records
            while True:
                n = len(buf)
                while pos < n and buf[pos] in _PAD:
                    pos += 1
                if pos < n or eof:
                    break
                refill()
            if pos >= len(buf):
                cursor.offset = base_off + pos
                return
            start = pos
            while len(buf) - start < 24 and not eof:
                refill()
            # the first record terminator at or after start
            t = buf.find(b"\x1d", start)
            while t < 0 and not eof and len(buf) - start <= _MAX_FRAME:
                searched = len(buf)
                refill()
                t = buf.find(b"\x1d", searched)
            lenfield = buf[start : start + 5]
            declared = int(lenfield) if len(lenfield) == 5 and lenfield.isdigit() else None
            if declared is not None and declared >= 24:
                while len(buf) - start < declared and not eof:
                    searched = len(buf)
                    refill()
                    if t < 0:
                        t = buf.find(b"\x1d", searched)
            abs_start = base_off + start
            position = cursor.next_position()

            if t < 0:
                # no terminator before end of input (or within _MAX_FRAME bytes)
                if eof:
                    raw = buf[start:]
                    present = len(raw)
                    if declared is not None and declared >= 24:
                        reason = f"record truncated at end of file (declared {declared} bytes, {present} present)"
                    elif declared is None:
                        reason = (
                            f"leader length is not numeric: {show(lenfield)}; "
                            f"no record terminator before end of file ({present} bytes)"
                        )
                    else:
                        reason = f"no record terminator before end of file ({present} bytes)"
                    pos = len(buf)
                else:
                    raw = buf[start : start + _MAX_FRAME]
                    reason = f"no record terminator within {_MAX_FRAME} bytes"
                    pos = start + len(raw)
                cursor.offset = base_off + pos
                yield BadRecord(abs_start, position, reason, raw)
                continue

            frame_end = t + 1
            item = None
            if declared is not None and declared >= 24 and start + declared == frame_end:
                # the normal case: the declared length lands on the first terminator
                item = self._iso_item(buf, start, frame_end, abs_start, position, None)
                if isinstance(item, _StructErr):
                    item = self._salvage(buf, start, frame_end, abs_start, position, item.reason)
            else:
                extra_warning = None
                if (
                    declared is not None
                    and declared >= 24
                    and start + declared <= len(buf)
                    and buf[start + declared - 1] == RT
                ):
                    # declared length lands on a later terminator: the record
                    # may hold a stray 0x1D (then it parses with its declared
                    # length) or the length may be wrong.
                    item = self._iso_item(buf, start, start + declared, abs_start, position, None)
                    if not isinstance(item, _StructErr):
                        frame_end = start + declared
                    else:
                        item = None
                if item is None:
                    if declared is None:
                        item = self._salvage(
                            buf, start, frame_end, abs_start, position,
                            f"leader length is not numeric: {show(lenfield)}",
                        )
                    else:
                        actual = frame_end - start
                        if declared >= 24 and start + declared > len(buf):
                            desc = (
                                f"declared {declared} bytes but only {len(buf) - start} "
                                f"remain in the file; record terminator after {actual} bytes"
                            )
                        else:
                            desc = f"declared length {declared} but record terminator after {actual} bytes"
                        extra_warning = f"{LENGTH_WRONG} ({desc}); framed on the record terminator"
                        if declared == actual:  # a length under 24 that is right: no news
                            extra_warning = None
                        item = self._iso_item(buf, start, frame_end, abs_start, position, extra_warning)
                        if isinstance(item, _StructErr):
                            if declared == actual:
                                reason = item.reason
                            elif declared >= 24 and start + declared > frame_end:
                                reason = f"record truncated ({desc}): {item.reason}"
                            else:
                                reason = f"{desc}: {item.reason}"
                            item = self._salvage(buf, start, frame_end, abs_start, position, reason)
            if isinstance(item, BadRecord):
                pos = start + len(item.raw)
            else:
                pos = start + item.raw_length
            cursor.offset = base_off + pos
            yield item

    def _salvage(self, buf, start, end, abs_start, position, reason) -> BadRecord:
        """A BadRecord for buf[start:end], cut short if another record starts inside it."""
        i = start + 1
        while True:
            m = _LEADER_RE.search(buf, i, end)
            if m is None:
                break
            s = m.start()
            ln = int(buf[s : s + 5])
            base = int(buf[s + 12 : s + 17])
            if ln >= 26 and s + ln <= end and buf[s + ln - 1] == RT and 24 < base < ln and buf[s + base - 1] == FT:
                declared = buf[start : start + 5]
                if declared.isdigit() and int(declared) > s - start:
                    reason = (
                        f"record truncated (declared {int(declared)} bytes, {s - start} present "
                        f"before the next record starts)"
                    )
                else:
                    reason = f"{reason} (another record starts after {s - start} bytes)"
                return BadRecord(abs_start, position, reason, bytes(buf[start:s]))
            i = s + 1
        return BadRecord(abs_start, position, reason, bytes(buf[start:end]))

    def _iso_item(self, buf, start, end, abs_start, position, warning):
        rec = buf[start:end]
        try:
            lay = check_structure(rec)
        except Bad as exc:
            return _StructErr(str(exc))
        warnings = [warning] if warning else []
        try:
            record, encoding = decode_record(rec, lay, warnings, self.rmarc)
        except Bad as exc:
            return BadRecord(abs_start, position, str(exc), rec)
        except Exception as exc:  # noqa: BLE001 - anything the decoders may raise on odd data
            try:
                field_checks(rec, lay, [])
            except Bad as exc2:
                return BadRecord(abs_start, position, str(exc2), rec)
            return BadRecord(abs_start, position, f"cannot decode record: {type(exc).__name__}: {exc}", rec)
        return ReadRecord(record, abs_start, position, len(rec), encoding, warnings, rec)
