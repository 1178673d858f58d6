"""The embedded index's writer: the rows a union record becomes in the store's
database file (layout: indexers/backends/sqlite_index.py, which searches them)."""
from __future__ import annotations

import sqlite3

from .. import ranking as rk
from .. import terms as T
from ..mapping import FieldMapping
from ..union import UnionDocument

SEP = "\ue000"   # between two values of one field (tokenize() never produces it)


# What the embedded index's documents are made of: the shared INDEX_FORMAT, and
# "+s1": record lengths (dlen), repeated words with the length (rep) and multi-valued number fields
# (meta num_multi:<field>) for indexers/ranking.py and unique ranges (issue 18); "+s2": the words
# occurring once in a field of the short records, ordered by length (post).  A
# catalog of another format is rebuilt by the next ingest (Store.rebuild_stale_index)
# and until then searched as before (FTS5 ranks everything, ranges are DISTINCT).
INDEX_FORMAT = T.INDEX_FORMAT + "+s2"


class SqliteIndexWriter:
    """IndexWriter for the store (indexers/store.py)."""

    index_format = INDEX_FORMAT

    def __init__(self, mapping: FieldMapping):
        self.types = mapping.field_types()
        self.text_fields = [n for n, t in self.types.items() if t == "text"]
        self.transforms = {r.name: r.transform for r in mapping.rules}

    def setup(self, conn: sqlite3.Connection) -> None:
        cols = ", ".join(self.text_fields)
        conn.executescript(
            f"""
            CREATE VIRTUAL TABLE IF NOT EXISTS ft USING fts5({cols}, tokenize='ascii', prefix='2 4');
            CREATE VIRTUAL TABLE IF NOT EXISTS ft_vocab USING fts5vocab(ft, 'row');
            CREATE TABLE IF NOT EXISTS term(field TEXT NOT NULL, key TEXT NOT NULL, display TEXT,
                                            union_id INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS term_fk ON term(field, key, union_id);
            CREATE INDEX IF NOT EXISTS term_u ON term(union_id);
            CREATE TABLE IF NOT EXISTS num(field TEXT NOT NULL, value INTEGER NOT NULL, union_id INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS num_fv ON num(field, value, union_id);
            CREATE INDEX IF NOT EXISTS num_u ON num(union_id);
            CREATE TABLE IF NOT EXISTS doc(union_id INTEGER PRIMARY KEY, sort_title TEXT, sort_creator TEXT,
                                           sort_date INTEGER);
            CREATE TABLE IF NOT EXISTS dlen(union_id INTEGER PRIMARY KEY, dl INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS rep(field TEXT NOT NULL, token TEXT NOT NULL, tf INTEGER NOT NULL,
                                           dl INTEGER NOT NULL, union_id INTEGER NOT NULL,
                                           PRIMARY KEY(field, token, tf, dl, union_id)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS post(field TEXT NOT NULL, token TEXT NOT NULL, dl INTEGER NOT NULL,
                                            union_id INTEGER NOT NULL,
                                            PRIMARY KEY(field, token, dl, union_id)) WITHOUT ROWID;
            """
        )

    def optimize(self, conn: sqlite3.Connection) -> None:
        """Merge the full-text index into one segment. After every document was written
        again (a rebuild for a new index format), FTS5 keeps each word's old entries and
        their deletions beside the new ones until segments merge, and every search reads
        them all: on the 250,000 LoC records a rebuilt index had twice the blocks, and
        ``dc.title=history`` answered 42 instead of 76 requests/s (about 5 s to merge)."""
        conn.execute("INSERT INTO ft(ft) VALUES('optimize')")

    def delete(self, conn: sqlite3.Connection, union_id: int) -> None:
        row = conn.execute(f"SELECT {', '.join(self.text_fields)} FROM ft WHERE rowid=?", (union_id,)).fetchone()
        if row is not None:
            dl, reps, once = rk.doc_rows(self.text_fields, row)
            conn.executemany("DELETE FROM rep WHERE field=? AND token=? AND tf=? AND dl=? AND union_id=?",
                             [(f, t, n, dl, union_id) for f, t, n in reps])
            conn.executemany("DELETE FROM post WHERE field=? AND token=? AND dl=? AND union_id=?",
                             [(f, t, dl, union_id) for f, t in once])
        conn.execute("DELETE FROM ft WHERE rowid=?", (union_id,))
        conn.execute("DELETE FROM term WHERE union_id=?", (union_id,))
        conn.execute("DELETE FROM num WHERE union_id=?", (union_id,))
        conn.execute("DELETE FROM doc WHERE union_id=?", (union_id,))
        conn.execute("DELETE FROM dlen WHERE union_id=?", (union_id,))

    def payload(self, doc: UnionDocument):
        """The rows a document becomes (pure; may run in a worker process):
        FTS column texts, whole-value keys, numbers, its length in tokens, its
        repeated words and (a short record) its words occurring once (indexers/ranking.py)."""
        e = T.index_entries(doc.fields, self.types, self.transforms, self.text_fields)
        cols = [f" {SEP} ".join(" ".join(toks) for toks in e.texts[f]) for f in self.text_fields]
        terms, nums = e.keys, e.numbers
        dl, reps, once = rk.doc_rows(self.text_fields, cols)
        return cols, terms, nums, dl, reps, once

    def put(self, conn: sqlite3.Connection, doc: UnionDocument, fresh: bool = False, payload=None) -> None:
        uid = doc.union_id
        if not fresh:
            self.delete(conn, uid)
        cols, terms, nums, dl, reps, once = payload if payload is not None else self.payload(doc)
        conn.execute(self._ft_insert, [uid, *cols])
        if reps:
            conn.executemany("INSERT OR REPLACE INTO rep(field, token, tf, dl, union_id) VALUES (?,?,?,?,?)",
                             [(f, t, n, dl, uid) for f, t, n in reps])
        if once:
            conn.executemany("INSERT OR REPLACE INTO post(field, token, dl, union_id) VALUES (?,?,?,?)",
                             [(f, t, dl, uid) for f, t in once])
        conn.executemany(
            "INSERT INTO term(field, key, display, union_id) VALUES (?,?,?,?)", [(f, k, d, uid) for f, k, d in terms]
        )
        if nums:
            conn.executemany("INSERT INTO num(field, value, union_id) VALUES (?,?,?)", [(f, v, uid) for f, v in nums])
            seen: set[str] = set()
            for f, _v in nums:
                if f in seen:   # a record with two values of one number field: its ranges need DISTINCT
                    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, '1')", (f"num_multi:{f}",))
                seen.add(f)
        conn.execute(
            "INSERT INTO doc(union_id, sort_title, sort_creator, sort_date) VALUES (?,?,?,?)",
            (uid, doc.sort_title, doc.sort_creator, doc.sort_date),
        )
        conn.execute("INSERT INTO dlen(union_id, dl) VALUES (?,?)", (uid, dl))

    @property
    def _ft_insert(self) -> str:
        cols = ", ".join(self.text_fields)
        return f"INSERT INTO ft(rowid, {cols}) VALUES (?{', ?' * len(self.text_fields)})"
