"""The CPU-heavy half of ingest, as pure functions that can run in worker
processes: decode a batch of raw records, extract fields and holdings, normalize
and tokenize, and build the index document a record has on its own.

The store (indexers/store.py) then only matches and writes.  Workers get ISO 2709
blocks (whole records, cut at record terminators by the main process) and send
back Prepared items in order, so union ids come out the same as in one process.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

from . import union as un
from .holdings import LibraryConfig, extract_holdings, load_libraries
from .mapping import FieldMapping, load_mapping
from .marc_display import ISO2709_MAX_RECORD
from .marc_iso2709 import LENGTH_WRONG
from .marc_items import Bad
from .marc_reader import BadRecord, ReadRecord, read_marc
from .marc_structure import check_structure
from .store import display_of


@dataclass
class Prepared:
    offset: int
    position: int
    bad_reason: str | None = None  # set: quarantine this record with raw
    raw: bytes = b""
    local_id: str = ""
    deleted: bool = False  # leader/05 d
    marc: bytes = b""
    digest: str = ""
    data: dict = field(default_factory=dict)
    blob: str = ""  # data as JSON
    keys: list = field(default_factory=list)
    solo: un.UnionDocument | None = None  # the record's document were it alone in its union
    # its display record as UTF-8 ISO 2709 were it alone (store.display_iso2709; None where
    # the splice declines), made here in the preparing worker; unset: not made
    display: bytes | None = None
    display_made: bool = False
    payload: Any = None  # the index backend's precomputed rows for ``solo``
    # what the reader had to repair or guess (set: the run reports the record, raw
    # holds the bytes as read); empty for a record stored as read or plainly converted
    warnings: list[str] = field(default_factory=list)


def _marc_bytes(rr: ReadRecord) -> bytes:
    """The bytes to store: a UTF-8 ISO 2709 record exactly as read when it is one
    (only a wrong record length is corrected, when the length can be written),
    else the decoded record written as UTF-8 ISO 2709 (MARC-8, leaders that lie,
    MARCXML).  Records read with warnings are reported by the ingest (repaired)."""
    if rr.raw is not None and rr.encoding == "utf-8":
        if not rr.warnings:
            return rr.raw  # valid UTF-8 ISO 2709 as read: stored as it is
        if all(w.startswith(LENGTH_WRONG) for w in rr.warnings):
            n = len(rr.raw)
            return b"%05d" % n + rr.raw[5:] if n <= ISO2709_MAX_RECORD else rr.raw
    rec = rr.record
    rec.leader = rec.leader[:9] + "a" + rec.leader[10:]  # type: ignore[assignment]  # a str, as pymarc sets it too
    marc = _as_marc(rec)
    try:
        check_structure(marc)
    except Bad as e:  # e.g. a field grown over 9,999 bytes by the MARC-8 conversion
        raise _Unstorable(f"cannot be stored as ISO 2709 ({e})") from None
    return marc


class _Unstorable(Exception):
    """The decoded record cannot be written as ISO 2709 (it is quarantined)."""


def _as_marc(rec) -> bytes:
    """pymarc's as_marc, except that a record over 99,999 bytes gets the length
    99999: pymarc writes the length with as many digits as it takes, which makes
    the leader longer than 24 characters and shifts the whole record."""
    data = rec.as_marc()
    for d in range(6, 9):
        if len(data) - (d - 5) > ISO2709_MAX_RECORD and data[:d].isdigit() \
                and int(data[:d]) == len(data) - (d - 5):
            return b"%05d" % ISO2709_MAX_RECORD + data[d:]
    return data


def _raw_of(item: ReadRecord) -> bytes:
    if item.raw:
        return item.raw
    try:
        return item.record.as_marc()
    except Exception:  # noqa: BLE001 - quarantine must never fail on a bad record
        return str(item.record).encode("utf-8", "replace")


class Preparer:
    def __init__(self, library: LibraryConfig, mapping: FieldMapping, payload_fn=None):
        self.library = library
        self.mapping = mapping
        self.payload_fn = payload_fn

    def item(self, item: ReadRecord | BadRecord) -> Prepared:
        if isinstance(item, BadRecord):
            return Prepared(item.offset, item.position, bad_reason=item.reason, raw=item.raw)
        rec = item.record
        f001 = rec.get_fields("001")
        local_id = f001[0].data.strip() if f001 and f001[0].data else ""
        if not local_id:
            return Prepared(item.offset, item.position, raw=_raw_of(item),
                            bad_reason="no control number (001): the record cannot be identified for updates")
        if rec.leader[5] == "d":
            return Prepared(item.offset, item.position, local_id=local_id, deleted=True)
        try:
            marc = _marc_bytes(item)
        except _Unstorable as e:
            return Prepared(item.offset, item.position, raw=_raw_of(item), bad_reason=str(e))
        try:
            ex = self.mapping.extract(rec)
            holdings = extract_holdings(rec, self.library, local_id)
            titles = un.title_forms(ex.title_forms)
            data = {"fields": ex.fields, "display": ex.display, "title_forms": ex.title_forms,
                    "nonfiling": ex.nonfiling, "holdings": holdings, "titles": titles}
            solo = un.build_document(0, [un.MemberSource(0, self.library.code, local_id, ex.fields, ex.display,
                                                         ex.title_forms, ex.nonfiling, holdings)])
            payload = self.payload_fn(solo) if self.payload_fn else None
        except (ValueError, KeyError, IndexError, TypeError, UnicodeError, AttributeError) as e:
            return Prepared(item.offset, item.position, raw=_raw_of(item), bad_reason=f"cannot index record: {e!r}")
        try:
            display, made = display_of(marc, self.library.code, holdings), True
        except Exception:  # noqa: BLE001 - never a reason to refuse a record: the store makes it itself
            display, made = None, False
        return Prepared(
            item.offset, item.position, local_id=local_id, marc=marc, digest=hashlib.sha1(marc).hexdigest(),
            data=data, blob=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            keys=un.match_keys(ex.fields), solo=solo, payload=payload, display=display, display_made=made,
            warnings=list(item.warnings), raw=(item.raw or b"") if item.warnings else b"",
        )


# -- worker process side ------------------------------------------------------
_WORKER: Preparer | None = None


def worker_init(library_code: str, with_payload: bool = True) -> None:
    """``with_payload``: precompute the embedded index's rows (the Elasticsearch
    backend builds its documents at push time instead)."""
    global _WORKER
    from .backends.sqlite_index import SqliteIndexWriter

    mapping = load_mapping()
    _WORKER = Preparer(load_libraries().get(library_code), mapping,
                       SqliteIndexWriter(mapping).payload if with_payload else None)


def prepare_block(args: tuple[bytes, int]) -> list[Prepared]:
    """Worker entry: a block of whole ISO 2709 records starting at file offset
    ``base``; offsets in the result are file offsets, positions block-relative."""
    block, base = args
    out = []
    for item in read_marc(io.BytesIO(block), fmt="iso2709"):
        assert _WORKER is not None, "worker_init runs first"
        p = _WORKER.item(item)
        if p.offset >= 0:
            p.offset += base
        out.append(p)
    return out
