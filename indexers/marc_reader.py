"""A streaming MARC reader that never crashes on bad data.

``read_marc(path_or_fileobj)`` yields one item per record found in an ISO 2709
or MARCXML file (optionally gzip-compressed): a :class:`ReadRecord` for every
record that could be read, a :class:`BadRecord` (with the exact bytes and a
specific reason) for every one that could not.  Bad data never raises out of
the iterator; only an unreadable file (OSError when opening or reading) does.

This module is the one streaming interface (an iterator, as pymarc's reader
is): it opens the source, undoes gzip, counts bytes, detects the format and
hands the stream to one reader per format, which share a ``Cursor``:

==================  ==========================================================
``marc_iso2709``    ISO 2709 framing on the record length and terminator,
                    salvage of good records after damaged ones
``marc_structure``  leader and directory checks of one record
``marc_charset``    UTF-8 or MARC-8 (leader/09, and leaders that lie); MARC-8
``marc_decoder``    field decoding: rmarc when its self-check passes, else pymarc
``marc_xml``        MARCXML (lxml iterparse, memory flat)
``marc_items``      ReadRecord, BadRecord, Cursor and small shared helpers
==================  ==========================================================

Control characters other than the structural 0x1D/0x1E/0x1F in their
structural places, DEL and C1 controls (U+0080-U+009F) make the record a
BadRecord naming the field and the character.  Text is kept as it is (no
Unicode normalization) except that MARC-8 is converted to Unicode (pymarc's
converter composes its output to NFC).  Decoded records are pymarc.Record
objects with leader/09 set to ``a``.

The returned iterator has ``bytes_read`` (bytes read from the underlying file,
compressed bytes for gzip input), ``total_bytes`` (the file size when known)
and ``offset`` (decompressed bytes consumed); pass ``progress=callable`` to
be called with ``bytes_read`` whenever more input is read.
"""
from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable, Generator
from typing import BinaryIO, cast

from .marc_decoder import decode_stored, get_rmarc, rmarc_available
from .marc_iso2709 import UTF8_BOM, Iso2709Reader
from .marc_items import BadRecord, Cursor, Prefixed, ReadRecord, read_exact
from .marc_xml import MARCXML_NS, MarcXmlReader

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


class _SafeStream:
    """Turns decompression errors into end-of-input, remembering the error."""

    def __init__(self, stream, cursor: Cursor):
        self._stream = stream
        self._cursor = cursor
        # read1 hands over what was decompressed before a damaged spot; read()
        # would lose a whole buffer's worth of good data with the exception.
        self._read = getattr(stream, "read1", stream.read)

    def read(self, n: int = -1) -> bytes:
        if self._cursor.stream_error:
            return b""
        try:
            data = self._read(n)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            self._cursor.stream_error = f"compressed input is damaged or truncated: {exc}"
            return b""
        self._cursor.offset_fed += len(data)
        return data

    def readable(self) -> bool:
        return True


def detect_format(first_bytes: bytes) -> str:
    """"marcxml" if the (decompressed) data starts with '<' after an optional BOM
    and whitespace, else "iso2709"."""
    b = first_bytes
    if b.startswith(UTF8_BOM):
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
        self.cursor = Cursor()  # items so far, decompressed bytes consumed (offset) and fed
        self.total_bytes: int | None = None
        self.format: str | None = None
        self.compressed = False
        self._progress = progress
        if decoder == "pymarc":
            self._rmarc = None
        else:
            self._rmarc = get_rmarc()
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
        self._gen: Generator | None = None

    @property
    def offset(self) -> int:
        """Decompressed bytes consumed by the format reader."""
        return self.cursor.offset

    @property
    def offset_fed(self) -> int:
        """Decompressed bytes handed to the format reader."""
        return self.cursor.offset_fed

    # -- plumbing
    def _add_read(self, n: int) -> None:
        self.bytes_read += n
        if self._progress is not None:
            self._progress(self.bytes_read)

    def _open_stream(self):
        counted = _CountingStream(self._file, self)
        magic = read_exact(counted, 2)
        plain = Prefixed(magic, counted)
        stream: Prefixed | gzip.GzipFile = plain
        if magic == b"\x1f\x8b":
            self.compressed = True
            # read forward only: GzipFile seeks (which Prefixed cannot) only to rewind
            stream = gzip.GzipFile(fileobj=cast(BinaryIO, plain), mode="rb")
        safe = _SafeStream(stream, self.cursor)
        head = read_exact(safe, 4096)
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
            cursor = self.cursor
            reader = MarcXmlReader(cursor) if fmt == "marcxml" else Iso2709Reader(cursor, self._rmarc)
            yield from reader.records(head, stream)
            if cursor.stream_error:
                yield BadRecord(cursor.offset, cursor.next_position(), cursor.stream_error, b"")
        finally:
            if self._own_file:
                self._file.close()


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
