"""`unioncat ingest`: read a library's MARC files into the store and index.

Streaming (one record in memory at a time), batched transactions (a batch is the
unit of commit: a killed run leaves whole batches, never half a union record),
quarantine of bad records with offset and reason, counts at the end.  Running it
again after an interruption is safe: unchanged records are recognised by digest
and only re-stamped with the new run, so nothing is duplicated.
"""
from __future__ import annotations

import base64
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pymarc

from .holdings import load_libraries
from .mapping import FieldMapping, load_mapping
from .marc_reader import BadRecord, ReadRecord, read_marc
from .store import Counts, SourceInput, Store, connect

BATCH = 500


@dataclass
class IngestResult:
    counts: Counts
    quarantine_file: Path | None
    seconds: float
    interrupted: bool = False


def db_path(data_dir: Path) -> Path:
    return Path(data_dir) / "catalog.sqlite"


def open_store(data_dir: Path, mapping: FieldMapping | None = None, index=None) -> Store:
    from .backends.sqlite_index import SqliteIndexWriter

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    mapping = mapping or load_mapping()
    conn = connect(db_path(data_dir))
    return Store(conn, mapping, index or SqliteIndexWriter(mapping))


class Quarantine:
    """Bad records go to DATA_DIR/quarantine/<library>-<run>.jsonl, one JSON object
    a line: file, offset, position, reason and the raw bytes (base64)."""

    def __init__(self, data_dir: Path, library: str, run_id: int):
        self.path = Path(data_dir) / "quarantine" / f"{library}-run{run_id}.jsonl"
        self._fh = None

    def add(self, file: str, offset: int, position: int, reason: str, raw: bytes) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(
            json.dumps(
                {"file": file, "offset": offset, "position": position, "reason": reason,
                 "raw_base64": base64.b64encode(raw).decode("ascii")},
                ensure_ascii=False,
            )
            + "\n"
        )
        self._fh.flush()

    def close(self) -> None:
        if self._fh:
            self._fh.close()


def _progress(paths: list[Path], quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = sum(p.stat().st_size for p in paths if p.exists())
    return tqdm(total=total, unit="B", unit_scale=True, desc="ingest", file=sys.stderr)


def _marc_bytes(rr: ReadRecord) -> bytes:
    raw = getattr(rr, "raw", None)
    if raw is not None and rr.encoding == "utf-8":
        return raw
    rec = rr.record
    rec.leader = rec.leader[:9] + "a" + rec.leader[10:]
    return rec.as_marc()


def ingest(
    data_dir: Path,
    library: str,
    files: Iterable[Path],
    *,
    full: bool = False,
    quiet: bool = False,
    on_batch: Callable[[Counts], None] | None = None,
) -> IngestResult:
    t0 = time.time()
    files = [Path(f) for f in files]
    store = open_store(data_dir)
    lib = load_libraries().get(library)
    counts = Counts()
    store.begin()
    run_id = store.start_run(library, full)
    store.commit()
    quarantine = Quarantine(data_dir, library, run_id)
    bar = _progress(files, quiet)
    interrupted = False
    in_batch = 0
    try:
        store.begin()
        for path in files:
            last_pos = 0
            reader = read_marc(path)
            for item in reader:
                counts.read += 1
                if isinstance(item, BadRecord):
                    counts.quarantined += 1
                    quarantine.add(str(path), item.offset, item.position, item.reason, item.raw)
                    continue
                rec = item.record
                if not _has_local_id(rec):
                    counts.quarantined += 1
                    quarantine.add(str(path), item.offset, item.position,
                                   "no control number (001): the record cannot be identified for updates",
                                   _safe_bytes(item))
                    continue
                try:
                    store.apply(SourceInput(lib, rec, _marc_bytes(item)), run_id, counts)
                except (ValueError, KeyError, IndexError, TypeError, UnicodeError) as e:
                    counts.quarantined += 1
                    quarantine.add(str(path), item.offset, item.position, f"cannot index record: {e!r}",
                                   _safe_bytes(item))
                    continue
                in_batch += 1
                if in_batch >= BATCH:
                    store.commit()
                    store.begin()
                    in_batch = 0
                    if on_batch:
                        on_batch(counts)
                if bar is not None:
                    pos = getattr(reader, "bytes_read", None)
                    if isinstance(pos, int):
                        bar.update(pos - last_pos)
                        last_pos = pos
        store.commit()
        if full:
            store.begin()
            for local_id in store.missing_from_run(library, run_id):
                if store.withdraw(library, local_id):
                    counts.withdrawn += 1
            store.commit()
    except KeyboardInterrupt:
        interrupted = True
        store.rollback()
    finally:
        if bar is not None:
            bar.close()
        quarantine.close()
    store.begin()
    store.finish_run(run_id, counts)
    store.commit()
    store.conn.close()
    return IngestResult(counts, quarantine.path if counts.quarantined else None, time.time() - t0, interrupted)


def _has_local_id(rec: pymarc.Record) -> bool:
    f = rec.get_fields("001")
    return bool(f and f[0].data and f[0].data.strip())


def _safe_bytes(item: ReadRecord) -> bytes:
    raw = getattr(item, "raw", None)
    if raw:
        return raw
    try:
        return item.record.as_marc()
    except Exception:  # noqa: BLE001 - quarantine must never fail on a bad record
        return str(item.record).encode("utf-8", "replace")
