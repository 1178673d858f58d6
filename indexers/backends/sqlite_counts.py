"""Counting a range on a number field without walking it (the embedded index, issue 18).

``dc.date>=1999 and dc.date<=2001`` matches 168,000 of the 250,000 LoC records:
counting them in the ``num`` index is 168,000 index steps (tens of milliseconds),
and every other search of that process waits behind it.  A number field that no
record has two values of (``single_valued`` in sqlite_index.py) is counted instead
from its values' counts: one ``GROUP BY`` over the field, read once per catalog
generation and kept in a small in-memory SQLite table, where the range's own
condition (the same SQL text and parameters the search uses) picks the values to
add up -- a few hundred rows instead of the hits.

The counts are read in one statement with the generation they belong to;
a search of another generation (an ingest committed in between) gets None and
counts in the catalog as before.  Only the count comes from here: the ids, pages
and everything else still come from the catalog.
"""
from __future__ import annotations

import sqlite3
import threading


class RangeCounts:
    """Per-value counts of single-valued number fields, for one catalog generation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._mem: sqlite3.Connection | None = None
        self._fields: set[str] = set()

    def total(self, conn: sqlite3.Connection, generation: str | None, field: str, cond: str,
              params: list) -> int | None:
        """How many records have a value of ``field`` satisfying ``cond`` (SQL over the
        column ``value``), or None when the counts of ``generation`` are not at hand."""
        if generation is None or not self._lock.acquire(blocking=False):
            return None     # another thread is reading the counts: never wait for it on the event loop
        try:
            if self._generation != generation or field not in self._fields:
                if not self._load(conn, generation, field):
                    return None
            assert self._mem is not None
            row = self._mem.execute(f"SELECT TOTAL(n) FROM h WHERE field = ? AND ({cond})", [field, *params]).fetchone()
            return int(row[0])
        finally:
            self._lock.release()

    def _load(self, conn: sqlite3.Connection, generation: str, field: str) -> bool:
        """Read ``field``'s counts and the generation in one statement (one snapshot of
        the catalog); False if the catalog is already at another generation than the
        search's."""
        rows = conn.execute("SELECT NULL, value FROM meta WHERE key = 'generation' UNION ALL"
                            " SELECT value, COUNT(*) FROM num WHERE field = ? GROUP BY value", (field,)).fetchall()
        if next((n for v, n in rows if v is None), None) != generation:
            return False
        rows = [(v, n) for v, n in rows if v is not None]
        if self._generation != generation or self._mem is None:
            if self._mem is not None:
                self._mem.close()
            self._mem = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._mem.execute("CREATE TABLE h(field TEXT NOT NULL, value INTEGER NOT NULL, n INTEGER NOT NULL)")
            self._mem.execute("CREATE INDEX h_fv ON h(field, value)")
            self._fields = set()
            self._generation = generation
        self._mem.executemany("INSERT INTO h(field, value, n) VALUES (?, ?, ?)", [(field, v, n) for v, n in rows])
        self._fields.add(field)
        return True
