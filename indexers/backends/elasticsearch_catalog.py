"""The Elasticsearch backend, search side: the query model compiled into the
query DSL, and indexers.backend.Catalog over an alias.

Compilation mirrors the embedded backend (indexers/backends/sqlite_index.py) rule
for rule, on the same index terms (indexers/terms.py):

* a word is a ``term`` on the t_ field, a phrase (several words, a CJK run) a
  ``match_phrase``; one position separates two values of a field, as the embedded
  index's separator token does, so phrases never bridge two values;
* masks: a right-truncated word is a ``prefix`` query, other masks ``wildcard``;
  a phrase whose last word is right-truncated a ``span_near`` with ``span_multi``;
* a phrase with masks inside, and prox that is not unordered ``<`` / ``<=``,
  are answered like the embedded index does: a query that finds a superset
  (``span_near`` for prox) followed by the same position check in Python
  (terms.spans / terms.prox_ok) on the stored token streams; the checked ids then
  filter the query, which keeps its relevance score;
* ==, exact, ranges, scan and facets on the k_ (whole-value key) fields; years on
  the n_ fields;
* sorting on the sort_ fields with the union id as the last key; relevance is
  Lucene's BM25 with the embedded backend's field weights as boosts.

Result sets: the first 50 ids come with the search; later pages open a point in
time (PIT) and walk with search_after (from/size inside the first 10,000 hits),
so paging a result set is stable while ingests go on.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .. import terms as T
from ..backend import BackendUnavailable, Catalog
from ..index_config import IndexConfig, load_index_config
from ..mapping import FieldMapping, load_mapping
from ..query_model import Boolean, Clause, Node, Prox, Query, QueryError, operands
from ..records import FacetValue, Holding, ScanTerm, SearchResult, UnionRecord
from ..store import display_record
from .elasticsearch_index import KD_SEP, META_SUFFIX, EsConfig

log = logging.getLogger("unioncat.elasticsearch")

FIRST_PAGE = 50  # ids fetched with the search itself; later pages come from a point in time
WINDOW = 10000  # max_result_window: from+size paging inside it, search_after beyond
PIT_KEEP_ALIVE = "10m"
VERIFY_PAGE = 2000
MATCH_NONE: dict[str, Any] = {"match_none": {}}
SORT_FIELDS = {"title": "sort_title", "creator": "sort_creator", "date": "sort_date"}
MAX_NESTED_DEPTH = 30  # the cluster's indices.query.bool.max_nested_depth (default 30)


@dataclass
class EsHandle:
    query: dict
    sort: list
    ids: list[int] = field(default_factory=list)  # the first ids in order
    pit: str | None = None
    cursors: dict[int, list] = field(default_factory=dict)  # position -> search_after values of the hit before it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Compiler:
    def __init__(self, cat: "ElasticsearchCatalog", result_sets):
        self.cat = cat
        self.config = cat.config
        self.types = cat.types
        self.transforms = cat.transforms
        self.result_sets = result_sets or {}
        self.ranked = False

    async def compile(self, node: Node, positive: bool = True) -> dict:
        if isinstance(node, Boolean):
            # a chain of one operator is one bool query with a list (a AND b AND c ...),
            # not one nesting level per operator (the cluster refuses deep nesting)
            parts = operands(node)
            first = await self.compile(parts[0], positive)
            rest = [await self.compile(p, positive if node.op != "not" else not positive) for p in parts[1:]]
            if node.op == "and":
                return {"bool": {"must": [first, *rest]}}
            if node.op == "or":
                return {"bool": {"should": [first, *rest], "minimum_should_match": 1}}
            return {"bool": {"must": [first], "must_not": rest}}
        if isinstance(node, Prox):
            return await self.prox(node, positive)
        return await self.clause(node, positive)

    def fields_of(self, clause: Clause) -> list[str]:
        idx = self.config.indexes.get(clause.index)
        if idx is None or not idx.fields:   # no fields: a limit the search route evaluates (local.available)
            raise QueryError(16, clause.index, f"unsupported index {clause.index}")
        return list(idx.fields)

    async def clause(self, c: Clause, positive: bool) -> dict:
        T.check_modifiers(c)
        if c.index.lower() == "cql.allrecords":
            return {"match_all": {}}
        if c.index.lower() == "cql.resultsetid":
            rs = self.result_sets.get(c.term)
            if rs is None:
                raise QueryError(51, c.term, f"result set {c.term} does not exist")
            if rs.ids is not None:
                return _ids(rs.ids)
            return {"bool": {"filter": [rs.handle.query]}}
        rel = T.relation_of(c)
        fields = self.fields_of(c)
        if rel in ("=", "adj", "all", "any", "==", "exact") and T.only_masks(c.term):
            return self.presence(fields)
        by_type: dict[str, list[str]] = {}
        for f in fields:
            by_type.setdefault(self.types.get(f, "key"), []).append(f)
        parts = []
        for typ, fs in by_type.items():
            if typ == "text":
                parts.append(await self.text_clause(fs, rel, c.term, positive))
            elif typ == "number":
                parts.append(self.number_clause(fs, rel, c.term))
            else:
                parts.append(self.key_clause(fs, rel, c.term))
        return _any(parts)

    def presence(self, fields: list[str]) -> dict:
        parts = []
        for f in fields:
            if self.types.get(f) == "number":
                parts.append({"exists": {"field": "n_" + f}})
            elif f not in T.EXACT_SKIP:
                parts.append({"exists": {"field": "k_" + f}})
        return _any(parts)

    # text fields ----------------------------------------------------------
    async def text_clause(self, fields: list[str], rel: str, term: str, positive: bool) -> dict:
        if rel in ("==", "exact", "<", "<=", ">", ">=", "<>", "within"):
            exact_fields = [f for f in fields if f not in T.EXACT_SKIP] or fields
            return self.term_table(exact_fields, rel, term, None)
        conj = rel != "any"
        groups = T.text_groups(term, rel)  # each: alternatives (variants, readings)
        if not groups:
            return MATCH_NONE
        if positive:
            self.ranked = True
        parts = []
        verify = False
        for alts in groups:
            qs = []
            for toks in alts:
                q, needs_verify = self.phrase(fields, toks)
                qs.append(q)
                verify = verify or needs_verify
            parts.append(qs[0] if len(qs) == 1 else _any(qs))
        query = _all(parts) if conj else _any(parts)
        if not verify:
            return query
        matchers = [[[T.matcher(t) for t in toks] for toks in alts] for alts in groups]

        def ok(streams: list[list[str]]) -> bool:
            hits = [any(T.spans(v, m) for m in alts for v in streams) for alts in matchers]
            return all(hits) if conj else any(hits)

        ids = await self.cat._verify(query, fields, ok)
        return {"bool": {"filter": [_ids(ids)], "should": [query]}}

    def phrase(self, fields: list[str], toks: list) -> tuple[dict, bool]:
        """(query over the fields, True when positions must be checked after it)."""
        masked = [t for t in toks if t.masked]
        plain = [t.text for t in toks if not t.masked]
        last = toks[-1]
        per_field = []
        verify = False
        q: dict[str, Any]
        for f in fields:
            tf = "t_" + f
            boost = T.FIELD_WEIGHTS.get(f, 1.0)
            if not masked:
                if len(plain) == 1:
                    q = {"term": {tf: {"value": plain[0], "boost": boost}}}
                else:
                    q = {"match_phrase": {tf: {"query": " ".join(plain), "boost": boost}}}
            elif len(masked) == 1 and last.masked and T.is_prefix_glob(last.text):
                prefix = last.text[:-1]
                if len(toks) == 1:
                    q = {"prefix": {tf: {"value": prefix, "boost": boost}}}
                else:
                    clauses = [{"span_term": {tf: t.text}} for t in toks[:-1]]
                    clauses.append({"span_multi": {"match": {"prefix": {tf: {"value": prefix}}}}})
                    q = {"span_near": {"clauses": clauses, "slop": 0, "in_order": True, "boost": boost}}
            elif len(toks) == 1 and last.text != "?":
                q = {"wildcard": {tf: {"value": T.glob_to_wildcard(last.text), "boost": boost}}}
            else:  # masks inside a phrase: every part present, positions checked afterwards
                verify = True
                conj = []
                for t in toks:
                    if not t.masked:
                        conj.append({"term": {tf: t.text}})
                    elif t.text != "?":
                        conj.append({"wildcard": {tf: {"value": T.glob_to_wildcard(t.text)}}})
                q = {"bool": {"must": conj, "boost": boost}} if conj else {"exists": {"field": tf}}
            per_field.append(q)
        return _any(per_field), verify

    # key / number fields ----------------------------------------------------
    def term_table(self, fields: list[str], rel: str, term: str, transform: str | None, words: bool = False) -> dict:
        kf = ["k_" + f for f in fields]
        if rel == "within":
            lo_hi = T.words(term)
            if len(lo_hi) != 2:
                raise QueryError(36, term, "within needs two values: \"low high\"")
            lo, hi = (T.range_key(transform, w) for w in lo_hi)
            return _any([{"range": {f: {"gte": lo, "lte": hi}}} for f in kf])
        if rel in ("<", "<=", ">", ">="):
            op = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[rel]
            k = T.range_key(transform, term)
            return _any([{"range": {f: {op: k}}} for f in kf])
        if rel == "<>":
            k = T.range_key(transform, term)
            return {"bool": {"filter": [_any([{"exists": {"field": f}} for f in kf])],
                             "must_not": [{"term": {f: k}} for f in kf]}}
        if rel == "any" and words:
            # the plain keys as one terms query (a clause may carry thousands: the search
            # limit local.available), masked words each as before
            keys, masked_words = T.any_keys(transform, term)
            parts = [self.term_table(fields, "=", w, transform) for w in masked_words]
            if keys:
                parts.insert(0, _any([{"terms": {f: keys}} for f in kf]))
            return _any(parts) if parts else MATCH_NONE
        if rel in ("any", "all") and words:
            parts = [self.term_table(fields, "=", w, transform) for w in T.words(term)]
            if not parts:
                return MATCH_NONE
            return _any(parts) if rel == "any" else _all(parts)
        pattern, masked = T.key_pattern(transform, term)
        if pattern is None:
            return MATCH_NONE
        if masked:
            return _any([{"wildcard": {f: {"value": T.glob_to_wildcard(pattern)}}} for f in kf])
        return _any([{"term": {f: pattern}} for f in kf])

    def key_clause(self, fields: list[str], rel: str, term: str) -> dict:
        return _any([self.term_table([f], rel, term, self.transforms.get(f), words=True) for f in fields])

    def number_clause(self, fields: list[str], rel: str, term: str) -> dict:
        def num(v: str) -> int:
            return T.number(v, term)

        nf = ["n_" + f for f in fields]
        if rel in ("any", "all"):
            vals = [num(w) for w in T.words(term)]
            if rel == "all" and len(set(vals)) > 1:
                return MATCH_NONE  # one record has one year
            vals = [v for v in vals if INT_MIN <= v <= INT_MAX]  # no record has a year beyond the field's range
            return _any([{"terms": {f: vals}} for f in nf]) if vals else MATCH_NONE
        if rel == "within":
            lo_hi = T.words(term)
            if len(lo_hi) != 2:
                raise QueryError(36, term, "within needs two values: \"low high\"")
            return _range(nf, ">=", num(lo_hi[0]), "<=", num(lo_hi[1]))
        if rel in ("<", "<=", ">", ">="):
            return _range(nf, rel, num(term))
        if rel == "<>":  # some value other than it (as the embedded index: any row)
            v = num(term)
            return _any([_range(nf, "<", v), _range(nf, ">", v)])
        if T.has_mask(term):
            pat = term.replace("\\*", "").replace("\\?", "").strip()
            return _any([{"wildcard": {"ns_" + f: {"value": pat}}} for f in fields])
        v = num(term)
        return _any([{"term": {f: v}} for f in nf]) if INT_MIN <= v <= INT_MAX else MATCH_NONE

    # prox -------------------------------------------------------------------
    async def prox(self, p: Prox, positive: bool) -> dict:
        fields = T.check_prox(p, self.fields_of, self.types)
        near = self._near(p, fields)
        if near is not None:
            query, exact = near
            if exact:
                if positive:
                    self.ranked = True
                return query
        else:
            query = await self.compile(Boolean("and", p.left, p.right), positive)
        left_clause, right_clause = T.prox_clauses(p)
        left = T.prox_alternatives(left_clause)
        right = T.prox_alternatives(right_clause)
        cmp = T.COMPARE[p.comparison]

        def ok(streams: list[list[str]]) -> bool:
            return any(T.prox_ok(v, left, right, p.distance, cmp, p.ordered) for v in streams)

        ids = await self.cat._verify(query, fields, ok)
        return {"bool": {"filter": [_ids(ids)], "should": [query]}}

    def _near(self, p: Prox, fields: list[str]) -> tuple[dict, bool] | None:
        """span_near for prox with distance < or <= (or =, as a filter) between two
        plain phrases: (query, exact).  Unordered < / <= are exact (as FTS5 NEAR in
        the embedded index); ordered ones and = are checked on positions after it."""
        if p.comparison not in ("<", "<=", "="):
            return None
        gap = p.distance - (2 if p.comparison == "<" else 1)
        phrases = []
        for c in T.prox_clauses(p):
            if c.relation.lower() == "any" and len(T.words(c.term)) > 1:
                return None
            toks = T.phrase_tokens(c.term)
            if not toks or any(t.masked for t in toks):
                return None
            phrases.append([t.text for t in toks])
        if gap < 0:
            return MATCH_NONE, True
        per_field = []
        for f in fields:
            tf = "t_" + f
            clauses = []
            for ph in phrases:
                spans = [{"span_term": {tf: w}} for w in ph]
                clauses.append(spans[0] if len(spans) == 1 else
                               {"span_near": {"clauses": spans, "slop": 0, "in_order": True}})
            per_field.append({"span_near": {"clauses": clauses, "slop": gap, "in_order": bool(p.ordered),
                                            "boost": T.FIELD_WEIGHTS.get(f, 1.0)}})
        return _any(per_field), (not p.ordered and p.comparison != "=")


INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1  # the n_ fields are integers


def _range(fields: list[str], op: str, v: int, op2: str | None = None, v2: int | None = None) -> dict:
    """A numeric range on integer fields, with bounds outside the integer range
    resolved here (the cluster would refuse them): none or every value."""
    cond: dict[str, int] = {}
    for o, x in ((op, v), (op2, v2)):
        if o is None or x is None:
            continue
        if o in ("<", "<="):
            if x < INT_MIN or (o == "<" and x == INT_MIN):
                return MATCH_NONE
            if x <= INT_MAX:
                cond["lt" if o == "<" else "lte"] = x
        else:
            if x > INT_MAX or (o == ">" and x == INT_MAX):
                return MATCH_NONE
            if x >= INT_MIN:
                cond["gt" if o == ">" else "gte"] = x
    return _any([{"range": {f: cond}} if cond else {"exists": {"field": f}} for f in fields])



def _ids(ids) -> dict:
    ids = list(ids)
    if not ids:
        return MATCH_NONE
    return {"terms": {"union_id": ids}}


def _any(parts: list[dict]) -> dict:
    parts = [p for p in parts if p is not MATCH_NONE]
    if not parts:
        return MATCH_NONE
    if len(parts) == 1:
        return parts[0]
    return {"bool": {"should": parts, "minimum_should_match": 1}}


def _all(parts: list[dict]) -> dict:
    if any(p is MATCH_NONE for p in parts):
        return MATCH_NONE
    if len(parts) == 1:
        return parts[0]
    return {"bool": {"must": parts}}


_COMPOUND = frozenset({"bool", "constant_score", "dis_max", "function_score", "boosting", "nested"})


def _nesting(q) -> int:
    """How deeply compound queries nest in a query (the cluster's limit is
    MAX_NESTED_DEPTH); iterative, for queries of any depth."""
    deepest = 0
    stack = [(q, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            depth += 1 if _COMPOUND & node.keys() else 0
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth) for v in node)
    return deepest


def _unavailable(e: Exception) -> Exception:
    """Map a client error: the cluster unreachable, slow or overloaded ->
    BackendUnavailable (diagnostic 1); a query it refuses as too large -> 28."""
    from elasticsearch import ApiError, ConnectionTimeout, NotFoundError
    from elasticsearch import ConnectionError as EsConnectionError

    if isinstance(e, (EsConnectionError, ConnectionTimeout)):
        log.warning("Elasticsearch request failed: %s", e)
        return BackendUnavailable(f"Elasticsearch unreachable: {e}")
    if isinstance(e, NotFoundError):
        return BackendUnavailable("the catalog index does not exist (run unioncat ingest or reindex)")
    if isinstance(e, ApiError):
        text = str(e)
        if e.meta.status == 400 and re.search(r"too_many(_nested)?_clauses|maxClauseCount|too many clauses", text):
            return QueryError(28, "", "a masked term in a phrase matches too many words; be more specific")
        if e.meta.status in (429,) or e.meta.status >= 500:
            log.warning("Elasticsearch answered %s: %s", e.meta.status, text[:500])
            return BackendUnavailable(f"Elasticsearch answered {e.meta.status}")
        # anything else the cluster refuses is said as a diagnostic, never a crash
        log.error("Elasticsearch refused a request: %s", text[:2000])
        return QueryError(48, "", f"the index could not run this query ({e.meta.status} {e.message})")
    return e


class ElasticsearchCatalog(Catalog):
    """indexers.backend.Catalog over an Elasticsearch alias."""

    def __init__(self, cfg: EsConfig, name: str = "default", config: IndexConfig | None = None,
                 mapping: FieldMapping | None = None):
        self.cfg = cfg
        self.name = name
        self.config = config or load_index_config()
        self.mapping = mapping or load_mapping()
        self.types = self.mapping.field_types()
        self.transforms = {r.name: r.transform for r in self.mapping.rules}
        self._es = None
        self._gen_read: asyncio.Task | None = None  # the generation read callers may still join

    @property
    def search_timeout(self) -> float:
        """The documented time a search may take (``request_timeout``): the search
        route never gives a request longer (search/route.py)."""
        return self.cfg.request_timeout

    @property
    def es(self):
        if self._es is None:
            _quiet_transport_log()
            self._es = self.cfg.client()
        return self._es

    async def aclose(self) -> None:
        if self._es is not None:
            await self._es.close()
            self._es = None

    async def _call(self, fn, *args, **kw):
        from elasticsearch import ApiError, TransportError

        try:
            return await fn(*args, **kw)
        except (ApiError, TransportError) as e:
            raise _unavailable(e) from e

    # -- search ----------------------------------------------------------------
    async def search(self, query: Query, result_sets: Mapping[str, SearchResult] | None = None) -> SearchResult:
        comp = _Compiler(self, result_sets)
        q = await comp.compile(query.root)
        if _nesting(q) > MAX_NESTED_DEPTH:
            raise QueryError(48, "", f"the query nests and/or/not more than {MAX_NESTED_DEPTH} levels deep, which "
                             "Elasticsearch refuses (indices.query.bool.max_nested_depth); chains of one operator "
                             "are not limited")
        sort_keys = [k for k in query.sort if k.index != "relevance"]
        filters = []
        sort: list = []
        for k in sort_keys:
            col = SORT_FIELDS.get(k.index)
            if col is None:
                raise QueryError(80, k.index, f"cannot sort by {k.index}")
            if k.missing_value == "omit":
                filters.append({"exists": {"field": col}})
            missing_first = (k.missing_value == "lowValue") == k.ascending
            sort.append({col: {"order": "asc" if k.ascending else "desc",
                               "missing": "_first" if missing_first else "_last"}})
        if filters:
            q = {"bool": {"must": [q], "filter": filters}}
        if not sort and comp.ranked and query.ranked:
            sort.append({"_score": "desc"})
        sort.append({"union_id": "asc"})
        resp = await self._call(self.es.search, index=self.cfg.index, query=q, sort=sort, size=FIRST_PAGE,
                                track_total_hits=True, source=False)
        hits = resp["hits"]["hits"]
        total = resp["hits"]["total"]["value"]
        handle = EsHandle(q, sort, [int(h["_id"]) for h in hits])
        if hits:
            handle.cursors[len(hits)] = hits[-1]["sort"]
        if total <= len(hits):
            return SearchResult(total, handle.ids, handle)
        return SearchResult(total, None, handle)

    async def page(self, result: SearchResult, offset: int, count: int) -> list[int]:
        if result.ids is not None:
            return result.ids[offset: offset + count]
        h: EsHandle = result.handle
        if offset + count <= len(h.ids):
            return h.ids[offset: offset + count]
        count = min(count, max(0, result.total - offset))
        if count <= 0:
            return []
        return await self._walk(h, offset, count)

    async def _open_pit(self, h: EsHandle) -> None:
        resp = await self._call(self.es.open_point_in_time, index=self.cfg.index, keep_alive=PIT_KEEP_ALIVE)
        h.pit = resp["id"]

    async def _walk(self, h: EsHandle, offset: int, count: int) -> list[int]:
        """Ids at positions offset..offset+count-1 in a point in time."""
        from elasticsearch import NotFoundError

        async with h.lock:
            for attempt in range(2):
                try:
                    if h.pit is None:
                        await self._open_pit(h)
                    return await self._walk_pit(h, offset, count)
                except BackendUnavailable as e:
                    if attempt == 0 and isinstance(e.__cause__, NotFoundError):
                        h.pit = None  # the point in time expired: open a new one
                        continue
                    raise
        return []

    async def _search_pit(self, h: EsHandle, size: int, *, from_: int | None = None, after=None) -> list[dict]:
        kw: dict = {"query": h.query, "sort": h.sort, "size": size, "source": False, "track_total_hits": False,
                    "pit": {"id": h.pit, "keep_alive": PIT_KEEP_ALIVE}}
        if from_ is not None:
            kw["from_"] = from_
        if after is not None:
            kw["search_after"] = after
        resp = await self._call(self.es.search, **kw)
        if resp.get("pit_id"):
            h.pit = resp["pit_id"]
        return resp["hits"]["hits"]

    async def _walk_pit(self, h: EsHandle, offset: int, count: int) -> list[int]:
        if offset + count <= WINDOW:
            hits = await self._search_pit(h, count, from_=offset)
            if hits:
                h.cursors[offset + len(hits)] = hits[-1]["sort"]
            return [int(x["_id"]) for x in hits]
        # beyond the window: search_after from the nearest known cursor
        pos = max((p for p in h.cursors if p <= offset), default=0)
        after = h.cursors.get(pos)
        while pos < offset:
            step = min(WINDOW, offset - pos)
            hits = await self._search_pit(h, step, after=after)
            if not hits:
                return []
            pos += len(hits)
            after = hits[-1]["sort"]
            h.cursors[pos] = after
        out: list[int] = []
        while len(out) < count:
            hits = await self._search_pit(h, min(WINDOW, count - len(out)), after=after)
            if not hits:
                break
            out.extend(int(x["_id"]) for x in hits)
            after = hits[-1]["sort"]
            h.cursors[offset + len(out)] = after
        return out

    async def _verify(self, query: dict, fields: list[str], ok) -> list[int]:
        """Ids of the documents matching ``query`` whose token streams pass ``ok``
        (the position check shared with the embedded backend)."""
        src = ["t_" + f for f in fields]
        out: list[int] = []
        after = None
        while True:
            kw: dict = {"index": self.cfg.index, "query": {"bool": {"filter": [query]}}, "size": VERIFY_PAGE,
                        "sort": [{"union_id": "asc"}], "source": src, "track_total_hits": False}
            if after is not None:
                kw["search_after"] = after
            resp = await self._call(self.es.search, **kw)
            hits = resp["hits"]["hits"]
            if not hits:
                return out
            for hit in hits:
                s = hit.get("_source") or {}
                streams = [v.split() for f in src for v in _as_list(s.get(f))]
                if ok(streams):
                    out.append(int(hit["_id"]))
            after = hits[-1]["sort"]

    # -- records ---------------------------------------------------------------
    async def fetch(self, ids: Sequence[int]) -> list[UnionRecord]:
        if not ids:
            return []
        resp = await self._call(self.es.mget, index=self.cfg.index, ids=[str(i) for i in ids],
                                source=["display"])
        out = []
        for d in resp["docs"]:
            if d.get("error"):  # e.g. the index is gone: not "no such record"
                raise BackendUnavailable(f"Elasticsearch could not fetch records: {d['error']}")
            if not d.get("found"):
                continue
            disp = d["_source"]["display"]
            out.append(display_record(int(d["_id"]), disp["marc"].encode("utf-8"), disp["library"],
                                      [Holding(*h) for h in disp["holdings"]], [tuple(m) for m in disp["members"]]))
        return out

    # -- facets ----------------------------------------------------------------
    async def facets(self, result: SearchResult, names: Sequence[str], limit: int) -> dict[str, list[FacetValue]]:
        if not result.total:
            return {n: [] for n in names}
        query = result.handle.query if result.handle is not None else _ids(result.ids or [])
        aggs = {}
        for name in names:
            fd = self.config.facets.get(name)
            if fd is None:
                raise QueryError(6, name, f"unknown facet {name}")
            fieldname = ("n_" if self.types.get(fd.field) == "number" else "k_") + fd.field
            aggs[name] = {"terms": {"field": fieldname, "size": limit, "shard_size": max(limit * 10, 100),
                                    "order": [{"_count": "desc"}, {"_key": "asc"}]}}
        resp = await self._call(self.es.search, index=self.cfg.index, query=query, size=0, aggs=aggs,
                                track_total_hits=False)
        out: dict[str, list[FacetValue]] = {}
        label_aggs = {}
        for name in names:
            fd = self.config.facets[name]
            buckets = resp["aggregations"][name]["buckets"]
            if self.types.get(fd.field) == "number":
                out[name] = [FacetValue(str(b["key"]), str(b["key"]), b["doc_count"]) for b in buckets]
                continue
            out[name] = [FacetValue(b["key"], b["key"], b["doc_count"]) for b in buckets]
            if buckets:  # the display of each key: its smallest form, as the embedded index shows
                keys = "|".join(re.escape(b["key"]) for b in buckets)
                label_aggs[name] = {"terms": {"field": "kd_" + fd.field, "include": f"({keys}){KD_SEP}.*",
                                              "size": len(buckets) * 20, "order": {"_key": "asc"}}}
        if label_aggs:
            resp = await self._call(self.es.search, index=self.cfg.index, query=query, size=0, aggs=label_aggs,
                                    track_total_hits=False)
            for name in label_aggs:
                labels: dict[str, str] = {}
                for b in resp["aggregations"][name]["buckets"]:
                    k, _, disp = b["key"].partition(KD_SEP)
                    labels.setdefault(k, disp)
                out[name] = [FacetValue(v.value, labels.get(v.value, v.display), v.count) for v in out[name]]
        return out

    # -- scan ------------------------------------------------------------------
    async def scan(self, index: str, term: str, response_position: int, maximum_terms: int) -> list[ScanTerm]:
        idx = self.config.indexes.get(index)
        if idx is None:
            raise QueryError(16, index, f"unsupported index {index}")
        fields = [f for f in idx.fields if f not in T.EXACT_SKIP]
        types = {self.types.get(f, "key") for f in fields}
        numeric = types == {"number"}
        if numeric:
            key = term.strip()
            if key:
                T.number(key)
        else:
            fields = [f for f in fields if self.types.get(f) != "number"]
            tf = self.transforms.get(fields[0]) if len(fields) == 1 else None
            key = T.scan_key(tf, term)
        by_reading = None if numeric else T.reading_scan(fields, term)
        if by_reading is not None:
            fields, key = by_reading
        before_n = max(0, min(response_position - 1, maximum_terms))
        after_n = max(0, maximum_terms - before_n)

        async def collect(forward: bool, n: int) -> list[tuple[str, str]]:
            if n <= 0:
                return []
            got: dict[str, str] = {}
            for f in fields:
                got.update({k: d for k, d in (await self._scan_field(f, numeric, key, forward, n)).items()
                            if k not in got})
            ks = sorted(got, key=(lambda s: int(s)) if numeric else None, reverse=not forward)[:n]
            return [(k, got[k]) for k in ks]

        before = list(reversed(await collect(False, before_n)))
        after = await collect(True, after_n)
        terms = before + after
        if not terms:
            return []
        filters = {}
        for i, (k, _d) in enumerate(terms):
            if numeric:
                filters[str(i)] = _any([{"term": {"n_" + f: int(k)}} for f in fields])
            else:
                filters[str(i)] = _any([{"term": {"k_" + f: k}} for f in fields])
        resp = await self._call(self.es.search, index=self.cfg.index, size=0, track_total_hits=False,
                                aggs={"c": {"filters": {"filters": filters}}})
        counts = resp["aggregations"]["c"]["buckets"]
        if by_reading:
            return [ScanTerm(*T.reading_scan_term(k, d), counts[str(i)]["doc_count"]) for i, (k, d) in enumerate(terms)]
        return [ScanTerm(k, d, counts[str(i)]["doc_count"]) for i, (k, d) in enumerate(terms)]

    async def _scan_field(self, f: str, numeric: bool, key: str, forward: bool, n: int) -> dict[str, str]:
        """Up to n distinct keys of one field from ``key`` on (forward: >= key) or
        before it (< key), with the smallest display of each."""
        order = "asc" if forward else "desc"
        got: dict[str, str] = {}
        after: dict[str, Any] | None
        if numeric:
            after = None
            if key:
                v = max(INT_MIN + 1, min(INT_MAX, T.number(key)))
                after = {"k": v - 1 if forward else v}
            src = {"k": {"terms": {"field": "n_" + f, "order": order}}}
        else:
            src = {"k": {"terms": {"field": "kd_" + f, "order": order}}}
            after = {"k": key} if (key or not forward) else None  # "key" sorts just below "key<US>display"
        # backward, one key more than needed: the last key's smallest display is then complete
        while len(got) < (n if forward or numeric else n + 1):
            comp: dict = {"sources": [src], "size": max(n * 3, 10)}
            if after is not None:
                comp["after"] = after
            resp = await self._call(self.es.search, index=self.cfg.index, size=0, track_total_hits=False,
                                    aggs={"s": {"composite": comp}})
            buckets = resp["aggregations"]["s"]["buckets"]
            if not buckets:
                break
            for b in buckets:
                raw = b["key"]["k"]
                if numeric:
                    got.setdefault(str(raw), str(raw))
                else:
                    k, _, disp = raw.partition(KD_SEP)
                    if forward:
                        got.setdefault(k, disp)
                    else:
                        got[k] = disp  # descending: the last seen is the smallest display
                if len(got) >= n and forward:
                    break
            after = resp["aggregations"]["s"].get("after_key")
            if after is None:
                break
        if len(got) > n:
            got = {k: got[k] for k in list(got)[:n]}
        return got

    # -- state -----------------------------------------------------------------
    async def count(self) -> int:
        resp = await self._call(self.es.count, index=self.cfg.index)
        return resp["count"]

    async def generation(self) -> str:
        """The catalog's generation (asked before every search that may reuse a live
        result set).  Callers that ask in the same turn of the event loop share one
        read, sent after the last of them asked -- so each gets a value read after
        its own call began, as if it had read alone -- instead of one request each
        (under concurrent load most SRU requests ask at about the same time)."""
        task = self._gen_read
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._gen_read = asyncio.ensure_future(self._read_generation())
            task.add_done_callback(_retrieved)
        return await asyncio.shield(task)  # a caller that gives up does not cancel the others' read

    async def _read_generation(self) -> str:
        from elasticsearch import NotFoundError

        await asyncio.sleep(0)  # callers asking in this turn of the loop join this read
        if self._gen_read is asyncio.current_task():
            self._gen_read = None  # from here on, callers start the next read
        try:
            resp = await self.es.get(index=self.cfg.index + META_SUFFIX, id="generation")
        except NotFoundError:
            return "0"
        except Exception as e:  # mapped below
            raise _unavailable(e) from e
        return str(resp["_source"]["value"])


def _retrieved(task: asyncio.Task) -> None:
    """Done callback of a shared read: its error is raised to every caller still
    waiting; when none is left, it must not be logged as never retrieved."""
    if not task.cancelled():
        task.exception()


TRANSPORT_LOG = "elastic_transport.transport"


def _quiet_transport_log() -> None:
    """The official client logs every request at INFO (three lines per SRU request,
    about 5 % of the gateway's CPU with the gateway's INFO logging); failures reach
    the log through _unavailable.  An operator's own level for that logger is kept."""
    logger = logging.getLogger(TRANSPORT_LOG)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]
