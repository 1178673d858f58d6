"""Scan on the embedded index (SQLite): the terms of an index around a start term,
with their record counts -- SRU scan, Z39.50 Scan, the OPAC's browse lists.  Split
from sqlite_index.py (SqliteCatalog.scan_sync), unchanged."""
from __future__ import annotations

import sqlite3

from .. import terms as T
from ..index_config import IndexConfig
from ..query_model import QueryError
from ..records import ScanTerm
from ..terms import EXACT_SKIP


def scan(conn: sqlite3.Connection, config: IndexConfig, writer, index: str, term: str, response_position: int,
         maximum_terms: int) -> list[ScanTerm]:
    idx = config.indexes.get(index)
    if idx is None:
        raise QueryError(16, index, f"unsupported index {index}")
    fields = [f for f in idx.fields if f not in EXACT_SKIP]
    types = {writer.types.get(f, "key") for f in fields}
    if types == {"number"}:
        key = term.strip()
        numeric = True
    else:
        fields = [f for f in fields if writer.types.get(f) != "number"]
        tf = writer.transforms.get(fields[0]) if len(fields) == 1 else None
        key = T.scan_key(tf, term)
        numeric = False
    by_reading = None if numeric else T.reading_scan(fields, term)
    if by_reading is not None:
        fields, key = by_reading
    before_n = max(0, min(response_position - 1, maximum_terms))
    after_n = max(0, maximum_terms - before_n)

    def collect(op: str, order: str, n: int) -> list[tuple[str, str]]:
        if n <= 0:
            return []
        got: dict[str, str] = {}
        for f in fields:
            if numeric:
                try:
                    kv = T.number(key) if key else (-(10**9) if op == ">=" else 10**9)
                except ValueError:
                    raise QueryError(36, term, "scan term is not a number") from None
                sql = (f"SELECT DISTINCT value, value FROM num WHERE field=? AND value {op} ? "
                       f"ORDER BY value {order} LIMIT ?")
                rows = conn.execute(sql, (f, kv, n))
            else:
                sql = (f"SELECT key, MIN(display) FROM term WHERE field=? AND key {op} ? "
                       f"GROUP BY key ORDER BY key {order} LIMIT ?")
                rows = conn.execute(sql, (f, key, n))
            for k, d in rows:
                got.setdefault(str(k), str(d))
        keys = sorted(got, key=(lambda s: int(s)) if numeric else None, reverse=(order == "DESC"))[:n]
        return [(k, got[k]) for k in keys]

    before = list(reversed(collect("<", "DESC", before_n)))
    after = collect(">=", "ASC", after_n)
    out = []
    fq = ",".join("?" * len(fields))
    for k, d in before + after:
        if numeric:
            cnt = conn.execute(f"SELECT COUNT(DISTINCT union_id) FROM num WHERE field IN ({fq}) AND value=?",
                               (*fields, int(k))).fetchone()[0]
        else:
            cnt = conn.execute(f"SELECT COUNT(DISTINCT union_id) FROM term WHERE field IN ({fq}) AND key=?",
                               (*fields, k)).fetchone()[0]
        out.append(ScanTerm(*T.reading_scan_term(k, d), cnt) if by_reading else ScanTerm(k, d, cnt))
    return out
