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
from .marc_reader import BadRecord, ReadRecord, read_marc


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
    payload: Any = None  # the index backend's precomputed rows for ``solo``


def _marc_bytes(rr: ReadRecord) -> bytes:
    if rr.raw is not None and rr.encoding == "utf-8" and not rr.warnings:
        return rr.raw  # valid UTF-8 ISO 2709 as read: stored as it is
    rec = rr.record
    rec.leader = rec.leader[:9] + "a" + rec.leader[10:]
    return rec.as_marc()


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
        return Prepared(
            item.offset, item.position, local_id=local_id, marc=marc, digest=hashlib.sha1(marc).hexdigest(),
            data=data, blob=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            keys=un.match_keys(ex.fields), solo=solo, payload=payload,
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
        p = _WORKER.item(item)
        if p.offset >= 0:
            p.offset += base
        out.append(p)
    return out
