"""Federated search: a database that is a group of targets (Metaproxy's virtual
databases).  ``[federation.<name>]`` in the configuration file names the targets:
the local union catalog and/or partner Z39.50 and SRU targets, each with its query
mapping and timeout (search/federation_targets.py builds them from the file).

``FederatedCatalog`` is a ``Catalog`` (indexers/backend.py) that fans out: the
route (search/route.py) runs a federation database's searches, pages and records
on it exactly as on the union catalog, so SRU (``/sru/<name>``), Z39.50 (database
``<name>``) and the web OPAC search it alike.

* All targets are asked at once, each within its own timeout; a target that fails
  or outlasts its timeout is left out and named in the result's diagnostics
  (``FederatedHits.problems``: SRU non-fatal diagnostic, Z39.50 partial result set),
  so the first page never waits longer than the slowest timeout.
* Each target gives its first ``records`` records; the results are interleaved by
  rank (the first of every target, then the second ...) and deduplicated by the
  union merge rules (indexers/union.py: LCCN, NBN, ISBN with agreeing titles; one
  target's records are never merged with each other).  A merged record shows the
  first target's record with the holdings of all (a partner's as an 852 $a with
  the target's label).  The hit count is the number of merged records, which is
  what can be paged; each target's own count is in ``FederatedHits.reports``.
* Records are kept in memory (bounded, least recently used out) under ids of their
  own, far above the union catalog's; a page asked for after its records were
  dropped gets them as withdrawn (Z39.50 diagnostic 14).
* Facets are not computed over federated results (an empty list); scans are the
  union catalog's; a sort (CQL sortBy, SRU sortKeys, Z39.50 Sort) is diagnostic 80
  (Bib-1 207): the targets' ranks cannot be put in one order; a query within a
  result set (cql.resultSetId, also what local.available becomes) is diagnostic 16.
"""
from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pymarc

from indexers import union as un
from indexers.backend import BackendUnavailable, Catalog
from indexers.mapping import FieldMapping, load_mapping
from indexers.query_model import Clause, Query, QueryError, walk
from indexers.records import FacetValue, Holding, ScanTerm, SearchResult, UnionRecord

log = logging.getLogger("unioncat.federation")
ID_BASE = 1 << 40                # federated record ids start here (union ids stay far below)
KEEP_RECORDS = 20000             # records kept for paging, all federations of the process together


class TargetsUnavailable(BackendUnavailable):
    """Every target of a federation failed; ``public``: what a client is told (the
    targets named, as the partial results name theirs)."""

    def __init__(self, problems: Sequence["Problem"]):
        self.problems = list(problems)
        self.public = "no target answered: " + "; ".join(p.message for p in self.problems)
        super().__init__(self.public)


def unavailable_message(e: BaseException) -> str:
    """What a front end says for a BackendUnavailable: a federation's own words, else
    the union catalog's."""
    return getattr(e, "public", None) or "the index is temporarily unavailable; try again"


@dataclass
class TargetHits:
    total: int                             # the target's own hit count
    records: list[UnionRecord]             # its first records, ranked


class Target(Protocol):
    name: str
    label: str                             # how its holdings are named (852 $a)
    timeout: float

    async def search(self, query: Query, count: int) -> TargetHits: ...


@dataclass(frozen=True)
class Problem:
    target: str
    kind: str                              # "timeout" | "failed" | "unmappable"
    message: str


@dataclass
class FederatedHits:
    records: list[UnionRecord]
    reports: dict[str, int | None] = field(default_factory=dict)   # target -> its hit count (None: no answer)
    problems: list[Problem] = field(default_factory=list)


class LocalTarget:
    """The local union catalog as a target (its own catalog, the query as it is)."""

    def __init__(self, catalog: Catalog, name: str = "union", timeout: float = 5.0, label: str = ""):
        self.catalog = catalog
        self.name = name
        self.label = label or name
        self.timeout = timeout

    async def search(self, query: Query, count: int) -> TargetHits:
        res = await self.catalog.search(query)
        ids = await self.catalog.page(res, 0, count)
        return TargetHits(res.total, await self.catalog.fetch(ids))


def remote_record(marc: pymarc.Record, label: str) -> UnionRecord:
    """A partner's record as a hit: its own 852s kept, one holding named by the target."""
    f001 = marc.get_fields("001")
    local_id = f001[0].data.strip() if f001 and f001[0].data else ""
    return UnionRecord(0, marc, [Holding(label, local_id)], [(label, local_id)])


class _Keys:
    __slots__ = ("keys", "titles")

    def __init__(self, mapping: FieldMapping, marc: pymarc.Record):
        try:
            ex = mapping.extract(marc)
            self.keys = un.match_keys(ex.fields)
            self.titles = un.title_forms(ex.title_forms)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            self.keys, self.titles = [], {"v": [], "r": []}


def merge(results: Sequence[tuple[str, str, list[UnionRecord]]], mapping: FieldMapping) -> list[UnionRecord]:
    """Interleave targets' ranked records and merge duplicates by the union rules.
    ``results``: (target name, label, records) in the targets' configured order."""
    groups: list[tuple[list[tuple[str, str, UnionRecord]], list[_Keys]]] = []
    by_key: dict[tuple[str, str], list[int]] = {}
    streams = [[(name, label, r) for r in recs] for name, label, recs in results]
    for name, label, rec in (x for round_ in itertools.zip_longest(*streams) for x in round_ if x is not None):
        k = _Keys(mapping, rec.marc)
        best = None
        for kind, value in k.keys:
            for gi in by_key.get((kind, value), ()):
                members, keys = groups[gi]
                if any(m[0] == name for m in members):
                    continue                  # one target's records are never merged with each other
                if kind == "isbn" and not any(un.titles_agree(k.titles, o.titles) for o in keys):
                    continue
                rank = (un.KEY_STRENGTH[kind], gi)
                if best is None or rank < best:
                    best = rank
        if best is None:
            gi = len(groups)
            groups.append(([(name, label, rec)], [k]))
        else:
            gi = best[1]
            groups[gi][0].append((name, label, rec))
            groups[gi][1].append(k)
        for kind, value in k.keys:
            lst = by_key.setdefault((kind, value), [])
            if gi not in lst:
                lst.append(gi)
    out = []
    for members, _keys in groups:
        first = members[0][2]
        if len(members) == 1:
            out.append(first)
            continue
        marc = copy.deepcopy(first.marc)
        holdings = list(first.holdings)
        names = list(first.members)
        for _name, label, rec in members[1:]:
            holdings.extend(rec.holdings)
            names.extend(rec.members)
            if rec.id == 0:                   # a partner's record: its holding shown as an 852
                marc.add_ordered_field(pymarc.Field(tag="852", indicators=pymarc.Indicators(" ", " "),
                                                    subfields=[pymarc.Subfield("a", label)]))
        out.append(UnionRecord(0, marc, holdings, names))
    return out


class _Kept:
    """Federated records by id, least recently used out (shared by all federations)."""

    def __init__(self, limit: int = KEEP_RECORDS):
        self.limit = limit
        self.records: OrderedDict[int, UnionRecord] = OrderedDict()
        self.next_id = ID_BASE

    def add(self, records: list[UnionRecord]) -> list[int]:
        ids = []
        for i, r in enumerate(records):
            self.next_id += 1
            r = records[i] = copy.copy(r)     # a catalog's own record object is never renumbered
            r.id = self.next_id
            self.records[r.id] = r
            ids.append(r.id)
        while len(self.records) > self.limit:
            self.records.popitem(last=False)
        return ids

    def get(self, ids: Sequence[int]) -> list[UnionRecord]:
        out = []
        for i in ids:
            r = self.records.get(i)
            if r is not None:
                self.records.move_to_end(i)
                out.append(r)
        return out


KEPT = _Kept()


class FederatedCatalog(Catalog):
    """A Catalog over a group of targets (see the module doc).  ``local``: the
    union catalog, whose configuration (indexes) the front ends parse against and
    whose scans and counts it answers."""

    def __init__(self, name: str, local: Catalog, targets: Sequence[Target], *, records: int = 50,
                 mapping: FieldMapping | None = None, kept: _Kept = KEPT):
        self.name = name
        self.local = local
        self.config = local.config
        self.targets = list(targets)
        self.records = records
        self.mapping = mapping or load_mapping()
        self.kept = kept

    async def _one(self, t: Target, query: Query) -> TargetHits | Problem:
        try:
            async with asyncio.timeout(t.timeout):
                return await t.search(query, self.records)
        except TimeoutError:
            return Problem(t.name, "timeout", f"{t.name} did not answer within {t.timeout:g} s")
        except QueryError as e:
            return Problem(t.name, "unmappable", f"{t.name} cannot be asked this query: {e.message}")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of one target is that target's diagnostic
            log.info("federation %s: target %s failed: %r", self.name, t.name, e)
            return Problem(t.name, "failed", f"{t.name} failed: {e}")

    async def search(self, query: Query, result_sets: Mapping[str, SearchResult] | None = None) -> SearchResult:
        if query.sort:
            raise QueryError(80, self.name, f"{self.name} merges its targets' results by rank; they cannot be "
                             "sorted", bib1=207)
        if any(isinstance(n, Clause) and n.index.lower() == "cql.resultsetid" for n in walk(query.root)):
            raise QueryError(16, "cql.resultSetId", f"{self.name}: its targets cannot be searched within "
                             "result sets (nor limited to what is available here, local.available)")
        answers = await asyncio.gather(*(self._one(t, query) for t in self.targets))
        hits = FederatedHits([])
        results = []
        for t, a in zip(self.targets, answers):
            if isinstance(a, Problem):
                hits.problems.append(a)
                hits.reports[t.name] = None
            else:
                hits.reports[t.name] = a.total
                results.append((t.name, t.label, a.records))
        if not results and hits.problems:
            raise TargetsUnavailable(hits.problems)
        hits.records = merge(results, self.mapping)
        ids = self.kept.add(hits.records)
        return SearchResult(len(ids), ids, hits)

    async def page(self, result: SearchResult, offset: int, count: int) -> list[int]:
        return list((result.ids or [])[offset: offset + count])

    async def fetch(self, ids: Sequence[int]) -> list[UnionRecord]:
        return self.kept.get(ids)

    async def facets(self, result: SearchResult, names: Sequence[str], limit: int) -> dict[str, list[FacetValue]]:
        return {n: [] for n in names}

    async def scan(self, index: str, term: str, response_position: int, maximum_terms: int) -> list[ScanTerm]:
        return await self.local.scan(index, term, response_position, maximum_terms)

    async def count(self) -> int:
        return await self.local.count()

    async def generation(self) -> str:
        return await self.local.generation()


def problems_of(result: SearchResult) -> list[Problem]:
    """The targets left out of a federated result (none for any other result)."""
    h = result.handle
    return list(h.problems) if isinstance(h, FederatedHits) else []
