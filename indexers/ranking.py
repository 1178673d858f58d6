"""The first pages of a BM25 ranking without FTS5 scoring every hit (issue 18).

FTS5's ``bm25()`` costs a few microseconds a hit (it reads each hit's size and
positions), so ranking a broad word's 6,000 hits to show ten cost 20 ms.  For the
commonest ranked query -- one word (one FTS5 token) in one text field, e.g.
``dc.title=history``, ``dc.subject=women`` -- the order can be had more cheaply:

* FTS5 scores a hit ``-idf * f*(k1+1) / (f + k1*(1 - b + b*D/avgdl))`` where
  ``f`` is the field's weight times how often the word occurs in the field (tf)
  and ``D`` the record's length in tokens (all fields).  Among hits of equal tf
  the score falls with ``D`` alone: their order is ascending length, then
  ascending rowid (our tie break).
* Hits with tf = 1 (most of them): ``post`` keeps them for the records no longer
  than POST_MAX_DL tokens, keyed (field, word, length, union id), so the first n
  of a broad word are the first n rows of an index range -- nothing read for the
  other hits.  When a page reaches past what ``post`` holds for the word, the
  FTS5 hits are joined to their lengths (table dlen) and sorted with a bound of
  the page's end (linear in the hits, but no positions or sizes read).
  Hits with tf >= 2 are fewer; ``rep`` lists them (field, word, tf, length,
  union id), its primary key already in their order.
* The first n of each class, scored with FTS5's formula in its floating-point
  operations (so the same doubles), merged, are the first n of the ranking.

The result is the exact order of ``ORDER BY bm25(ft, weights...), rowid`` for every
prefix, so any page (``startRecord=5001``) is what the full ranking gives; tests
compare the two on every prefix (tests/test_ranking_topk.py).  Anything else
(phrases, masks, several words or fields, ``or``, readings and variants of a word)
is ranked by FTS5 as before.  Pure functions and SQL only; the catalog decides
when to use it (indexers/backends/sqlite_index.py).
"""
from __future__ import annotations

import math
import re
import sqlite3
import string
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

K1 = 1.2   # FTS5's bm25 constants (fts5_aux.c)
B = 0.75
# the fields whose repeated words are kept in ``rep``: a one-field query on one of
# these is ranked here (notes are long and have no index of their own)
FAST_FIELDS = frozenset({"title", "creator", "subject", "publisher"})
# ``post`` keeps the words occurring once in such a field of the records no longer
# than this (in FTS5 tokens, all columns): the first hits of the tf = 1 class.  On the
# 250,000 LoC records 32 is about the 40th percentile of the lengths: 6.2 rows a
# record (all records: 20.5)
POST_MAX_DL = 32

# FTS5's ascii tokenizer: ASCII letters and digits and every non-ASCII character
# are token characters, ASCII letters are folded to lower case
_FTS_TOKEN = re.compile(r"[0-9A-Za-z\u0080-\U0010ffff]+")
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


# what makes FTS5 cut or fold a space-separated token of ours (the columns are
# pre-tokenized, so this is rare): ASCII other than space, letters and digits
_NOT_PLAIN = re.compile(r"[\x00-\x1f\x21-\x2f\x3a-\x60\x7b-\x7f]")


def fts_tokens(text: str) -> list[str]:
    """The tokens FTS5's ascii tokenizer makes of ``text``."""
    if _NOT_PLAIN.search(text) is None:   # the common case, several times faster
        return [t for t in text.split(" ") if t]
    return _FTS_TOKEN.findall(text.translate(_LOWER))


def doc_stats(fields: Sequence[str], cols: Sequence[str]) -> tuple[int, list[tuple[str, str, int]]]:
    """(the document's length in FTS5 tokens over all columns -- FTS5's ``D`` --,
    the (field, token, count) of ASCII tokens occurring twice or more in a
    FAST_FIELDS column).  ``cols``: the FTS column texts, in the order of
    ``fields``.  The rep table keeps these with the length: (field, token, tf,
    dl, union_id)."""
    dl, reps, _once = doc_rows(fields, cols)
    return dl, reps


def doc_rows(fields: Sequence[str], cols: Sequence[str]
             ) -> tuple[int, list[tuple[str, str, int]], list[tuple[str, str]]]:
    """``doc_stats``, and the (field, token) of the ASCII tokens occurring once in a
    FAST_FIELDS column when the document is no longer than POST_MAX_DL tokens (else
    none): the rows of ``post``, (field, token, dl, union_id)."""
    dl = 0
    reps: list[tuple[str, str, int]] = []
    split: list[tuple[str, list[str], Counter | None]] = []
    for f, text in zip(fields, cols):
        if not text:
            continue
        if f not in FAST_FIELDS and "  " not in text and _NOT_PLAIN.search(text) is None and text[0] != " " \
                and text[-1] != " ":
            dl += text.count(" ") + 1     # single-spaced plain tokens (notes: long): counted, not split
            continue
        toks = fts_tokens(text)
        dl += len(toks)
        if f in FAST_FIELDS:
            counts = None
            if len(set(toks)) < len(toks):
                counts = Counter(toks)
                reps += [(f, t, n) for t, n in counts.items() if n > 1 and t.isascii()]
            split.append((f, toks, counts))
    once: list[tuple[str, str]] = []
    if dl <= POST_MAX_DL:
        for f, toks, counts in split:
            if counts is None:
                once += [(f, t) for t in toks if t.isascii()]
            else:
                once += [(f, t) for t, n in counts.items() if n == 1 and t.isascii()]
    return dl, reps, once


@dataclass(frozen=True)
class OneField:
    """A query rankable here: ``tokens`` (each one FTS5 token, all required) in one
    FTS column ``field`` of weight ``weight``; ``expr`` its FTS5 MATCH expression."""

    field: str
    column: int
    tokens: tuple[str, ...]
    weight: float
    expr: str
    # the word's other alternatives (its readings, e.g. women -> おめん) as a MATCH
    # expression: when no record has them in the field, the ranking is the word's
    others: str | None = None


def one_field(field: str, column: int, weight: float, expr: str, groups, others: str | None = None
              ) -> OneField | None:
    """``OneField`` for a text clause on one field of one group whose first
    alternative is one plain ASCII word that is one FTS5 token (the words ``rep``
    keeps: not CJK characters nor reading tokens); ``others``: the MATCH
    expression of the group's other alternatives, if any; else None."""
    if field not in FAST_FIELDS or len(groups) != 1 or len(groups[0][0]) != 1:
        return None
    t = groups[0][0][0]
    if t.masked or not t.text.isascii() or fts_tokens(t.text) != [t.text]:
        return None
    return OneField(field, column, (t.text,), weight, expr, others if len(groups[0]) > 1 else None)


def _varint(blob: bytes, i: int) -> tuple[int, int]:
    """SQLite's varint (as FTS5 writes them) at ``blob[i]``: (value, next index)."""
    v = 0
    for n in range(8):
        c = blob[i + n]
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, i + n + 1
    return (v << 8) | blob[i + 8], i + 9


def averages(conn: sqlite3.Connection, ncols: int) -> tuple[int, int] | None:
    """(rows, tokens in all columns) as FTS5 keeps them for bm25 (its averages
    record, ft_data id 1: a varint row count, then one varint total per column);
    None when it cannot be read (the caller then lets FTS5 rank)."""
    row = conn.execute("SELECT block FROM ft_data WHERE id=1").fetchone()
    if row is None or not isinstance(row[0], bytes):
        return None
    try:
        nrow, i = _varint(row[0], 0)
        total = 0
        for _ in range(ncols):
            v, i = _varint(row[0], i)
            total += v
    except IndexError:
        return None
    return (nrow, total) if nrow > 0 else None


def idf(nrow: int, nhit: int) -> float:
    v = math.log((nrow - nhit + 0.5) / (nhit + 0.5))
    return v if v > 0.0 else 1e-6


def score(idfs: Sequence[float], freqs: Sequence[float], d: int, avgdl: float) -> float:
    """FTS5's bm25 of one row, in its floating-point operations and order."""
    s = 0.0
    dd = float(d)
    for w, f in zip(idfs, freqs):
        s += w * ((f * (K1 + 1.0)) / (f + K1 * (1 - B + B * dd / avgdl)))
    return -1.0 * s


MAX_SKIP = 2000   # up to this many records with the word repeated are skipped in Python, not in SQL


def top(conn: sqlite3.Connection, q: OneField, n: int, total: int, ncols: int) -> list[int] | None:
    """The first ``n`` union ids of ``ORDER BY bm25(...), rowid`` for ``q``
    (``total``: its number of hits; ``ncols``: FTS columns); None when FTS5's
    statistics cannot be read.

    The hits fall into classes by how often the word occurs in the field (tf).
    Within a class every hit has the same ``f``, so the order is ascending length,
    then union id: tf = 1 (most hits) is a range of ``post``'s primary key when it
    holds n of them, else the hits joined to their lengths in dlen, sorted with a
    bound of ``n``; tf >= 2 is a range of ``rep``'s primary key, already in that
    order.  The first ``n`` of each class, scored with FTS5's
    formula, merged, give the first ``n`` overall."""
    n = max(0, min(n, total))
    if n == 0:
        return []
    if q.others is not None and conn.execute("SELECT 1 FROM ft WHERE ft MATCH ? LIMIT 1", (q.others,)).fetchone():
        return None   # a record has a reading of the word: its score has more terms, FTS5 ranks
    stats = averages(conn, ncols)
    if stats is None:
        return None
    nrow, ntok = stats
    (tok,) = q.tokens
    classes: list[tuple[int, list[tuple[int, int]]]] = []   # (tf, [(dl, union id)...] in order)
    tf = 1
    while True:
        row = conn.execute("SELECT MIN(tf) FROM rep WHERE field=? AND token=? AND tf>?", (q.field, tok, tf)).fetchone()
        if row[0] is None:
            break
        tf = row[0]
        classes.append((tf, conn.execute(f"SELECT dl, union_id FROM rep WHERE field=? AND token=? AND tf=?"
                                         f" ORDER BY dl, union_id LIMIT {int(n)}", (q.field, tok, tf)).fetchall()))
    # the tf = 1 class from post: its first n hits by (length, union id) when n of them are
    # there (post has every tf = 1 hit of a record up to POST_MAX_DL long, so no hit
    # missing from it comes before the n-th); else from the join below
    once = conn.execute(f"SELECT dl, union_id FROM post WHERE field=? AND token=? ORDER BY dl, union_id"
                        f" LIMIT {int(n)}", (q.field, tok)).fetchall()
    if len(once) < n:
        once = _once_joined(conn, q, tok, n)
    if not classes:
        return [uid for _dl, uid in once]
    avgdl = float(ntok) / float(nrow)
    idfs = [idf(nrow, total)]
    ranked: list[tuple[float, int]] = []
    for tf, members in [(1, once), *classes]:
        f = [sum([q.weight] * tf)]    # FTS5 adds the weight once per occurrence
        scores: dict[int, float] = {}   # a score depends on the length alone within a class
        for d, uid in members:
            s = scores.get(d)
            if s is None:
                s = scores[d] = score(idfs, f, d, avgdl)
            ranked.append((s, uid))
    ranked.sort()
    return [uid for _s, uid in ranked[:n]]


def _once_joined(conn: sqlite3.Connection, q: OneField, tok: str, n: int) -> list[tuple[int, int]]:
    """The first ``n`` (length, union id) of the tf = 1 class of ``q``'s hits: every
    hit joined to its length in dlen, the repeated ones left out, sorted with a
    bound of ``n`` (linear in the hits: used when ``post`` has fewer than n)."""
    nrep = conn.execute("SELECT COUNT(*) FROM rep WHERE field=? AND token=?", (q.field, tok)).fetchone()[0]
    join = ("SELECT d.dl, d.union_id FROM (SELECT rowid AS id FROM ft WHERE ft MATCH ?) h"
            " CROSS JOIN dlen d ON d.union_id = h.id")
    if nrep <= MAX_SKIP:
        # the tf >= 2 hits are skipped here: n + their number is enough
        reps = {r[0] for r in conn.execute("SELECT union_id FROM rep WHERE field=? AND token=?", (q.field, tok))}
        return [r for r in conn.execute(f"{join} ORDER BY d.dl, d.union_id LIMIT {int(n + nrep)}", (q.expr,))
                if r[1] not in reps][:n]
    return conn.execute(f"{join} WHERE h.id NOT IN (SELECT union_id FROM rep WHERE field=? AND token=?)"
                        f" ORDER BY d.dl, d.union_id LIMIT {int(n)}", (q.expr, q.field, tok)).fetchall()
