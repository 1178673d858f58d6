"""What the MARC readers yield, and where a reader is in its input.

``ReadRecord`` (a record that could be read) and ``BadRecord`` (one that could
not, with its exact bytes and a specific reason) are the items of every format
reader behind ``indexers.marc_reader.read_marc``; ``Cursor`` is the state the
input plumbing and the format reader share.  Also the few helpers both formats
use (pymarc records with leader/09 ``a``, character names for reasons).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pymarc

__all__ = ["ReadRecord", "BadRecord", "Cursor", "Bad", "new_record", "field_key", "char_name", "show",
           "read_exact", "Prefixed", "TEXT_STRAY"]

# Stray characters in decoded text: C0 controls, DEL and C1 controls.
TEXT_STRAY = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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


class Bad(Exception):
    """Internal: a record-level problem with a human readable reason."""


class Cursor:
    """Where one read is: shared by the input plumbing (which counts what it hands
    over and notes a damaged compressed stream) and the format reader (which numbers
    the records and says how far it has consumed)."""

    __slots__ = ("position", "offset", "offset_fed", "stream_error")

    def __init__(self) -> None:
        self.position = 0  # items yielded so far (the next item is position + 1)
        self.offset = 0  # decompressed bytes consumed by the format reader
        self.offset_fed = 0  # decompressed bytes handed to the format reader
        self.stream_error: str | None = None  # why the input ended early, if it did

    def next_position(self) -> int:
        self.position += 1
        return self.position


def char_name(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def show(b: bytes) -> str:
    return repr(b.decode("latin-1"))


def field_key(f) -> tuple:
    """A comparable form of a pymarc field (tag, indicators, subfields)."""
    if f.control_field:
        return (f.tag, f.data)
    return (f.tag, tuple(f.indicators), tuple((s.code, s.value) for s in f.subfields))


def new_record(leader: str, fields: list) -> pymarc.Record:
    """A pymarc record of these fields, with leader/09 set to ``a`` (the text is Unicode now)."""
    rec = pymarc.Record()
    rec.leader = pymarc.Leader(leader[:9] + "a" + leader[10:])
    rec.fields = fields
    return rec


def read_exact(stream, n: int) -> bytes:
    """Up to n bytes from a read()-able stream (fewer only at its end)."""
    parts = []
    while n > 0:
        data = stream.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


class Prefixed:
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
