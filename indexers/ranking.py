"""The first pages of a BM25 ranking without scoring every hit (issue 18).

FTS5's ``bm25()`` costs a few microseconds a hit (it reads each hit's size and
positions), so ranking a broad word's 6,000 hits to show ten cost 20 ms.  For the
commonest query -- one or more words (each one FTS5 token, ``and``-ed) in one text
field, e.g. ``dc.title=history``, ``dc.subject=women`` -- the order can be had
without that:

* FTS5 scores a hit ``-sum_i idf_i * f_i*(k1+1) / (f_i + k1*(1 - b + b*D/avgdl))``
  where ``f_i`` is the field's weight times how often word i occurs in the field
  and ``D`` the record's length in tokens (all fields).  Every hit has every word;
  when each occurs once, ``f_i`` is the weight for all hits and the score falls
  with ``D`` alone: the ranking is ascending ``D``, then ascending rowid (our tie
  break) -- an index walk over ``doc(dl, union_id)`` that stops after the page.
* Records where a word occurs twice or more in that field are few; the ``rep``
  table lists them (field, word, union id, count).  They are scored here with the
  same formula, in the same floating-point operations as FTS5 (so the same
  doubles), and merged into the walk.

The result is the exact order of ``ORDER BY bm25(ft, weights...), rowid`` for every
prefix, so any page (``startRecord=5001``) is what the full ranking gives; tests
compare the two on every prefix (tests/test_ranking_topk.py).  Anything else
(phrases, masks, several fields, ``or``, readings and variants of a word) is
ranked by FTS5 as before.  Pure functions and SQL only; the catalog decides when
to use it (indexers/backends/sqlite_index.py).
"""
from __future__ import annotations

import json
import math
import re
import sqlite3
import string
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

K1 = 1.2   # FTS5's bm25 constants (fts5_aux.c)
B = 0.75
SEP = "\ue000"  # the value separator of indexers/backends/sqlite_index.py: never a query word
# the fields whose repeated words are kept in ``rep``: a one-field query on one of
# these is ranked here (notes are long and have no index of their own)
FAST_FIELDS = frozenset({"title", "creator", "subject", "publisher"})

# FTS5's ascii tokenizer: ASCII letters and digits and every non-ASCII character
# are token characters, ASCII letters are folded to lower case
_FTS_TOKEN = re.compile(r"[0-9A-Za-z\u0080-\U0010ffff]+")
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fts_tokens(text: str) -> list[str]:
    """The tokens FTS5's ascii tokenizer makes of ``text``."""
    return _FTS_TOKEN.findall(text.translate(_LOWER))


def doc_stats(fields: Sequence[str], cols: Sequence[str]) -> tuple[int, list[tuple[str, str, int]]]:
    """(the document's length in FTS5 tokens over all columns -- FTS5's ``D`` --,
    the (field, token, count) of tokens occurring twice or more in a FAST_FIELDS
    column).  ``cols``: the FTS column texts, in the order of ``fields``."""
    dl = 0
    reps: list[tuple[str, str, int]] = []
    for f, text in zip(fields, cols):
        if not text:
            continue
        toks = fts_tokens(text)
        dl += len(toks)
        if f in FAST_FIELDS and len(set(toks)) < len(toks):
            reps += [(f, t, n) for t, n in Counter(toks).items() if n > 1 and t != SEP]
    return dl, reps


@dataclass(frozen=True)
class OneField:
    """A query rankable here: ``tokens`` (each one FTS5 token, all required) in one
    FTS column ``field`` of weight ``weight``; ``expr`` its FTS5 MATCH expression."""

    field: str
    column: int
    tokens: tuple[str, ...]
    weight: float
    expr: str


def one_field(field: str, column: int, weight: float, expr: str, groups) -> OneField | None:
    """``OneField`` for a text clause on one field whose every group (all required)
    is exactly one alternative of one plain word that is one FTS5 token; else None."""
    if field not in FAST_FIELDS or not groups:
        return None
    toks: list[str] = []
    for alts in groups:
        if len(alts) != 1 or len(alts[0]) != 1:
            return None
        t = alts[0][0]
        if t.masked or fts_tokens(t.text) != [t.text]:
            return None
        toks.append(t.text)
    return OneField(field, column, tuple(toks), weight, expr)


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


HITS = "SELECT rowid FROM ft WHERE ft MATCH ?"


def top(conn: sqlite3.Connection, q: OneField, n: int, total: int, ncols: int) -> list[int] | None:
    """The first ``n`` union ids of ``ORDER BY bm25(...), rowid`` for ``q``
    (``total``: its number of hits; ``ncols``: FTS columns); None when FTS5's
    statistics cannot be read."""
    n = max(0, min(n, total))
    if n == 0:
        return []
    stats = averages(conn, ncols)
    if stats is None:
        return None
    nrow, ntok = stats
    distinct = sorted(set(q.tokens))
    # hits in which a word occurs more than once in the field: scored one by one
    qm = ",".join("?" * len(distinct))
    if len(distinct) == 1:
        rep_rows = conn.execute("SELECT union_id, token, tf FROM rep WHERE field=? AND token=?",
                                (q.field, distinct[0])).fetchall()
    else:
        rep_rows = conn.execute(f"SELECT union_id, token, tf FROM rep WHERE field=? AND token IN ({qm})"
                                f" AND union_id IN ({HITS})", (q.field, *distinct, q.expr)).fetchall()
    reps: dict[int, dict[str, int]] = {}
    for uid, tok, tf in rep_rows:
        reps.setdefault(uid, {})[tok] = tf
    want = n + len(reps)
    if want * nrow <= total * total:
        # few rows wanted from many hits: walk the records shortest first, keep hits
        walk = conn.execute(f"SELECT union_id, dl FROM doc INDEXED BY doc_dl WHERE union_id IN ({HITS})"
                            f" ORDER BY dl, union_id LIMIT {int(want)}", (q.expr,)).fetchall()
    else:
        walk = conn.execute("SELECT d.union_id, d.dl FROM (SELECT rowid AS id FROM ft WHERE ft MATCH ?) h"
                            " CROSS JOIN doc d ON d.union_id = h.id"
                            f" ORDER BY d.dl, d.union_id LIMIT {int(want)}", (q.expr,)).fetchall()
    if not reps:
        return [uid for uid, _ in walk[:n]]
    avgdl = float(ntok) / float(nrow)
    nhits = {distinct[0]: total} if len(distinct) == 1 else {
        t: conn.execute("SELECT count(*) FROM ft WHERE ft MATCH ?",
                        (f"{{{q.field}}} : \"{t}\"",)).fetchone()[0] for t in distinct}
    idfs = [idf(nrow, nhits[t]) for t in q.tokens]
    lengths = dict(conn.execute("SELECT union_id, dl FROM doc WHERE union_id IN (SELECT value FROM json_each(?))",
                                (json.dumps(list(reps)),)))
    once = [q.weight] * len(q.tokens)
    ranked = [(score(idfs, once, d, avgdl), uid) for uid, d in walk if uid not in reps]
    for uid, tfs in reps.items():
        freqs = [sum([q.weight] * tfs.get(t, 1)) for t in q.tokens]   # FTS5 adds the weight per occurrence
        ranked.append((score(idfs, freqs, lengths[uid], avgdl), uid))
    ranked.sort()
    return [uid for _, uid in ranked[:n]]
