"""The embedded index: SQLite FTS5 plus plain tables, in the store's database file.

Layout
* ``ft`` (FTS5, ascii tokenizer, one column per *text* field): each value is
  written pre-tokenized by indexers.normalize.tokenize -- Latin words as words,
  every CJK character as a token of its own -- so a CJK term is a phrase of
  characters (substring semantics) and a Latin word matches whole words.  Values
  of one field are separated by a sentinel token (U+E000, which tokenize() never
  produces) so phrases and proximity never run across two values.
* ``term`` (field, key, display, union_id): whole normalized values (exact_key) of
  text fields and normalized keys (ISBN, ISSN, language, library ...): ==, exact,
  ranges on text, scan, facets.
* ``num`` (field, value, union_id): numbers (year): ranges, numeric sort, facets.
* ``doc`` (union_id, sort keys): sorting.

Query execution compiles the query model into one FTS5 MATCH expression when it
can (fast path, ranked by bm25), else into SQL set operations over the tables
above; what neither can express exactly (a phrase with inner masks, prox with
distance and order) runs FTS5 as a candidate filter and verifies positions in
Python on the stored token streams.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Mapping, Sequence

from .. import normalize as nz
from .. import ranking as rk
from .. import terms as T
from ..backend import BackendUnavailable, Catalog
from ..index_config import IndexConfig, load_index_config
from ..mapping import FieldMapping, load_mapping
from ..query_model import Boolean, Clause, Node, Prox, Query, QueryError, operands
from ..records import FacetValue, ScanTerm, SearchResult, UnionRecord
from ..store import connect, load_display_iso2709, load_union_records
from ..terms import EXACT_SKIP, MAX_EXPANSION
from . import sqlite_scan
from .sqlite_counts import RangeCounts
from .sqlite_exec import SlowWork, load_slow_work, pool_for
from .sqlite_inline import INLINE_BUDGET, InlineWork, _slow_key
from .sqlite_writer import INDEX_FORMAT, SEP, SqliteIndexWriter

log = logging.getLogger("unioncat.sqlite")

MATERIALIZE = 2000  # results up to this many hits are kept as id lists; larger ones are paged in SQL
# Searches, pages, fetches, scans and facets run inline on the event loop within INLINE_BUDGET
# of SQLite time, else on the slow-work threads: sqlite_inline.py.
PLANS = 1024            # compiled queries kept per catalog generation (SqliteCatalog._compile)
PLAN_BYTES = 65536      # ... unless they carry more than this of ids or keys (materialized parts)
NO_MATCH = '"\ue001"'  # a token that is never indexed
GENERATION_SQL = "SELECT value FROM meta WHERE key='generation'"
# How deeply one MATCH expression / one SQL statement may nest before the part is
# run on its own and kept as ids (FTS5's and SQLite's parsers overflow at a few
# dozen / about 15 levels; chains of one operator stay flat and never get here).
MAX_FTS_DEPTH = 12
MAX_SQL_DEPTH = 8


def _fts_quote(tokens: Sequence[str]) -> str:
    return '"' + " ".join(t.replace('"', '""') for t in tokens) + '"'


# --------------------------------------------------------------------------
# query compilation


@dataclass
class _Lazy:
    """A result set as SQL: its ordered form (pages) and its set form (counts,
    facets, cql.resultSetId)."""

    order_sql: str
    order_params: list
    set_sql: str
    set_params: list
    # the same order computed by indexers/ranking.py (one-field word queries), else None
    fast: rk.OneField | None = None


# A small unranked set is kept as the JSON array of its ids (search_sync): its handle
# reads that array (json_each keeps its order), and pages are slices of it, parsed once.
SNAPSHOT_ORDER = "SELECT value AS id FROM json_each(?)"
SNAPSHOT_SET = "SELECT value AS id FROM json_each(?)"


def _snapshot(ids_json: str) -> _Lazy:
    return _Lazy(SNAPSHOT_ORDER, [ids_json], SNAPSHOT_SET, [ids_json])


def _snapshot_ids(h) -> list[int] | None:
    """The ids of a snapshot handle (parsed on first use, then kept on it); None for
    any other handle."""
    if not isinstance(h, _Lazy) or h.order_sql != SNAPSHOT_ORDER or h.fast is not None:
        return None
    ids = h.__dict__.get("_ids")
    if ids is None:
        ids = h.__dict__["_ids"] = json.loads(h.order_params[0])
    return ids


@dataclass
class Fts:
    """A node expressible as one FTS5 MATCH expression.  ``chain``: the operator
    (AND, OR, NOT) of a flat chain ``a AND b AND c`` that another operand of the
    same operator may extend without parentheses; ``depth``: how deeply its
    operators nest (FTS5's parser overflows beyond a few dozen levels)."""

    expr: str
    chain: str | None = None
    depth: int = 1


@dataclass
class Sql:
    """A node as an SQL query returning column ``id``.  A clause on a number
    field also keeps its condition (``num``) so that ``and`` of two ranges on the
    same field becomes one indexed range instead of an intersection of two sets.
    ``chain`` and ``depth`` as for Fts: a compound SELECT of one operator is
    extended flat; ``depth`` counts nested subqueries (SQLite's parser overflows
    at about 15)."""

    sql: str
    params: list
    num: tuple | None = None  # (fields, condition, condition params)
    unique: bool = False  # the ids are already distinct (no DISTINCT needed)
    chain: str | None = None
    depth: int = 1
    ranges: int = 1      # conditions merged into ``num``


Plan = Fts | Sql


MATERIALIZE_KEYS = 1000        # an `any` clause on a key index with more values runs first, as ids



class Compiler:
    def __init__(self, conn, config: IndexConfig, writer: SqliteIndexWriter, result_sets,
                 single_valued: frozenset[str] = frozenset()):
        self.conn = conn
        self.config = config
        self.types = writer.types
        self.transforms = writer.transforms
        self.text_fields = writer.text_fields
        self.result_sets = result_sets or {}
        self.rank_exprs: list[str] = []
        # number fields no record has two values of (their ranges need no DISTINCT)
        self.single_valued = single_valued
        # the last text clause compiled, when indexers/ranking.py can rank it
        self.one_field: rk.OneField | None = None
        self.used_result_sets = False   # the plan depends on the caller's result sets (not kept)

    # entry
    def compile(self, node: Node, positive: bool = True) -> Plan:
        if isinstance(node, Boolean):
            return self.boolean(node, positive)
        if isinstance(node, Prox):
            return self.prox(node)
        return self.clause(node, positive)

    def boolean(self, node: Boolean, positive: bool) -> Plan:
        """A chain of one operator as one flat expression (``a AND b AND c``, a
        compound SELECT of one operator), not one nesting level per operator: a
        query of 100 terms must not overflow FTS5's or SQLite's parser.  In and/or
        chains the FTS operands become one MATCH expression and ranges on one
        number field one range (dc.date>=1999 and dc.date<=2001, docs/search.md)."""
        parts = operands(node)
        plans = [self.compile(parts[0], positive)]
        plans += [self.compile(p, positive if node.op != "not" else not positive) for p in parts[1:]]
        if node.op == "not":
            acc_not = plans[0]
            for p in plans[1:]:
                acc_not = self.combine("not", acc_not, p)
            return acc_not
        fts = [p for p in plans if isinstance(p, Fts)]
        sqls = [p for p in plans if isinstance(p, Sql)]
        if node.op == "and":
            merged: list[Sql] = []
            for s in sqls:
                same = next((m for m in merged if m.num and s.num and m.num[0] == s.num[0]), None)
                if same is None:
                    merged.append(s)
                else:
                    merged[merged.index(same)] = self.merge_ranges(same, s)
            sqls = merged
        acc: Plan | None = None
        ordered: list[Plan] = [*fts, *sqls]
        for p in ordered:
            acc = p if acc is None else self.combine(node.op, acc, p)
        assert acc is not None           # operands() gives two or more
        return acc

    def merge_ranges(self, left: Sql, right: Sql) -> Sql:
        assert left.num is not None and right.num is not None   # merged only when both have one
        fields = left.num[0]
        lcond = left.num[1] if left.ranges > 1 else f"({left.num[1]})"   # a flat chain of conditions
        cond = f"{lcond} AND ({right.num[1]})"
        cparams = [*left.num[2], *right.num[2]]
        return Sql(f"SELECT union_id AS id FROM num WHERE field IN ({','.join('?' * len(fields))}) AND {cond}",
                   [*fields, *cparams], (fields, cond, cparams), ranges=left.ranges + 1,
                   unique=len(fields) == 1 and fields[0] in self.single_valued)

    def combine(self, op: str, left: Plan, right: Plan) -> Plan:
        """``left op right`` (op: and, or, not), extending a flat chain of the same
        operator; a result nested deeper than the parsers allow is run at once and
        kept as its ids."""
        if isinstance(left, Fts) and isinstance(right, Fts):
            x = op.upper()
            flat_left = left.chain == x
            flat_right = right.chain == x and x != "NOT"   # NOT chains only on the left
            expr = (f"{left.expr if flat_left else '(' + left.expr + ')'} {x} "
                    f"{right.expr if flat_right else '(' + right.expr + ')'}")
            plan: Plan = Fts(expr, x, max(left.depth + (not flat_left), right.depth + (not flat_right)))
            return self.materialize(plan) if plan.depth > MAX_FTS_DEPTH else plan
        x = {"and": "INTERSECT", "or": "UNION", "not": "EXCEPT"}[op]
        lhs, rhs = self.to_sql(left), self.to_sql(right)
        if lhs.chain == x:      # compound SELECTs of one operator run left to right: extend it
            plan = Sql(f"{lhs.sql} {x} SELECT id FROM ({rhs.sql})", lhs.params + rhs.params, unique=True, chain=x,
                       depth=max(lhs.depth, rhs.depth + 1))
        else:
            plan = Sql(f"SELECT id FROM ({lhs.sql}) {x} SELECT id FROM ({rhs.sql})", lhs.params + rhs.params,
                       unique=True, chain=x, depth=max(lhs.depth, rhs.depth) + 1)
        return self.materialize(plan) if plan.depth > MAX_SQL_DEPTH else plan

    def materialize(self, plan: Plan) -> Sql:
        s = self.to_sql(plan)
        return self.ids_plan([r[0] for r in self.conn.execute(s.sql, s.params)])

    def to_sql(self, plan: Plan) -> Sql:
        if isinstance(plan, Sql):
            return plan
        return Sql("SELECT rowid AS id FROM ft WHERE ft MATCH ?", [plan.expr], unique=True)

    def ids_plan(self, ids: list[int]) -> Sql:
        return Sql("SELECT value AS id FROM json_each(?)", [json.dumps(ids)], unique=True)

    # clauses
    def fields_of(self, clause: Clause) -> list[str]:
        idx = self.config.indexes.get(clause.index)
        if idx is None or not idx.fields:   # no fields: a limit the search route evaluates (local.available)
            raise QueryError(16, clause.index, f"unsupported index {clause.index}")
        return list(idx.fields)

    def clause(self, c: Clause, positive: bool = True) -> Plan:
        T.check_modifiers(c)
        if c.index == "cql.allrecords" or c.index.lower() == "cql.allrecords":
            return Sql("SELECT union_id AS id FROM doc NOT INDEXED", [], unique=True)  # in union id order
        if c.index.lower() == "cql.resultsetid":
            self.used_result_sets = True
            rs = self.result_sets.get(c.term)
            if rs is None:
                raise QueryError(51, c.term, f"result set {c.term} does not exist")
            if rs.ids is not None:
                return self.ids_plan(list(rs.ids))
            return Sql(rs.handle.set_sql, list(rs.handle.set_params), unique=True)
        rel = T.relation_of(c)
        fields = self.fields_of(c)
        if rel in ("=", "adj", "all", "any", "==", "exact") and T.only_masks(c.term):
            return self.presence(fields)  # title=* : every record that has a title
        by_type: dict[str, list[str]] = {}
        for f in fields:
            by_type.setdefault(self.types.get(f, "key"), []).append(f)
        plans: list[Plan] = []
        for typ, fs in by_type.items():
            if typ == "text":
                plans.append(self.text_clause(fs, rel, c.term, positive))
            elif typ == "number":
                plans.append(self.number_clause(fs, rel, c.term))
            else:
                plans.append(self.key_clause(fs, rel, c.term))
        plan = plans[0]
        for p in plans[1:]:
            plan = self.combine("or", plan, p)
        return plan

    def presence(self, fields: list[str]) -> Sql:
        nums = [f for f in fields if self.types.get(f) == "number"]
        others = [f for f in fields if f not in nums and f not in EXACT_SKIP]
        parts, params = [], []
        if others:
            parts.append(f"SELECT union_id AS id FROM term WHERE field IN ({','.join('?' * len(others))})")
            params += others
        if nums:
            parts.append(f"SELECT union_id AS id FROM num WHERE field IN ({','.join('?' * len(nums))})")
            params += nums
        if not parts:
            return Sql("SELECT union_id AS id FROM doc WHERE 0", [], unique=True)
        return Sql(" UNION ".join(parts), params, unique=len(parts) > 1)  # UNION dedupes; one part does not

    # text fields ------------------------------------------------------------
    def text_clause(self, fields: list[str], rel: str, term: str, positive: bool) -> Plan:
        if rel in ("==", "exact", "<", "<=", ">", ">=", "<>", "within"):
            exact_fields = [f for f in fields if f not in EXACT_SKIP] or fields
            return self.term_table(exact_fields, rel, term, transform=None)
        colspec = "{" + " ".join(fields) + "}"
        joiner = " OR " if rel == "any" else " AND "
        groups = T.text_groups(term, rel)  # each: alternatives (variants, readings)
        if not groups:
            return Fts(NO_MATCH)
        parts = []
        verify = False
        for alts in groups:
            exprs = []
            for toks in alts:
                expr, needs_verify = self.phrase_expr(toks)
                exprs.append(expr)
                verify = verify or needs_verify
            parts.append(" OR ".join(f"({e})" for e in exprs))
        expr = colspec + " : (" + joiner.join(f"({p})" for p in parts) + ")"
        if positive:
            self.rank_exprs.append(expr)
        if len(fields) == 1 and (joiner == " AND " or len(groups) == 1):
            f = fields[0]
            others = colspec + " : (" + " OR ".join(f"({e})" for e in exprs[1:]) + ")" if len(exprs) > 1 else None
            self.one_field = rk.one_field(f, self.text_fields.index(f), T.FIELD_WEIGHTS.get(f, 1.0), expr, groups,
                                          others)
        if not verify:
            return Fts(expr)
        # some phrase needs position checks: candidates from FTS, then verify
        cands = [r[0] for r in self.conn.execute("SELECT rowid FROM ft WHERE ft MATCH ?", (expr,))]
        matchers = [[[T.matcher(t) for t in toks] for toks in alts] for alts in groups]
        ok = []
        for uid, streams in self.streams(cands, fields):
            hits = [any(T.spans(v, m) for m in alts for v in streams) for alts in matchers]
            if (all(hits) if joiner == " AND " else any(hits)):
                ok.append(uid)
        return self.ids_plan(ok)

    def phrase_expr(self, toks: list[nz.QToken]) -> tuple[str, bool]:
        """FTS5 expression for a token sequence; True when positions must be verified."""
        plain = [t.text for t in toks if not t.masked]
        masked = [t for t in toks if t.masked]
        if not masked:
            return _fts_quote(plain), False
        last = toks[-1]
        if len(masked) == 1 and last.masked and T.is_prefix_glob(last.text):
            prefix = last.text[:-1]
            if len(toks) == 1:
                return _fts_quote([prefix]) + " *", False
            return _fts_quote([t.text for t in toks[:-1]] + [prefix]) + " *", False
        if len(toks) == 1 and last.text != "?":
            alts = self.expand(last.text)
            return (" OR ".join(_fts_quote([a]) for a in alts) if alts else NO_MATCH), False
        # phrase with masks: AND of the parts as the candidate filter
        conj = []
        for t in toks:
            if not t.masked:
                conj.append(_fts_quote([t.text]))
            elif t.text != "?":
                alts = self.expand(t.text)
                if not alts:
                    return NO_MATCH, False
                conj.append("(" + " OR ".join(_fts_quote([a]) for a in alts) + ")")
        return (" AND ".join(conj) if conj else '""'), True

    def expand(self, pattern: str) -> list[str]:
        lit = T.glob_literal_prefix(pattern)
        sql = "SELECT term FROM ft_vocab WHERE term GLOB ?"
        params: list = [pattern]
        if lit:
            sql += " AND term >= ? AND term < ?"
            params += [lit, lit + "\U0010ffff"]
        rows = self.conn.execute(sql + f" LIMIT {MAX_EXPANSION + 1}", params).fetchall()
        if len(rows) > MAX_EXPANSION:
            raise QueryError(28, pattern,
                             f"masked term {pattern!r} matches more than {MAX_EXPANSION} words; be more specific")
        return [r[0] for r in rows]

    def streams(self, ids: list[int], fields: list[str]):
        cols = ", ".join(fields)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT rowid, {cols} FROM ft WHERE rowid IN ({','.join('?' * len(chunk))})"
            for row in self.conn.execute(q, chunk):
                vals: list[list[str]] = []
                for col in row[1:]:
                    if col:
                        vals.extend(v.split() for v in col.split(SEP))
                yield row[0], vals

    # key / number fields ----------------------------------------------------
    def term_table(self, fields: list[str], rel: str, term: str, transform: str | None, words=False) -> Plan:
        fq = f"field IN ({','.join('?' * len(fields))})"
        base = "SELECT union_id AS id FROM term WHERE " + fq
        if rel == "within":
            lo_hi = T.words(term)
            if len(lo_hi) != 2:
                raise QueryError(36, term, "within needs two values: \"low high\"")
            lo, hi = (T.range_key(transform, w) for w in lo_hi)
            return Sql(base + " AND key BETWEEN ? AND ?", [*fields, lo, hi])
        if rel in ("<", "<=", ">", ">="):
            return Sql(base + f" AND key {rel} ?", [*fields, T.range_key(transform, term)])
        if rel == "<>":
            k = T.range_key(transform, term)
            return Sql(
                f"SELECT union_id AS id FROM term WHERE {fq} EXCEPT SELECT union_id FROM term WHERE {fq} AND key = ?",
                [*fields, *fields, k],
            )
        if rel == "any" and words:
            # the plain keys as one set lookup (a clause may carry thousands: the search
            # limit local.available), masked words each as before
            keys, masked_words = T.any_keys(transform, term)
            plans = [self.term_table(fields, "=", w, transform) for w in masked_words]
            if keys:
                lookup = Sql(base + " AND key IN (SELECT value FROM json_each(?))", [*fields, json.dumps(keys)])
                # many keys: run the lookup once and keep its ids, so that ordering and
                # paging the query never evaluate it again inside a join
                plans.insert(0, self.materialize(lookup) if len(keys) > MATERIALIZE_KEYS else lookup)
            sqls = [self.to_sql(p) for p in plans]
            if not sqls:
                return Fts(NO_MATCH)
            if len(sqls) == 1:
                return sqls[0]
            return Sql(" UNION ".join(f"SELECT id FROM ({s.sql})" for s in sqls), [x for s in sqls for x in s.params])
        if rel == "all" and words:
            plans = [self.term_table(fields, "=", w, transform) for w in T.words(term)]
            op = " INTERSECT "
            sqls = [self.to_sql(p) for p in plans]
            if not sqls:
                return Fts(NO_MATCH)
            return Sql(op.join(f"SELECT id FROM ({s.sql})" for s in sqls), [x for s in sqls for x in s.params])
        pattern, masked = T.key_pattern(transform, term)
        if masked:
            return Sql(base + " AND key GLOB ?", [*fields, pattern])
        if pattern is None:
            return Fts(NO_MATCH)
        return Sql(base + " AND key = ?", [*fields, pattern])

    def key_clause(self, fields: list[str], rel: str, term: str) -> Plan:
        plans = []
        for f in fields:  # each key field has its own normalization (isbn, issn, lccn ...)
            plans.append(self.term_table([f], rel, term, self.transforms.get(f), words=True))
        plan = self.to_sql(plans[0])
        for p in plans[1:]:
            s = self.to_sql(p)
            plan = Sql(f"SELECT id FROM ({plan.sql}) UNION SELECT id FROM ({s.sql})", plan.params + s.params,
                       unique=True)
        return plan

    def number_clause(self, fields: list[str], rel: str, term: str) -> Plan:
        def num(v: str) -> int:
            return T.number(v, term)

        cparams: list[int | str]
        if rel in ("any", "all"):
            vals = [num(w) for w in T.words(term)]
            if rel == "all" and len(set(vals)) > 1:
                return Fts(NO_MATCH)  # one record has one year
            cond, cparams = f"value IN ({','.join('?' * len(vals))})", list(vals)
        elif rel == "within":
            lo_hi = T.words(term)
            if len(lo_hi) != 2:
                raise QueryError(36, term, "within needs two values: \"low high\"")
            cond, cparams = "value BETWEEN ? AND ?", [num(lo_hi[0]), num(lo_hi[1])]
        elif rel in ("<", "<=", ">", ">=", "<>"):
            cond, cparams = f"value {rel} ?", [num(term)]
        elif T.has_mask(term):
            cond, cparams = "CAST(value AS TEXT) GLOB ?", [term.replace("\\*", "").replace("\\?", "").strip()]
        else:
            cond, cparams = "value = ?", [num(term)]
        fields_t = tuple(fields)
        return Sql(f"SELECT union_id AS id FROM num WHERE field IN ({','.join('?' * len(fields))}) AND {cond}",
                   [*fields, *cparams], (fields_t, cond, cparams),
                   unique=len(fields) == 1 and fields[0] in self.single_valued)

    # prox -------------------------------------------------------------------
    def prox(self, p: Prox) -> Plan:
        lf = T.check_prox(p, self.fields_of, self.types)
        near = self._near(p, lf)
        if near is not None:
            expr, exact = near
            if exact:  # FTS5 NEAR answers it by itself
                self.rank_exprs.append(expr)
                return Fts(expr)
            cands = [r[0] for r in self.conn.execute("SELECT rowid FROM ft WHERE ft MATCH ?", (expr,))]
        else:
            cand_sql = self.to_sql(self.compile(Boolean("and", p.left, p.right)))
            cands = [r[0] for r in self.conn.execute(cand_sql.sql, cand_sql.params)]
        left_clause, right_clause = T.prox_clauses(p)
        left = T.prox_alternatives(left_clause)
        right = T.prox_alternatives(right_clause)
        cmp = T.COMPARE[p.comparison]
        ok = []
        for uid, streams in self.streams(cands, lf):
            if any(T.prox_ok(v, left, right, p.distance, cmp, p.ordered) for v in streams):
                ok.append(uid)
        return self.ids_plan(ok)

    def _near(self, p: Prox, fields: list[str]) -> tuple[str, bool] | None:
        """FTS5 NEAR for prox with distance < or <= (or =, as a filter) between two
        plain phrases: (expression, exact).  Unordered < / <= are exact in FTS5
        (values of one field then count as one word apart); ordered ones and =
        are verified on positions afterwards."""
        if p.comparison not in ("<", "<=", "="):
            return None
        gap = p.distance - (2 if p.comparison == "<" else 1)  # tokens allowed between the phrases
        phrases = []
        for c in T.prox_clauses(p):
            if c.relation.lower() == "any" and len(T.words(c.term)) > 1:
                return None
            toks = T.phrase_tokens(c.term)
            if not toks:
                return None
            expr, verify = self.phrase_expr(toks)
            if verify or " OR " in expr or " AND " in expr or expr == NO_MATCH:
                return None
            phrases.append(expr)
        if gap < 0:
            return NO_MATCH, True
        expr = "{" + " ".join(fields) + "} : NEAR(" + " ".join(phrases) + f", {gap})"
        return expr, (not p.ordered and p.comparison != "=")



# --------------------------------------------------------------------------
# the Catalog


def _warn_stale_format(conn: sqlite3.Connection, path: Path) -> None:
    """A catalog indexed by an older INDEX_FORMAT is served as it is (no readings):
    say so, and what rebuilds it."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='index_format'").fetchone()
        if row is None and conn.execute("SELECT 1 FROM doc LIMIT 1").fetchone() is None:
            return  # nothing indexed yet
    except sqlite3.Error:
        return
    if row is None or row[0] != INDEX_FORMAT:
        log.warning("%s was indexed by an older format (%s, now %s): readings and filing by reading (and the "
                    "faster ranking) may be missing until the next `unioncat ingest` on its data directory "
                    "rebuilds the index", path, row[0] if row else "1", INDEX_FORMAT)


@dataclass(frozen=True)
class _Compiled:
    """A compiled query as search_sync reads it (SqliteCatalog._compile)."""
    plan: Fts | Sql
    rank_exprs: list[str]
    one_field: rk.OneField | None


class _Plans(dict):
    """Compiled queries of one catalog generation, oldest first."""
    generation: str | None = None


@dataclass(frozen=True)
class _State:
    current: bool                  # indexed by this INDEX_FORMAT (lengths, repeated words)
    single_valued: frozenset[str]  # number fields without a record of two values
    generation: str | None = None  # the catalog generation it was read at


class SqliteCatalog(InlineWork, Catalog):
    """indexers.backend.Catalog over the embedded SQLite store+index."""

    def __init__(self, path: Path, name: str = "default", config: IndexConfig | None = None,
                 mapping: FieldMapping | None = None, clock=time.thread_time, wall_clock=None,
                 slow_work: SlowWork | None = None):
        self.path = Path(path)
        self.name = name
        self.config = config or load_index_config()
        self.mapping = mapping or load_mapping()
        self.writer = SqliteIndexWriter(self.mapping)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self.inline_budget = INLINE_BUDGET
        self.clock = clock          # measures the inline budget (injected by tests)
        # and the wall time that bounds it (a clock injected alone stands for both)
        self.wall_clock = wall_clock or (time.perf_counter if clock is time.thread_time else clock)
        self._slow: dict[Hashable, None] = {}     # work that overran it (oldest first: sqlite_inline.py)
        self._overran: dict[Hashable, None] = {}  # ... once, but not on the thread (cold pages): a second chance
        # where they and other long work run: threads of lower priority (sqlite_exec.py)
        self.slow_pool = pool_for(slow_work if slow_work is not None else load_slow_work())
        self._read_only_mode: str | None = None
        self._state: tuple[str | None, _State] | None = None   # (generation, what it knows)
        self._counts = RangeCounts()    # range counts of single-valued number fields (sqlite_counts.py)
        self._plans = _Plans()          # compiled queries of the current generation (_compile)

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._open()
            self._local.conn = c
            if not self._conns:
                _warn_stale_format(c, self.path)
            self._conns.append(c)
        return c

    def _open(self) -> sqlite3.Connection:
        """A reader's connection.  Normally the store's WAL connection; on a catalog
        this process cannot write (a read-only file or data directory) it falls back
        to a read-only open, and when even the WAL index cannot be made there (no
        -shm file, directory not writable) to an immutable one: the catalog is then
        served as it is, and nobody can change it there anyway.  A catalog that
        cannot be opened at all is BackendUnavailable (diagnostic 1), not an error."""
        if not self.path.exists():
            raise BackendUnavailable(f"no catalog at {self.path} (run unioncat ingest first)")
        try:
            return connect(self.path, readonly=True)
        except sqlite3.OperationalError as e:
            first = e
            reason: sqlite3.Error = e
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        for mode in ("mode=ro", "immutable=1"):
            try:
                c = sqlite3.connect(f"{uri}?{mode}", uri=True, isolation_level=None, check_same_thread=False)
                c.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
            except sqlite3.Error as e:
                reason = e
                continue
            c.execute("PRAGMA query_only=1")
            c.execute(f"PRAGMA mmap_size={1 << 30}")
            c.execute("PRAGMA cache_size=-65536")
            if mode != self._read_only_mode:
                self._read_only_mode = mode
                log.warning("serving %s read-only (%s: %s)%s", self.path, type(first).__name__, first,
                            "; it is treated as unchanging until the server restarts" if mode == "immutable=1" else "")
            return c
        raise BackendUnavailable(f"cannot open the catalog {self.path}: {reason}")

    def close(self) -> None:
        for c in self._conns:
            try:
                c.close()
            except sqlite3.Error:
                pass

    # sync implementations ------------------------------------------------------
    def _index_state(self, conn: sqlite3.Connection) -> _State:
        """What the index offers beyond FTS5 (its format, multi-valued number
        fields), read once per generation of the catalog."""
        gen = conn.execute(GENERATION_SQL).fetchone()
        cached = self._state
        if cached is not None and cached[0] == (gen and gen[0]):
            return cached[1]
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key='index_format' OR key LIKE 'num_multi:%'"))
        current = rows.get("index_format") == INDEX_FORMAT
        single = frozenset(f for f, t in self.writer.types.items()
                           if t == "number" and f"num_multi:{f}" not in rows) if current else frozenset()
        state = _State(current, single, gen and gen[0])
        self._state = (gen and gen[0], state)
        return state

    def _fast_ranked(self, h: _Lazy, n: int, total: int) -> list[int] | None:
        """The first ``n`` ids of ``h``'s ranking by indexers/ranking.py (None: let
        FTS5 rank)."""
        assert h.fast is not None
        conn = self._conn()
        if not self._index_state(conn).current:
            return None   # a set ranked on another index format (e.g. a shared set from before a rebuild)
        return rk.top(conn, h.fast, n, total, len(self.writer.text_fields))

    def _weights(self) -> str:
        return ", ".join(str(T.FIELD_WEIGHTS.get(f, 1.0)) for f in self.writer.text_fields)

    def _compile(self, conn: sqlite3.Connection, state: _State, query: Query,
                 result_sets: Mapping[str, SearchResult] | None) -> tuple[Compiler | _Compiled, Plan]:
        """The query's plan, kept for the catalog generation it was made at (at most
        PLANS of them): compiling -- words, variants, readings, masks expanded against the
        vocabulary -- was a fifth of a small search.  A plan that read the caller's result
        sets (cql.resultSetId) is not kept, nor one carrying large materialized parts."""
        plans = self._plans
        if plans.generation != state.generation:
            plans.clear()
            plans.generation = state.generation
        try:
            hit = plans.get(query.root)
        except TypeError:        # a query model carrying something unhashable: compiled every time
            hit = None
        if hit is not None:
            return hit, hit.plan
        comp = Compiler(conn, self.config, self.writer, result_sets, state.single_valued)
        plan = comp.compile(query.root)
        big = isinstance(plan, Sql) and sum(len(x) for x in plan.params if isinstance(x, str)) > PLAN_BYTES
        if (not comp.used_result_sets and not big and state.generation is not None
                and plans.generation == state.generation):
            try:
                plans[query.root] = _Compiled(plan, list(comp.rank_exprs), comp.one_field)
            except TypeError:
                pass
            if len(plans) > PLANS:       # (worker threads share it: never fail on a key gone already)
                plans.pop(next(iter(plans), None), None)
        return comp, plan

    def search_sync(self, query: Query, result_sets: Mapping[str, SearchResult] | None = None) -> SearchResult:
        return self._search(query, result_sets)[1]

    def _search(self, query: Query, result_sets: Mapping[str, SearchResult] | None
                ) -> tuple[str | None, SearchResult]:
        """The search, and the catalog generation its hits are of (or one read before them).

        A search without ranking or sort (most Z39.50 searches) first runs on the index
        state kept from an earlier search, and its one statement reads the generation too:
        when that is the state's, the state was right and the search is done with one
        statement fewer than reading the generation first (~5 us of a ~250 us search).
        When not (an ingest committed since), its answer is dropped and it runs again on
        the state read anew -- plans and counts are never used across generations."""
        conn = self._conn()
        kept = self._state
        if kept is not None and not query.ranked and all(k.index == "relevance" for k in query.sort):
            # (ranked or sorted: more than one statement, the state is read first -- decided
            # before compiling, which may run SQL of its own)
            got = self._search_on(conn, kept[1], query, result_sets, checked=False)
            if got is not None:
                return got
        got = self._search_on(conn, self._index_state(conn), query, result_sets, checked=True)
        assert got is not None           # a checked state always answers
        return got

    def _search_on(self, conn: sqlite3.Connection, state: _State, query: Query,
                   result_sets: Mapping[str, SearchResult] | None, checked: bool
                   ) -> tuple[str | None, SearchResult] | None:
        """_search on ``state``; ``checked``: read at this search (else kept from an earlier
        one: the answer is None unless one statement both answers and confirms it)."""
        comp, plan = self._compile(conn, state, query, result_sets)
        sort = [k for k in query.sort if k.index != "relevance"]
        fast = None
        if (state.current and not sort and query.ranked and isinstance(plan, Fts) and isinstance(query.root, Clause)
                and comp.one_field is not None and comp.one_field.expr == plan.expr):
            fast = comp.one_field
        if isinstance(plan, Fts):
            set_sql, set_params = "SELECT rowid AS id FROM ft WHERE ft MATCH ?", [plan.expr]
        else:
            set_sql = plan.sql if plan.unique else f"SELECT DISTINCT id FROM ({plan.sql})"
            set_params = list(plan.params)
        where = ""
        if sort:
            order = []
            for k in sort:
                col = {"title": "sort_title", "creator": "sort_creator", "date": "sort_date"}.get(k.index)
                if col is None:
                    raise QueryError(80, k.index, f"cannot sort by {k.index}")
                if k.missing_value == "omit":  # sort.missingOmit: records without the key are left out
                    where += f" AND {col} IS NOT NULL"
                missing_first = (k.missing_value == "lowValue") == k.ascending
                order.append(f"{col} IS {'NOT ' if missing_first else ''}NULL")
                order.append(f"{col} {'ASC' if k.ascending else 'DESC'}")
            order_sql = (f"SELECT union_id FROM doc WHERE union_id IN ({set_sql}){where}"
                         f" ORDER BY {', '.join(order)}, union_id")
            order_params = set_params
        elif isinstance(plan, Fts) and query.ranked:
            order_sql = f"SELECT rowid FROM ft WHERE ft MATCH ? ORDER BY bm25(ft, {self._weights()}), rowid"
            order_params = set_params
        elif isinstance(plan, Fts):
            order_sql, order_params = "SELECT rowid AS id FROM ft WHERE ft MATCH ? ORDER BY rowid", set_params
        elif comp.rank_exprs and query.ranked:
            expr = " OR ".join(f"({e})" for e in comp.rank_exprs)
            order_sql = (f"SELECT s.id FROM ({set_sql}) s LEFT JOIN (SELECT rowid AS rid, bm25(ft, {self._weights()})"
                         " AS score FROM ft WHERE ft MATCH ?) r ON r.rid = s.id"
                         " ORDER BY r.score IS NULL, r.score, s.id")
            order_params = set_params + [expr]
        else:
            # no ranking asked for and none possible (dates, keys): index order, which is
            # stable for an unchanged catalog, without sorting a large set
            order_sql, order_params = f"SELECT id FROM ({set_sql})", set_params
        if where:
            set_sql = f"SELECT union_id AS id FROM doc WHERE union_id IN ({set_sql}){where}"
        handle = _Lazy(order_sql, order_params, set_sql, set_params, fast)
        gen = state.generation
        counted_path = not where and isinstance(plan, Sql) and plan.num is not None and plan.unique
        if not checked and (counted_path or sort or query.ranked):
            return None         # more than one statement (or counts kept per generation): state first
        if counted_path:
            assert isinstance(plan, Sql) and plan.num is not None
            # a range on a single-valued number field: counted from its values' counts,
            # not by walking its hits (sqlite_counts.py); a large one is paged in SQL
            counted = self._counts.total(conn, gen, plan.num[0][0], plan.num[1], list(plan.num[2]))
            if counted is not None and counted > MATERIALIZE:
                return gen, SearchResult(counted, None, handle)
        if not sort and not query.ranked:
            # nothing to score or sort: the first MATERIALIZE + 1 ids in index order
            # tell a small set (kept, no COUNT needed) from a large one.  They are kept
            # as SQLite hands them over, one JSON array (a snapshot: the set does not
            # change with the catalog), not as a Python list: turning each row into an
            # int was half of a small search, and most sets are never paged.  The same
            # statement reads the generation its hits are of (_search).
            n, snap, at = conn.execute(f"SELECT COUNT(*), json_group_array(id), ({GENERATION_SQL})"
                                       f" FROM ({order_sql} LIMIT ?)", [*order_params, MATERIALIZE + 1]).fetchone()
            if at != gen and not checked:
                return None         # an ingest since the state was read: again, on the state read anew
            # (checked: ``gen`` was read before this statement, so it is never newer than the hits)
            if n <= MATERIALIZE:
                return gen, SearchResult(n, None, _snapshot(snap))
        total = conn.execute(f"SELECT COUNT(*) FROM ({set_sql})", set_params).fetchone()[0]
        if total <= MATERIALIZE:
            got = self._fast_ranked(handle, total, total) if fast is not None else None
            ids = got if got is not None else [r[0] for r in conn.execute(order_sql, order_params)]
            return gen, SearchResult(len(ids), ids, handle)
        return gen, SearchResult(total, None, handle)

    def page_sync(self, result: SearchResult, offset: int, count: int) -> list[int]:
        if result.ids is not None:
            return result.ids[offset: offset + count]
        h: _Lazy = result.handle
        snap = _snapshot_ids(h)
        if snap is not None:
            return snap[offset: offset + count]
        if h.fast is not None:
            got = self._fast_ranked(h, offset + count, result.total)
            if got is not None:
                return got[offset: offset + count]
        # LIMIT and OFFSET as literals (integers): with bound parameters SQLite plans the
        # query as if it had to produce every row (seconds instead of milliseconds for a
        # ranked text clause beside a large key or id set, e.g. the limit local.available)
        return [r[0] for r in self._conn().execute(f"{h.order_sql} LIMIT {int(count)} OFFSET {int(offset)}",
                                                   h.order_params)]

    def fetch_sync(self, ids: Sequence[int]) -> list[UnionRecord]:
        return load_union_records(self._conn(), ids)

    def page_iso2709_sync(self, result: SearchResult, offset: int, count: int
                          ) -> tuple[list[int], dict[int, bytes | None]]:
        ids = result.ids[offset: offset + count] if result.ids is not None else self.page_sync(result, offset, count)
        return ids, load_display_iso2709(self._conn(), ids)

    def facets_sync(self, result: SearchResult, names: Sequence[str], limit: int) -> dict[str, list[FacetValue]]:
        conn = self._conn()
        out: dict[str, list[FacetValue]] = {}
        if not result.total:
            return {n: [] for n in names}
        h: _Lazy = result.handle
        for name in names:
            fd = self.config.facets.get(name)
            if fd is None:
                raise QueryError(6, name, f"unknown facet {name}")
            if self.writer.types.get(fd.field) == "number":
                rows = conn.execute(
                    "SELECT CAST(value AS TEXT), CAST(value AS TEXT), COUNT(DISTINCT n.union_id) FROM num n"
                    f" WHERE n.field=? AND n.union_id IN ({h.set_sql})"
                    " GROUP BY value ORDER BY 3 DESC, 1 LIMIT ?",
                    (fd.field, *h.set_params, limit),
                )
            else:
                rows = conn.execute(
                    "SELECT key, MIN(display), COUNT(DISTINCT t.union_id) FROM term t"
                    f" WHERE t.field=? AND t.union_id IN ({h.set_sql})"
                    " GROUP BY key ORDER BY 3 DESC, 1 LIMIT ?",
                    (fd.field, *h.set_params, limit),
                )
            out[name] = [FacetValue(k, d, c) for k, d, c in rows]
        return out

    def scan_sync(self, index: str, term: str, response_position: int, maximum_terms: int) -> list[ScanTerm]:
        return sqlite_scan.scan(self._conn(), self.config, self.writer, index, term, response_position,
                                maximum_terms)

    def generation_sync(self) -> str:
        row = self._conn().execute(GENERATION_SQL).fetchone()
        return row[0] if row else "0"

    def search_at_generation_sync(self, query: Query, result_sets: Mapping[str, SearchResult] | None = None
                                  ) -> tuple[str, SearchResult]:
        """The generation (read with the hits or before them, so never newer), and the search."""
        gen, result = self._search(query, result_sets)
        return (gen if gen is not None else "0"), result

    def count_sync(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM doc").fetchone()[0]

    # async Catalog interface (inline or on the slow-work threads: sqlite_inline.InlineWork._run)
    async def search(self, query: Query, result_sets=None) -> SearchResult:
        return await self._run(self.search_sync, query, result_sets, slow_key=_slow_key(query))

    async def search_at_generation(self, query: Query, result_sets=None) -> tuple[str, SearchResult]:
        """A search and the generation read before it, in one call (search/route.py: the
        label of a result set kept for reuse, without a call of its own)."""
        return await self._run(self.search_at_generation_sync, query, result_sets, slow_key=_slow_key(query))

    async def page(self, result: SearchResult, offset: int, count: int) -> list[int]:
        if result.ids is not None:
            return result.ids[offset: offset + count]
        snap = _snapshot_ids(result.handle)
        if snap is not None:       # kept ids: no SQL, no thread
            return snap[offset: offset + count]
        return await self._run(self.page_sync, result, offset, count)

    async def fetch(self, ids: Sequence[int]) -> list[UnionRecord]:
        return await self._run(self.fetch_sync, ids)

    async def page_iso2709(self, result: SearchResult, offset: int, count: int
                           ) -> tuple[list[int], dict[int, bytes | None]]:
        """Z39.50/SRU fast path: one page of ids and their display records as
        UTF-8 ISO 2709 (``indexers.store.display_iso2709``; None = decode that
        one with ``fetch``), in one call to the worker thread."""
        return await self._run(self.page_iso2709_sync, result, offset, count)

    async def facets(self, result, names, limit):
        """Inline when cheap, like a search; remembered as slow per facets asked and size of the
        set (its bit length: facets over a set of a million hits are not those over ten)."""
        key = _slow_key(("facets", tuple(names), int(limit), int(result.total).bit_length()))
        return await self._run(self.facets_sync, result, names, limit, slow_key=key)

    async def scan(self, index, term, response_position, maximum_terms):
        """Inline when cheap (most scans read a few dozen rows of one index); remembered as
        slow per index and shape (terms asked, position), not per term."""
        key = _slow_key(("scan", index, int(response_position), int(maximum_terms)))
        return await self._run(self.scan_sync, index, term, response_position, maximum_terms, slow_key=key)

    async def count(self) -> int:
        return await self._run(self.count_sync, slow_key=("count",))

    async def generation(self) -> str:
        return await self._run(self.generation_sync)      # one row: inline, not a thread's round trip
