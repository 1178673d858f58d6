"""A streaming MARC reader that never crashes on bad data.

``read_marc(path_or_fileobj)`` yields one item per record found in an ISO 2709
or MARCXML file (optionally gzip-compressed): a :class:`ReadRecord` for every
record that could be read, a :class:`BadRecord` (with the exact bytes and a
specific reason) for every one that could not.  Bad data never raises out of
the iterator; only an unreadable file (OSError when opening or reading) does.

ISO 2709 framing is done here, not by pymarc: the 5-digit record length is
checked against the record terminator (0x1D); when they disagree the reader
frames on the terminator, and when a frame cannot be parsed it looks inside it
for the start of the next record so that good records following a damaged one
are never lost.  The directory and every field are checked before decoding:

* leader/09 ``a`` means UTF-8, blank means MARC-8 (converted with pymarc's
  MARC-8 converter, EACC CJK included).  Leaders lie: a UTF-8-flagged record
  that is not valid UTF-8 but is valid MARC-8 is read as MARC-8, and a
  MARC-8-flagged record that has no escape sequences, has bytes >= 0x80 and
  is valid UTF-8 is read as UTF-8; both with a warning.  A record that is
  neither is a BadRecord.
* Control characters other than the structural 0x1D/0x1E/0x1F in their
  structural places, DEL and C1 controls (U+0080-U+009F) make the record a
  BadRecord naming the field and the character.

Text is kept as it is (no Unicode normalization) except that MARC-8 is
converted to Unicode (pymarc's converter composes its output to NFC).

Decoded records are pymarc.Record objects with leader/09 set to ``a``.  The
field objects are built by rmarc (a Rust implementation of pymarc's decoder)
when it is importable and passes a start-up self-check that its output equals
pymarc's; otherwise by pymarc.  MARC-8 records always go through pymarc.

MARCXML is read with lxml.etree.iterparse (MARC slim namespace, or no
namespace) clearing elements as it goes.  A malformed record (no leader, bad
tag, indicator or subfield code, control characters) is a BadRecord with the
serialized XML as its raw bytes; a file that stops being well-formed XML ends
with a BadRecord describing the error (line and column; raw is what lxml had
built of the record being read, serialized).  MARCXML offsets and raw lengths
are not known (-1).

The returned iterator has ``bytes_read`` (bytes read from the underlying file,
compressed bytes for gzip input), ``total_bytes`` (the file size when known)
and ``offset`` (decompressed bytes consumed); pass ``progress=callable`` to
be called with ``bytes_read`` whenever more input is read.
"""
from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pymarc
from lxml import etree
from pymarc import marc8_mapping

__all__ = [
    "ReadRecord",
    "BadRecord",
    "MarcReader",
    "read_marc",
    "detect_format",
    "MARCXML_NS",
    "rmarc_available",
    "decode_stored",
]

MARCXML_NS = "http://www.loc.gov/MARC21/slim"

_FT = 0x1E  # field terminator
_RT = 0x1D  # record terminator
_ESC = 0x1B

_CHUNK = 1 << 20
# Give up looking for a record terminator after this many bytes (a frame this
# large is reported as one BadRecord and reading resumes after it).
_MAX_FRAME = 16 << 20
_PAD = b" \t\r\n\x00\x0b\x0c\x1a"

_UTF8_BOM = b"\xef\xbb\xbf"

# Directory entries: 3-character tag (printable ASCII), 4-digit length, 5-digit start.
_ENTRY_RE = re.compile(rb"([\x21-\x7e]{3})([0-9]{4})([0-9]{5})")
# Stray characters in the data area of a UTF-8 record: C0 controls except the
# structural 0x1E/0x1F (checked separately), DEL, and C1 controls (UTF-8 C2 80..C2 9F).
_UTF8_STRAY = re.compile(rb"[\x00-\x1d\x7f]|\xc2[\x80-\x9f]")
# Stray bytes in the data area of a MARC-8 record (ESC is legitimate there).
_MARC8_STRAY = re.compile(rb"[\x00-\x1a\x1c\x1d\x7f]")
_TEXT_STRAY = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UTF8_C1 = re.compile(rb"\xc2[\x80-\x9f]")
# bytes.translate table for a fast scan: stray C0 controls and DEL become 0x00
_CTRL_TABLE = bytes(0 if (b < 0x1E or b == 0x7F) else 1 for b in range(256))
_SUBFIELD_CODE_NONASCII = re.compile(rb"\x1f[\x80-\xff]")
# A plausible leader (used to find the start of a record inside a damaged frame).
_LEADER_RE = re.compile(rb"[0-9]{5}[\x20-\x7e]{7}[0-9]{5}[\x20-\x7e]{7}")
_TAG_RE = re.compile(r"[0-9A-Za-z]{3}\Z")


# ---------------------------------------------------------------------------
# results


@dataclass
class ReadRecord:
    record: pymarc.Record
    offset: int
    position: int
    raw_length: int
    encoding: str
    warnings: list[str] = field(default_factory=list)
    raw: bytes | None = None  # the record's ISO 2709 bytes as read (None for MARCXML)


@dataclass
class BadRecord:
    offset: int
    position: int
    reason: str
    raw: bytes

    def __repr__(self) -> str:  # raw can be large
        return (
            f"BadRecord(offset={self.offset}, position={self.position}, "
            f"reason={self.reason!r}, raw=<{len(self.raw)} bytes>)"
        )


class _Bad(Exception):
    """Internal: a record-level problem with a human readable reason."""


# ---------------------------------------------------------------------------
# helpers


def _char_name(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _field_at(entries, pos: int) -> tuple[str, int]:
    """(tag, byte offset within the field) of absolute record position pos."""
    for tag, start, end in entries:
        if start <= pos < end:
            return tag, pos - start
    return "", -1


def _where(entries, pos: int) -> str:
    tag, off = _field_at(entries, pos)
    if not tag:
        return f"at byte {pos} of the record"
    return f"in field {tag} at byte {off}"


def _field_key(f) -> tuple:
    if f.control_field:
        return (f.tag, f.data)
    return (f.tag, tuple(f.indicators), tuple((s.code, s.value) for s in f.subfields))


def _new_record(leader: str, fields: list) -> pymarc.Record:
    rec = pymarc.Record()
    rec.leader = pymarc.Leader(leader[:9] + "a" + leader[10:])
    rec.fields = fields
    return rec


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
    recs.append(_build_iso(body))
    # (records with a wrong number of indicators are decoded by pymarc: rmarc rejects them)
    return recs


def _build_iso(fields: list[tuple[str, bytes]], leader9: bytes = b"a") -> bytes:
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


def _get_rmarc():
    global _rmarc_decode, _rmarc_checked
    if _rmarc_checked:
        return _rmarc_decode
    _rmarc_checked = True
    if os.environ.get("UNIONCAT_NO_RMARC"):
        return None
    try:
        from rmarc._rmarc import decode_marc_fields
    except Exception:  # not installed / incompatible build
        return None
    try:
        for raw in _self_test_samples():
            want = pymarc.Record(data=raw, to_unicode=True, force_utf8=True)
            lead, fields = decode_marc_fields(
                raw, pymarc.Field, pymarc.Subfield, pymarc.Indicators, force_utf8=True
            )
            if lead != str(want.leader) or [_field_key(f) for f in fields] != [
                _field_key(f) for f in want.fields
            ]:
                return None
            if not all(type(f) is pymarc.Field for f in fields):
                return None
    except Exception:
        return None
    _rmarc_decode = decode_marc_fields
    return _rmarc_decode


def decode_stored(raw: bytes) -> pymarc.Record:
    """Decode a record this project stored itself (valid UTF-8 ISO 2709, already
    checked at ingest) -- the fast path for display, without the checks."""
    dec = _get_rmarc()
    if dec is not None:
        try:
            leader, fields = dec(raw, pymarc.Field, pymarc.Subfield, pymarc.Indicators, force_utf8=True)
            return _new_record(leader, fields)
        except Exception:  # noqa: BLE001 - fall back to pymarc's decoder
            pass
    return pymarc.Record(data=raw, to_unicode=True, force_utf8=True)


def rmarc_available() -> bool:
    """True if rmarc is importable and its output matched pymarc's in the self-check."""
    return _get_rmarc() is not None


# ---------------------------------------------------------------------------
# MARC-8


_CODESETS = marc8_mapping.CODESETS
_ODD_MAP = marc8_mapping.ODD_MAP
_EACC = 0x31
_MARC8_DROPPED = {0x88: "non-sort begin", 0x89: "non-sort end", 0x8D: "joiner", 0x8E: "non-joiner"}


def _marc8_check(data: bytes, warnings: list[str] | None = None) -> tuple[int, str] | None:
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
        if b == _ESC:
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


# ---------------------------------------------------------------------------
# input plumbing


class _CountingStream:
    """Wraps the underlying binary file; counts bytes read and reports progress."""

    def __init__(self, raw: BinaryIO, owner: MarcReader):
        self._raw = raw
        self._owner = owner

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._owner._add_read(len(data))
        return data

    def readable(self) -> bool:
        return True


class _Prefixed:
    """A read()-able stream that first returns ``prefix`` then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream):
        self._prefix = prefix
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            if n is None or n < 0:
                data = self._prefix + self._stream.read()
                self._prefix = b""
                return data
            data = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return data
        return self._stream.read(n)

    def readable(self) -> bool:
        return True


class _SafeStream:
    """Turns decompression errors into end-of-input, remembering the error."""

    def __init__(self, stream, owner: MarcReader):
        self._stream = stream
        self._owner = owner
        # read1 hands over what was decompressed before a damaged spot; read()
        # would lose a whole buffer's worth of good data with the exception.
        self._read = getattr(stream, "read1", stream.read)

    def read(self, n: int = -1) -> bytes:
        if self._owner._stream_error:
            return b""
        try:
            data = self._read(n)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            self._owner._stream_error = f"compressed input is damaged or truncated: {exc}"
            return b""
        self._owner.offset_fed += len(data)
        return data

    def readable(self) -> bool:
        return True


def _read_exact(stream, n: int) -> bytes:
    parts = []
    while n > 0:
        data = stream.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def detect_format(first_bytes: bytes) -> str:
    """"marcxml" if the (decompressed) data starts with '<' after an optional BOM
    and whitespace, else "iso2709"."""
    b = first_bytes
    if b.startswith(_UTF8_BOM):
        b = b[3:]
    elif b.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "marcxml"  # UTF-16: only XML comes that way
    b = b.lstrip(b" \t\r\n")
    if b.startswith(b"<"):
        return "marcxml"
    return "iso2709"


# ---------------------------------------------------------------------------
# the reader


class MarcReader:
    """Iterator over the records of one file; see the module docstring."""

    def __init__(
        self,
        source,
        *,
        fmt: str = "auto",
        progress: Callable[[int], None] | None = None,
        decoder: str = "auto",
    ):
        if fmt not in ("auto", "iso2709", "marcxml"):
            raise ValueError(f"fmt must be 'auto', 'iso2709' or 'marcxml', not {fmt!r}")
        if decoder not in ("auto", "rmarc", "pymarc"):
            raise ValueError(f"decoder must be 'auto', 'rmarc' or 'pymarc', not {decoder!r}")
        self.bytes_read = 0  # bytes read from the underlying file
        self.offset = 0  # decompressed bytes consumed by the reader
        self.offset_fed = 0  # decompressed bytes handed to the parser
        self.total_bytes: int | None = None
        self.format: str | None = None
        self.compressed = False
        self._progress = progress
        self._stream_error: str | None = None
        self._position = 0
        if decoder == "pymarc":
            self._rmarc = None
        else:
            self._rmarc = _get_rmarc()
            if decoder == "rmarc" and self._rmarc is None:
                raise RuntimeError("rmarc is not available or its output differs from pymarc's")
        self.decoder = "rmarc" if self._rmarc is not None else "pymarc"

        if isinstance(source, (str, os.PathLike)):
            self._file = open(source, "rb")
            self._own_file = True
        else:
            self._file = source
            self._own_file = False
        try:
            self.total_bytes = os.fstat(self._file.fileno()).st_size
        except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
            self.total_bytes = None
        self._requested_fmt = fmt
        self._gen: Iterator | None = None

    # -- plumbing
    def _add_read(self, n: int) -> None:
        self.bytes_read += n
        if self._progress is not None:
            self._progress(self.bytes_read)

    def _open_stream(self):
        counted = _CountingStream(self._file, self)
        magic = _read_exact(counted, 2)
        stream = _Prefixed(magic, counted)
        if magic == b"\x1f\x8b":
            self.compressed = True
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
        safe = _SafeStream(stream, self)
        head = _read_exact(safe, 4096)
        fmt = self._requested_fmt
        if fmt == "auto":
            fmt = detect_format(head)
        self.format = fmt
        return fmt, head, safe

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
        if self._own_file:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        return self

    def __next__(self):
        if self._gen is None:
            self._gen = self._run()
        return next(self._gen)

    def _run(self):
        try:
            fmt, head, stream = self._open_stream()
            if fmt == "marcxml":
                yield from self._read_xml(head, stream)
            else:
                yield from self._read_iso(head, stream)
            if self._stream_error:
                self._position += 1
                yield BadRecord(self.offset, self._position, self._stream_error, b"")
        finally:
            if self._own_file:
                self._file.close()

    # -----------------------------------------------------------------------
    # ISO 2709

    def _read_iso(self, head: bytes, stream):
        buf = head
        base_off = 0  # file offset of buf[0]
        pos = 0
        eof = False
        if buf.startswith(_UTF8_BOM):
            pos = 3

        def refill():
            nonlocal buf, eof
            data = _read_exact(stream, _CHUNK)
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
                self.offset = base_off + pos
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
            self._position += 1
            position = self._position

            if t < 0:
                # no terminator before end of input (or within _MAX_FRAME bytes)
                if eof:
                    raw = buf[start:]
                    present = len(raw)
                    if declared is not None and declared >= 24:
                        reason = f"record truncated at end of file (declared {declared} bytes, {present} present)"
                    elif declared is None:
                        reason = (
                            f"leader length is not numeric: {_show(lenfield)}; "
                            f"no record terminator before end of file ({present} bytes)"
                        )
                    else:
                        reason = f"no record terminator before end of file ({present} bytes)"
                    pos = len(buf)
                else:
                    raw = buf[start : start + _MAX_FRAME]
                    reason = f"no record terminator within {_MAX_FRAME} bytes"
                    pos = start + len(raw)
                self.offset = base_off + pos
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
                    and buf[start + declared - 1] == _RT
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
                            f"leader length is not numeric: {_show(lenfield)}",
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
                        extra_warning = f"record length wrong ({desc}); framed on the record terminator"
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
            self.offset = base_off + pos
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
            if ln >= 26 and s + ln <= end and buf[s + ln - 1] == _RT and 24 < base < ln and buf[s + base - 1] == _FT:
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
            lay = _check_structure(rec)
        except _Bad as exc:
            return _StructErr(str(exc))
        warnings = [warning] if warning else []
        try:
            record, encoding = self._decode(rec, lay, warnings)
        except _Bad as exc:
            return BadRecord(abs_start, position, str(exc), rec)
        except Exception as exc:  # anything the decoders may raise on odd data
            try:
                _field_checks(rec, lay, [])
            except _Bad as exc2:
                return BadRecord(abs_start, position, str(exc2), rec)
            return BadRecord(abs_start, position, f"cannot decode record: {type(exc).__name__}: {exc}", rec)
        return ReadRecord(record, abs_start, position, len(rec), encoding, warnings, rec)

    def _decode(self, rec: bytes, lay: _Layout, warnings: list[str]):
        n = len(rec)
        base = lay.base
        leader = rec[:24].decode("ascii")  # checked in _check_structure
        leader9 = leader[9]
        if lay.ctl or lay.odd:
            _field_checks(rec, lay, warnings)  # raises for 0x1F in a control field
        if rec.count(b"\x1e", base, n - 1) != lay.nent:
            k = _stray_ft(rec, lay)
            raise _Bad(f"stray control character U+001E {_where(lay.entries, k)}")

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
                return self._decode_utf8(rec, lay, warnings, leader), encoding
            # leader says UTF-8 but it is not: try MARC-8
            utf8_problem = f"invalid UTF-8 {_where(lay.entries, utf8_err)}"
            marc8_problem = _marc8_problem(rec, lay, [])
            if marc8_problem is None and _MARC8_STRAY.search(rec, base, n - 1) is None:
                warnings.append(
                    f"leader/09 says UTF-8 but the record is not valid UTF-8 ({utf8_problem}); decoded as MARC-8"
                )
                _marc8_problem(rec, lay, warnings)
                record = self._decode_marc8(rec, lay, warnings, leader)
                return record, "marc-8 (leader says utf-8)"
            if marc8_problem is None:
                marc8_problem = "control characters"
            raise _Bad(f"invalid characters: {utf8_problem}; not valid MARC-8 either ({marc8_problem})")

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
                return self._decode_utf8(rec, lay, warnings, leader), encoding
        m = _MARC8_STRAY.search(rec, base, n - 1)
        if m is not None:
            raise _Bad(f"stray control character U+{m.group()[0]:04X} {_where(lay.entries, m.start())}")
        marc8_problem = _marc8_problem(rec, lay, warnings)
        if marc8_problem is not None:
            if leader9 == " ":
                raise _Bad(f"invalid characters: not valid MARC-8 ({marc8_problem})")
            raise _Bad(
                f"invalid characters: leader/09 is {leader9!r} and the record is neither UTF-8 "
                f"nor MARC-8 ({marc8_problem})"
            )
        if leader9 != " ":
            warnings.append(f"leader/09 is {leader9!r} (undefined); decoded as MARC-8")
            encoding = f"marc-8 (leader/09 is {leader9!r})"
        else:
            encoding = "marc-8"
        return self._decode_marc8(rec, lay, warnings, leader), encoding

    def _decode_utf8(self, rec, lay, warnings, leader) -> pymarc.Record:
        n = len(rec)
        base = lay.base
        odd = lay.odd
        if rec.translate(_CTRL_TABLE).find(b"\x00", base, n - 1) >= 0 or (
            b"\xc2" in rec and _UTF8_C1.search(rec, base) is not None
        ):
            m = _UTF8_STRAY.search(rec, base, n - 1)
            ch = m.group().decode("utf-8")
            raise _Bad(f"stray control character {_char_name(ch)} {_where(lay.entries, m.start())}")
        if not rec.isascii():
            m = _SUBFIELD_CODE_NONASCII.search(rec, base)
            if m is not None:
                warnings.append(f"non-ASCII subfield code {_where(lay.entries, m.start())}")
                odd = True
        data = rec if int(rec[:5]) <= n else b"00000" + rec[5:]
        if self._rmarc is not None and not odd:
            try:
                _lead, fields = self._rmarc(
                    data, pymarc.Field, pymarc.Subfield, pymarc.Indicators, force_utf8=True
                )
                return _new_record(leader, fields)
            except ValueError:
                _field_checks(rec, lay, [])  # raises a specific reason if it finds one
        r = pymarc.Record(data=data, to_unicode=True, force_utf8=True, utf8_handling="strict")
        return _new_record(leader, r.fields)

    def _decode_marc8(self, rec, lay, warnings, leader) -> pymarc.Record:
        n = len(rec)
        data = rec if rec[:5].isdigit() and int(rec[:5]) <= n else b"00000" + rec[5:]
        # leader/09 must be blank for pymarc to use its MARC-8 converter
        data = data[:9] + b" " + data[10:]
        r = pymarc.Record(data=data, to_unicode=True, force_utf8=False, hide_utf8_warnings=True)
        for f in r.fields:
            if f.control_field:
                if not f.data.isascii():
                    warnings.append(f"control field {f.tag} of a MARC-8 record has non-ASCII bytes (read as Latin-1)")
                m = _TEXT_STRAY.search(f.data)
                if m:
                    raise _Bad(f"stray control character {_char_name(m.group())} in field {f.tag}")
            else:
                for sf in f.subfields:
                    m = _TEXT_STRAY.search(sf.value)
                    if m:
                        raise _Bad(
                            f"stray control character {_char_name(m.group())} in field {f.tag} "
                            f"subfield ${sf.code} after MARC-8 conversion"
                        )
        return _new_record(leader, r.fields)

    # -----------------------------------------------------------------------
    # MARCXML

    def _read_xml(self, head: bytes, stream):
        src = _Prefixed(head, stream)
        ns_tag = f"{{{MARCXML_NS}}}record"
        context = etree.iterparse(
            src,
            events=("start", "end"),
            tag=(ns_tag, "record"),
            huge_tree=True,
            resolve_entities=False,
            no_network=True,
        )
        current = None  # the record element being parsed (for a partial copy on error)
        try:
            for event, elem in context:
                if event == "start":
                    current = elem
                    continue
                current = None
                self._position += 1
                try:
                    item = self._xml_item(elem, self._position)
                except Exception as exc:  # defensive: never raise on data
                    item = BadRecord(
                        -1, self._position, f"cannot read record: {type(exc).__name__}: {exc}", _xml_bytes(elem)
                    )
                # free memory: this record and everything before it
                elem.clear(keep_tail=True)
                e = elem
                while True:
                    parent = e.getparent()
                    if parent is None:
                        break
                    while e.getprevious() is not None:
                        del parent[0]
                    e = parent
                self.offset = self.offset_fed
                yield item
        except etree.XMLSyntaxError as exc:
            self._position += 1
            # what lxml had built of the record being read (serialized, auto-closed)
            raw = _xml_bytes(current) if current is not None else b""
            line, col = getattr(exc, "position", None) or (0, 0)
            msg = getattr(exc, "msg", None) or str(exc)
            msg = re.sub(r", line \d+, column \d+$", "", msg)
            if self._stream_error:
                msg += f" ({self._stream_error})"
                self._stream_error = None
            self.offset = self.offset_fed
            yield BadRecord(
                -1,
                self._position,
                f"not well-formed XML at line {line}, column {col}: {msg}; the rest of the file cannot be read",
                raw,
            )

    def _xml_item(self, elem, position: int):
        tag = elem.tag
        prefix = tag[: -len("record")]
        leader = None
        fields: list = []
        problems: list[str] = []
        for child in elem:
            ctag = child.tag
            if not isinstance(ctag, str):
                continue  # comment / processing instruction
            if not ctag.startswith(prefix) or (prefix == "" and ctag.startswith("{")):
                continue  # foreign element
            name = ctag[len(prefix):]
            if name == "leader":
                text = child.text or ""
                if leader is not None:
                    problems.append("more than one leader")
                elif len(text) != 24:
                    problems.append(f"leader is {len(text)} characters, expected 24: {text!r}")
                leader = text
            elif name == "controlfield":
                ftag = child.get("tag")
                if ftag is None or not _TAG_RE.match(ftag):
                    problems.append(f"controlfield with malformed tag {ftag!r}")
                    continue
                text = child.text or ""
                m = _TEXT_STRAY.search(text)
                if m:
                    problems.append(f"stray control character {_char_name(m.group())} in field {ftag}")
                fields.append(pymarc.Field(tag=ftag, data=text))
            elif name == "datafield":
                ftag = child.get("tag")
                if ftag is None or not _TAG_RE.match(ftag):
                    problems.append(f"datafield with malformed tag {ftag!r}")
                    continue
                ind1, ind2 = child.get("ind1"), child.get("ind2")
                if ind1 is None or ind2 is None or len(ind1) != 1 or len(ind2) != 1:
                    problems.append(f"field {ftag}: malformed indicators ind1={ind1!r} ind2={ind2!r}")
                    continue
                subfields = []
                for sub in child:
                    stag = sub.tag
                    if not isinstance(stag, str) or stag != prefix + "subfield":
                        continue
                    code = sub.get("code")
                    if code is None or len(code) != 1:
                        problems.append(f"field {ftag}: malformed subfield code {code!r}")
                        continue
                    text = sub.text or ""
                    m = _TEXT_STRAY.search(text)
                    if m:
                        problems.append(
                            f"stray control character {_char_name(m.group())} in field {ftag} subfield ${code}"
                        )
                    subfields.append(pymarc.Subfield(code, text))
                fields.append(
                    pymarc.Field(tag=ftag, indicators=pymarc.Indicators(ind1, ind2), subfields=subfields)
                )
        if leader is None:
            problems.insert(0, "record has no leader")
        if problems:
            where = f" (line {elem.sourceline})" if elem.sourceline else ""
            return BadRecord(-1, position, "; ".join(problems) + where, _xml_bytes(elem))
        if not fields:
            return BadRecord(-1, position, f"record has no fields (line {elem.sourceline})", _xml_bytes(elem))
        return ReadRecord(_new_record(leader, fields), -1, position, -1, "utf-8", [])


class _StructErr:
    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _show(b: bytes) -> str:
    return repr(b.decode("latin-1"))


def _xml_bytes(elem) -> bytes:
    try:
        return etree.tostring(elem, encoding="utf-8", with_tail=False)
    except Exception:
        return b""


class _Layout:
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


_ENTRY2_RE = re.compile(rb"([\x21-\x7e]{3})([0-9]{9})")


def _check_structure(rec: bytes) -> _Layout:
    """Check the leader and directory of one framed record.

    Raises _Bad with a specific reason when the record's structure is broken
    (these are the cases where the reader tries another framing).
    """
    n = len(rec)
    if n < 26:
        raise _Bad(f"record too short ({n} bytes)")
    if not rec[:24].isascii():
        raise _Bad(f"leader contains non-ASCII bytes: {_show(rec[:24])}")
    basefield = rec[12:17]
    if not basefield.isdigit():
        raise _Bad(f"base address of data is not numeric: {_show(basefield)}")
    base = int(basefield)
    if base < 25 or base >= n:
        raise _Bad(f"base address of data {base} is outside the record ({n} bytes)")
    if rec[base - 1] != _FT:
        raise _Bad(f"bad directory: no field terminator before the base address {base}")
    dlen = base - 25
    if dlen % 12:
        raise _Bad(f"bad directory: length {dlen} is not a multiple of 12")
    if dlen == 0:
        raise _Bad("bad directory: no fields")
    ents = _ENTRY2_RE.findall(rec, 24, base - 1)
    nent = dlen // 12
    if len(ents) != nent:  # (nent matches inside 12 * nent bytes cover them exactly)
        for i in range(nent):
            entry = rec[24 + 12 * i : 36 + 12 * i]
            if _ENTRY_RE.fullmatch(entry) is None:
                raise _Bad(f"bad directory: entry {i + 1} is malformed: {_show(entry)}")
        raise _Bad("bad directory: malformed entries")
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
            return _Layout(rec, base, nent, odd, ctl)
    # General path: any order, any layout; every entry must still end at a
    # field terminator inside the record and the fields must reach its end.
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
            raise _Bad(f"bad directory: entry {i} (field {tag}) has length 0")
        if e > data_end:
            raise _Bad(f"bad directory: entry {i} (field {tag}) points past end of record")
        if rec[e - 1] != _FT:
            raise _Bad(f"bad directory: entry {i} (field {tag}) does not end at a field terminator")
        if e > last:
            last = e
        if tag < "010" and tag.isdigit():
            if rec.find(b"\x1f", s, e) >= 0:
                ctl = True
        elif ln != 3 and rec[s + 2 : s + 3] != b"\x1f":
            odd = True
        entries.append((tag, s, e))
    if last != data_end:
        raise _Bad(f"bad directory: fields end at byte {last} but the record data ends at byte {data_end}")
    return _Layout(rec, base, nent, odd, ctl, entries)


def _field_checks(rec: bytes, lay: _Layout, warnings: list[str]) -> None:
    """Per-field checks for the unusual cases: raises _Bad for a 0x1F inside a
    control field or non-ASCII indicators; notes odd indicator counts."""
    for tag, s, e in lay.entries:
        if tag < "010" and tag.isdigit():
            k = rec.find(b"\x1f", s, e - 1)
            if k >= 0:
                raise _Bad(f"stray control character U+001F in field {tag} at byte {k - s}")
            continue
        k = rec.find(b"\x1f", s, e - 1)
        ind = rec[s : (k if k >= 0 else e - 1)]
        if not ind.isascii():
            raise _Bad(f"non-ASCII indicators in field {tag}: {_show(ind)}")
        if len(ind) != 2:
            if len(ind) == 0:
                warnings.append(f"field {tag}: missing indicators")
            else:
                warnings.append(f"field {tag}: expected 2 indicators, found {len(ind)} ({_show(ind)})")


def _stray_ft(rec: bytes, lay: _Layout) -> int:
    ends = {e - 1 for _t, _s, e in lay.entries}
    k = rec.find(b"\x1e", lay.base, len(rec) - 1)
    while k >= 0 and k in ends:
        k = rec.find(b"\x1e", k + 1, len(rec) - 1)
    return k


def _marc8_problem(rec: bytes, lay: _Layout, warnings) -> str | None:
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
                problem = _marc8_check(value, warnings)
                if problem is not None:
                    at, what = problem
                    return f"{what} in field {tag} at byte {k + 2 + at - s}"
            k = nxt
    return None


def read_marc(
    path_or_fileobj,
    *,
    fmt: str = "auto",
    progress: Callable[[int], None] | None = None,
    decoder: str = "auto",
) -> MarcReader:
    """Read MARC records from an ISO 2709 or MARCXML file (gzip allowed).

    Returns an iterator of ReadRecord | BadRecord with ``bytes_read`` and
    ``total_bytes`` attributes for progress reporting.  ``fmt`` is "auto",
    "iso2709" or "marcxml"; ``decoder`` forces "pymarc" or "rmarc" field
    decoding (default: rmarc when available and verified).
    """
    return MarcReader(path_or_fileobj, fmt=fmt, progress=progress, decoder=decoder)
