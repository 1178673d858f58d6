"""How record values become index terms and how query terms are read: pure
functions shared by every index backend, so the embedded SQLite index and
Elasticsearch agree by construction, not by luck.

Indexing side
* text fields: each value pre-tokenized by normalize.tokenize (Latin words as
  words, each CJK character a token), values kept apart (one position between
  two values of a field);
* whole-value keys (exact_key, or the identifier's own normalization) of every
  field but long free text (EXACT_SKIP): ==, exact, ranges, scan, facets;
* numbers (years): ranges, numeric sort, facets.

Query side: term words, masks, the whole-value key of a term, and the position
checks (phrases with inner masks, prox) that a backend runs on token streams
when its index cannot answer them exactly on its own.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass

from . import ja_variants as jv
from . import normalize as nz
from . import readings as rd
from .query_model import Clause, Prox, QueryError

EXACT_SKIP = frozenset({"notes"})  # long free text: no whole-value entries (docs/search.md)
IDENTIFIER_TRANSFORMS = frozenset({"isbn", "issn", "lccn"})  # keys normalized by their own function
MAX_EXPANSION = 2000  # words a masked term may expand to before diagnostic 28
# relevance: weight of a match in each text field (BM25 weights / query boosts)
FIELD_WEIGHTS = {"title": 4.0, "creator": 2.0, "subject": 2.0, "publisher": 1.0, "notes": 0.5}
# What index documents are made of changes with this (both backends): a catalog indexed
# with another format is rebuilt by the next ingest (indexers/store.py, docs/search.md
# "Reindex").  2: readings, generated readings, filing and scan keys by reading (issue 16);
# after the dot, a digest of the folds of config/ja_variants.toml that change what is
# indexed, so editing them rebuilds the index too.
INDEX_FORMAT = "2." + hashlib.sha256(json.dumps(
    [jv.NAME_KANJI, jv.SEPARATORS, jv.SMALL_TO_LARGE, jv.PARTICLES, jv.GENERATED],
    sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
# text fields whose values also get reading tokens (indexers/readings.py, docs/search.md "Readings")
READING_FIELDS = frozenset({"title", "creator", "subject", "publisher"})
SCAN_READING_FIELDS = ("title", "creator")  # scan and sort by reading (docs/search.md)
RELATIONS = ("=", "adj", "all", "any", "==", "exact", "<", "<=", ">", ">=", "<>", "within")
MODIFIERS = ("ignorecase", "respectcase", "masked", "relevant")


# ---------------------------------------------------------------- indexing
@dataclass
class Entries:
    """What one union document becomes in any index."""

    texts: dict[str, list[list[str]]]  # text field -> token list per value
    keys: set[tuple[str, str, str]]  # (field, key, display)
    numbers: set[tuple[str, int]]  # (field, value)


def index_entries(fields: dict[str, list[str]], types: dict[str, str], transforms: dict[str, str | None],
                  text_fields: list[str]) -> Entries:
    texts = {f: [nz.tokenize(v) for v in fields.get(f, ())] for f in text_fields}
    japanese = rd.is_japanese(fields)
    for f in text_fields:
        if f in READING_FIELDS and fields.get(f):
            texts[f].extend(rd.reading_values(fields[f], japanese))
    keys: set[tuple[str, str, str]] = set()
    nums: set[tuple[str, int]] = set()
    for f, vals in fields.items():
        typ = types.get(f, "key")
        if typ == "number":
            for v in vals:
                try:
                    nums.add((f, int(v)))
                except ValueError:
                    pass
            continue
        if f in EXACT_SKIP:
            continue
        keep_case = transforms.get(f) in IDENTIFIER_TRANSFORMS
        for v in vals:
            key = v.lower() if keep_case else nz.exact_key(v)
            if key:
                keys.add((f, key, v))
    if japanese:
        keys |= reading_keys(fields)
    return Entries(texts, keys, nums)


def reading_keys(fields: dict[str, list[str]]) -> set[tuple[str, str, str]]:
    """Scan by reading (docs/search.md, "Scan by reading"): for a Japanese title and
    name, ``<field>_yomi`` keyed by the filing key of its reading, displayed as the
    reading and the heading (SCAN_SEP between), and its reading in hiragana as one more
    whole-value key of the field, so that the value a reading scan returns finds it
    with ==."""
    out: set[tuple[str, str, str]] = set()
    for f in SCAN_READING_FIELDS:
        vals = fields.get(f)
        if not vals:
            continue
        segs = rd.reading_of(vals)
        sk = rd.sort_key(segs)
        if not sk:
            continue
        text = rd.spelled(segs)
        heading = next((v for v in vals if has_cjk_text(v)), vals[0])
        out.add((f + "_yomi", sk, text + rd.SCAN_SEP + heading))
        k = nz.exact_key(text)
        if k:
            out.add((f, k, heading))
    return out


_CJK_TEXT = re.compile(r"[\u3005-\u3007\u303b\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff"
                       r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9d]|[\U00020000-\U0003ffff]")


def has_cjk_text(v: str) -> bool:
    """Kana or kanji in a value as catalogued (half-width katakana too)."""
    return _CJK_TEXT.search(v) is not None


def reading_scan(fields: list[str], term: str) -> tuple[list[str], str] | None:
    """A scan of a title or name index from a kana term walks the readings:
    (the _yomi key fields, the filing key to start from); None for any other scan."""
    if not term.strip() or not rd.has_kana(term) or rd.has_kanji(term):
        return None
    yomi = [f + "_yomi" for f in fields if f in SCAN_READING_FIELDS]
    if not yomi:
        return None
    return yomi, rd.sort_key(rd.reading_kana(term))


def reading_scan_term(key: str, display: str) -> tuple[str, str]:
    """(value, display) of a scan-by-reading entry: the reading in hiragana (a term that
    finds the heading with ==, and from which a scan continues by reading) and the heading."""
    text, _, heading = display.partition(rd.SCAN_SEP)
    return nz.exact_key(text), heading


# ---------------------------------------------------------------- query terms
def words(term: str) -> list[str]:
    return [w for w in re.split(r"\s+", term.strip()) if w]


def only_masks(term: str) -> bool:
    t = term.strip()
    return bool(t) and all(ch in "*?" for ch in t) and "*" in t


def has_mask(term: str) -> bool:
    return bool(re.search(r"(?<!\\)[*?]", term))


def is_prefix_glob(p: str) -> bool:
    return p.endswith("*") and not re.search(r"[*?\[]", p[:-1])


def check_modifiers(c: Clause) -> None:
    for m in c.modifiers:
        if m.name not in MODIFIERS:
            raise QueryError(20, m.name, f"unsupported relation modifier {m.name}")


def relation_of(c: Clause) -> str:
    """The clause's relation, checked: unsupported modifiers (20) and relations (19)."""
    check_modifiers(c)
    rel = c.relation.lower()
    if rel.startswith("cql."):
        rel = rel[4:]
    if rel not in RELATIONS:
        raise QueryError(19, c.relation, f"unsupported relation {c.relation}")
    return rel


def phrase_tokens(term: str) -> list[nz.QToken]:
    """A term as a token sequence for phrase matching: lone masks at the edges of
    a CJK run are dropped (meaningless under substring semantics); a lone * between
    words is any one word ("?"); * inside a CJK sequence is diagnostic 28."""
    toks = nz.query_tokens(term)
    while toks and toks[0].text == "*" and toks[0].masked:
        toks = toks[1:]
    while toks and toks[-1].text == "*" and toks[-1].masked:
        toks = toks[:-1]
    for i, t in enumerate(toks):
        if t.masked and t.text == "*":
            if toks[i - 1].cjk or toks[i + 1].cjk:
                raise QueryError(28, term, "a * inside a CJK sequence is not supported; use two terms with and/prox")
            toks[i] = nz.QToken("?", True, False)  # a lone * between words: any one word
    return toks


def text_groups(term: str, rel: str) -> list[list[list[nz.QToken]]]:
    """The token sequences a text-field term matches: one group per phrase (= and adj:
    the whole term; all and any: each word), each group a list of alternatives, any of
    which matches: the term as typed, its spellings of config/ja_variants.toml
    (ja_variants.query_variants) and its canonical reading keys (readings.query_keys)
    as catalogued and as generated reading tokens.  Empty groups are left out."""
    raw = [term] if rel in ("=", "adj") else words(term)
    groups: list[list[list[nz.QToken]]] = []
    for w in raw:
        alts: list[list[nz.QToken]] = []
        for v in jv.query_variants(w):
            toks = phrase_tokens(v)
            if toks and toks not in alts:
                alts.append(toks)
        if not alts:
            continue
        keys, marks_length = rd.query_keys(w)
        for k in keys:
            for mark in (rd.FULL_MARKS if marks_length else rd.ALL_MARKS):
                alts.append([nz.QToken(mark + t, False, False) for t in k])
            if marks_length:  # romanized readings of unknown length: matched without it
                alts.append([nz.QToken(rd.UNMARKED + t, False, False) for t in rd.short(k)])
        groups.append(alts)
    return groups


def identifier_key(transform: str | None, term: str) -> str | None:
    if transform == "isbn":
        return nz.normalize_isbn(term)
    if transform == "issn":
        return nz.normalize_issn(term)
    if transform == "lccn":
        return nz.normalize_lccn(term)
    return nz.exact_key(term)


def range_key(transform: str | None, term: str) -> str:
    """The key a range bound compares with."""
    if transform in IDENTIFIER_TRANSFORMS:
        return identifier_key(transform, term) or term.lower()
    return nz.exact_key(term)


def key_pattern(transform: str | None, term: str) -> tuple[str | None, bool]:
    """(key or GLOB pattern, masked) for == / = on whole-value keys; None: no match."""
    if transform in IDENTIFIER_TRANSFORMS:
        if has_mask(term):
            p = re.sub(r"[\s\-]", "", term).lower().replace("\\*", "").replace("\\?", "")
            return p, True
        return identifier_key(transform, term), False
    return nz.exact_query_key(term)


def any_keys(transform: str | None, term: str) -> tuple[list[str], list[str]]:
    """The words of an ``any`` term on a key field: (their keys, once each, for one set
    lookup; the masked words, each looked up on its own)."""
    keys: dict[str, None] = {}
    masked = []
    plain_identifiers = transform in IDENTIFIER_TRANSFORMS
    for w in words(term):
        if plain_identifiers and "*" not in w and "?" not in w and "\\" not in w:
            pattern, is_masked = identifier_key(transform, w), False   # key_pattern's answer, sooner
        else:
            pattern, is_masked = key_pattern(transform, w)
        if is_masked:
            masked.append(w)
        elif pattern is not None:
            keys.setdefault(pattern)
    return list(keys), masked


def scan_key(transform: str | None, term: str) -> str:
    return nz.exact_key(term) if transform not in IDENTIFIER_TRANSFORMS else (identifier_key(transform, term) or term)


NUMBER_LIMIT = 2 ** 62  # beyond any stored value (years), inside every engine's integers


def number(term: str, whole: str | None = None) -> int:
    """A query number, clamped to +-NUMBER_LIMIT: comparisons with stored values
    keep their meaning, and no engine overflows (SQLite integers are 64-bit)."""
    try:
        return max(-NUMBER_LIMIT, min(NUMBER_LIMIT, int(term.strip())))
    except ValueError:
        raise QueryError(36, whole if whole is not None else term,
                         f"{whole or term!r} is not a number (year) for this index") from None


def glob_regex(pattern: str) -> re.Pattern:
    """A GLOB pattern (* ? and [[] for a literal [) as a Python regex."""
    return re.compile(fnmatch.translate(pattern.replace("[[]", "\x00")).replace("\x00", r"\["))


def glob_literal_prefix(pattern: str) -> str:
    return re.split(r"[*?\[]", pattern, maxsplit=1)[0]


# ---------------------------------------------------------------- positions
def matcher(t: nz.QToken):
    if not t.masked:
        return t.text
    if t.text == "?":
        return None  # any one token
    return glob_regex(t.text)


def _tok_ok(m, tok: str) -> bool:
    if m is None:
        return True
    if isinstance(m, str):
        return m == tok
    return m.fullmatch(tok) is not None


def spans(tokens: list[str], pattern: list) -> list[tuple[int, int]]:
    n = len(pattern)
    out: list[tuple[int, int]] = []
    if n == 0:
        return out
    for i in range(len(tokens) - n + 1):
        if all(_tok_ok(pattern[j], tokens[i + j]) for j in range(n)):
            out.append((i, i + n - 1))
    return out


COMPARE = {
    "<": lambda d, n: d < n,
    "<=": lambda d, n: d <= n,
    "=": lambda d, n: d == n,
    ">=": lambda d, n: d >= n,
    ">": lambda d, n: d > n,
    "<>": lambda d, n: d != n,
}


def prox_ok(tokens, left_alts, right_alts, distance, cmp, ordered) -> bool:
    ls = [s for a in left_alts for s in spans(tokens, a)]
    if not ls:
        return False
    rs = [s for a in right_alts for s in spans(tokens, a)]
    for l0, l1 in ls:
        for r0, r1 in rs:
            if r0 > l1 and cmp(r0 - l1, distance):
                return True
            if not ordered and l0 > r1 and cmp(l0 - r1, distance):
                return True
    return False


def prox_alternatives(c: Clause) -> list[list]:
    """Token matchers of one prox operand: one alternative per word for `any`."""
    if c.relation.lower() == "any":
        return [[matcher(t) for t in phrase_tokens(w)] for w in words(c.term)]
    return [[matcher(t) for t in phrase_tokens(c.term)]]


def prox_clauses(p: Prox) -> tuple[Clause, Clause]:
    """The two sides of a prox node, which must be plain search clauses."""
    if not (isinstance(p.left, Clause) and isinstance(p.right, Clause)):
        raise QueryError(39, "prox", "prox is supported between two search clauses")
    return p.left, p.right


def check_prox(p: Prox, fields_of, types) -> list[str]:
    """Validate a prox node (both sides plain clauses on the same text index, unit
    word); returns the fields."""
    left, right = prox_clauses(p)
    lf, rf = fields_of(left), fields_of(right)
    if lf != rf or any(types.get(f) != "text" for f in lf):
        raise QueryError(39, "prox", "both sides of prox must use the same text index")
    for c in (left, right):
        if c.relation.lower() not in ("=", "adj", "any", "cql.adj"):
            raise QueryError(39, c.relation, "prox operands must use =, adj or any")
    if p.unit != "word":
        raise QueryError(42, p.unit, "only unit=word is supported")
    return lf


def glob_to_wildcard(pattern: str) -> str:
    """A GLOB pattern as written by normalize ([[] [*] [?] for literal characters)
    in the syntax of Lucene's wildcard query (backslash escapes)."""
    out = []
    i = 0
    while i < len(pattern):
        three = pattern[i:i + 3]
        if three in ("[[]", "[*]", "[?]"):
            out.append("\\" + three[1] if three[1] in "*?" else "[")
            i += 3
            continue
        ch = pattern[i]
        out.append("\\\\" if ch == "\\" else ch)
        i += 1
    return "".join(out)
