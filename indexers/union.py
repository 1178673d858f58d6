"""Union-record rules as pure functions (SEARCH_SEMANTICS.md, "Union records").

A *source* is one library's record; a *union record* groups the sources of
different libraries that describe one manifestation.  The store
(indexers/store.py) persists them; this module decides:

* which match keys a source has (LCCN, national bibliography number, ISBN),
* whether two sources' titles agree (needed for an ISBN match),
* which candidate union record a source joins,
* what the union record's index document is (fields of all members merged).

Choices where the contract is silent (also in docs/search.md):
* Keys are tried strongest first: LCCN, then NBN, then ISBN; among union records
  sharing the strongest key, the oldest (lowest id) wins.  Union records are never
  merged with each other after the fact (no transitive chains), so one new source
  never rewrites other libraries' clusters.
* A union record that already holds a source of the same library is never a
  candidate (one library's records are never merged with each other).
* Titles agree when some vernacular form of one equals a vernacular form of the
  other, or some romanized form equals a romanized form, after exact_key
  normalization of 245 $a$n$p; a form that is a word-boundary prefix of the other
  (at least 4 characters) also agrees, which covers "Title" vs "Title : subtitle"
  split differently between $a and $b.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import normalize as nz
from . import readings as rd

KEY_STRENGTH = {"lccn": 0, "nbn": 1, "isbn": 2}


def match_keys(fields: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Match keys of a source, strongest first: [("lccn", "85000002"), ...]."""
    keys = []
    for kind in ("lccn", "nbn", "isbn"):
        for v in fields.get(kind, ()):
            keys.append((kind, v if kind != "nbn" else nz.exact_key(v)))
    return keys


def has_cjk(text: str) -> bool:
    return any(nz.is_cjk(t) for t in nz.tokenize(text))


def title_forms(raw_forms: list[str]) -> dict[str, list[str]]:
    """Split 245/880 title forms into vernacular (CJK script) and romanized keys."""
    out: dict[str, list[str]] = {"v": [], "r": []}
    for f in raw_forms:
        key = nz.exact_key(f)
        if key:
            out["v" if has_cjk(f) else "r"].append(key)
    return out


def _agree(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) < 4 or not long_.startswith(short):
        return False
    nxt = long_[len(short)]
    return nxt == " " or (nz.is_cjk(short[-1]) and nz.is_cjk(nxt))


def titles_agree(a: dict[str, list[str]], b: dict[str, list[str]]) -> bool:
    for script in ("v", "r"):
        for x in a.get(script, ()):
            for y in b.get(script, ()):
                if _agree(x, y):
                    return True
    return False


@dataclass
class Candidate:
    union_id: int
    kind: str  # the key kind that matched
    libraries: frozenset[str]
    titles: list[dict[str, list[str]]]  # title forms of the union's member sources that carry the key


def choose_union(
    library: str, titles: dict[str, list[str]], candidates: list[Candidate]
) -> int | None:
    """The union record a new source of ``library`` joins, or None for a new one."""
    best = None
    for c in candidates:
        if library in c.libraries:
            continue
        if c.kind == "isbn" and not any(titles_agree(titles, t) for t in c.titles):
            continue
        rank = (KEY_STRENGTH[c.kind], c.union_id)
        if best is None or rank < best[0]:
            best = (rank, c.union_id)
    return best[1] if best else None


@dataclass
class MemberSource:
    """What the store keeps of each member source to rebuild its union's document."""

    source_id: int
    library: str
    local_id: str
    fields: dict[str, list[str]]
    display: dict[str, list[str]]
    title_forms: list[str]
    nonfiling: int
    holdings: list[dict]


@dataclass
class UnionDocument:
    """Everything an index backend stores for one union record."""

    union_id: int
    fields: dict[str, list[str]] = field(default_factory=dict)
    sort_title: str | None = None
    sort_creator: str | None = None
    sort_date: int | None = None
    libraries: list[str] = field(default_factory=list)
    holdings: list[dict] = field(default_factory=list)
    preferred_source: int = 0


def _sort_form(values: list[str], skip: int = 0, japanese: bool = False) -> str | None:
    """A Japanese heading files by its reading in 五十音 order (readings.sort_reading);
    any other: romanized form first (Latin order is meaningful; kanji code point order
    is not), then kana readings, then anything."""
    if not values:
        return None
    if japanese:
        got = rd.sort_reading(values, skip)
        if got:
            return got
    rom = [v for v in values if not has_cjk(v)]
    first = (rom or values)[0]
    return nz.exact_key(first[skip:] if rom and first is rom[0] else first) or None


def build_document(union_id: int, members: list[MemberSource]) -> UnionDocument:
    """Merge member sources (oldest first) into the union record's index document."""
    members = sorted(members, key=lambda m: m.source_id)
    doc = UnionDocument(union_id, preferred_source=members[0].source_id)
    for m in members:
        for name, vals in m.fields.items():
            cur = doc.fields.setdefault(name, [])
            for v in vals:
                if v not in cur:
                    cur.append(v)
        for h in m.holdings:
            doc.holdings.append(h)
        if m.library not in doc.libraries:
            doc.libraries.append(m.library)
    lib_keys = doc.fields.setdefault("library", [])
    for h in doc.holdings:
        for v in (h["library"], h.get("branch") or ""):
            if v and v not in lib_keys:
                lib_keys.append(v)
    p = members[0]
    japanese = rd.is_japanese(doc.fields)
    doc.sort_title = _sort_form(p.title_forms, p.nonfiling, japanese)
    doc.sort_creator = _sort_form(p.display.get("creator", []) or p.fields.get("creator", []), 0, japanese)
    dates = doc.fields.get("date")
    pd = p.fields.get("date")
    first = pd or dates
    doc.sort_date = int(first[0]) if first else None
    return doc
