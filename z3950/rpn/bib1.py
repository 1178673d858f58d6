"""Bib-1: the use-attribute configuration (config/bib1.toml) and the mapping of
type-1 queries into the project's one query model (:mod:`indexers.query_model`).
Sans-I/O; errors are :class:`z3950.diagnostics.Bib1Diagnostic`.

Mapping RPN to the query model (the Bib-1 semantics of this server)
====================================================================

Attribute checks, in this order, for every operand (first failure wins):

* The query's attribute set and every element's set must be Bib-1 -> else
  **121** (addinfo: the OID).
* Types 1-6 are Bib-1; type 7 (embedded sort, a Zebra extension) is accepted as
  described below; any other type -> **113** (addinfo: the type).
* A complex value with a list (not one string) -> **246** (addinfo: the type).
* The same type twice: harmless when the values are equal, else **123**
  (addinfo "type N given twice").  We do not guess which one the client meant.
* Values: relation 1-6, 102, 103, 104 (100 phonetic, 101 stem, others -> **117**);
  position 1-3 (-> **119**); structure 1-6, 105, 106, 108, 109 (100-104, 107 and
  others -> **118**); truncation 1-3, 100, 101, 104, 105, 106 (102/103 regular
  expressions and others -> **120**); completeness 1-3 (-> **122**).  A string
  value for these types gets the same diagnostic.  addinfo: the value.
* Use attribute: numeric values through ``config/bib1.toml``; unknown -> **114**
  (addinfo: the value).  A string value (``@attr 1=title``, as Zebra allows) is
  resolved like a CQL index name (aliases in bib1.toml first, e.g.
  ``_ALLRECORDS``); unknown -> **114** (addinfo: the string).  No use
  attribute: the server choice index.
* Term types: general, characterString and numeric (as its decimal text);
  others -> **229** (addinfo: the term type).  A blank term -> **125**.

Terms: characters that are masks or escapes in the query model (``* ? \\``, and
``"`` for canonical form) are escaped, so ``@attr 1=4 "C++?"`` searches the
literal text; the truncation attribute adds the (unescaped) masks.  Leading and
trailing blanks are dropped.

=====================  ==========================================================
truncation (5)         term in the model
=====================  ==========================================================
100 (default)          literal
1 right / 2 left       ``term*`` / ``*term``
3 left and right       ``*term*``
101 process #          ``#`` -> ``*`` (any run of characters, as in YAZ/Zebra)
104 Z39.58             ``#`` -> ``?`` (one character), ``?`` -> ``*``; ``?n``
                       (at most n characters) -> **120**
105 / 106 (Zebra)      ``*`` -> ``*``, ``!`` -> ``?``; 105 also right-truncates
=====================  ==========================================================

Relation (2):

* 1 ``<``, 2 ``<=``, 4 ``>=``, 5 ``>``, 6 ``<>``; 104 ``within`` (term "low high";
  Bath level 2 date range).  With a word-list structure (6, 105, 106) or with
  a term that truncation made masked -> **123**.  Structures 4, 5, 109 need an
  integer term -> **126**.  Position and completeness do not apply.
* 3 equal (default) and 102 relevance -> equality, below.  Result order: with
  102 on any term, by relevance (as CQL); without it, index order (ascending
  record id), as Zebra -- nothing is scored.  Sort keys (type 7, Sort) win.  103 AlwaysMatches:
  ``cql.allRecords`` when no use attribute is given
  (or the use is ``_ALLRECORDS``/``cql.allRecords``), else ``index = *`` (every
  record that has the index); the term is ignored.

Equality, by structure (4), completeness (6), position (3) and the use
attribute's kind (bib1.toml); the first row that applies wins:

=======================================  =======================================
attributes                               clause
=======================================  =======================================
structure 4 year, 5 date, 109 numeric    ``=`` (an integer term unless masked,
                                         else **126**); dates are years here
structure 6 word list                    ``all``
structure 105 free-form text             ``any`` (as Zebra's or-list, and YAZ's
                                         CQL mapping sends ``any`` as 4=105)
structure 106 document text              ``any``
  (word lists with position 1/2 or completeness 2/3 -> **123**)
kind year                                ``=``
completeness 2/3, structure 3 key,       ``==`` (the whole field)
structure 108 string
kind text, position 1/2 (first in        ``== "term*"`` when the term ends with
field / subfield; we index fields,       a mask, else ``== "term" or == "term *"``
not subfields)                           (the field starts with the words; CJK:
                                         with the characters)
kind key (identifiers, codes)            ``=`` (the whole normalized value; also
                                         for phrase, word and several words)
structure 1 phrase                       ``adj``
structure 2 word                         ``=`` for one word; several words ``all``
                                         (keyword search: every word)
no structure                             ``=`` (CQL default: word or phrase)
=======================================  =======================================

So the Bath profile (functional areas A and C) maps as follows (term T):
keyword (3=3 4=2 5=100 6=1) ``= T``; keyword with right truncation (5=1)
``= T*``; exact match (3=1 4=1 5=100 6=3) ``== T``; first words in field (3=1
4=1 5=100 6=1) ``== T or == "T *"``; first characters in field (3=1 4=1 5=1
6=1) ``== T*``; phrase (3=3 4=1) ``adj T``; standard identifier (1=1007)
``dc.identifier = T``; date of publication (1=31 4=4) ``dc.date = T``; ranges
with 2=1/2/4/5 or 2=104.

Operators: ``and`` / ``or`` / ``and-not`` -> Boolean and / or / not.  ``prox``
-> Prox(distance, comparison of relation 1-6, ordered); exclusion true ->
**131** (addinfo "exclusion"), another relation -> **131**, a unit other than
known 2 (word) -> **132** (addinfo: the unit, "private N" for private units),
distance outside 0..999999999 -> **202**, a result set operand -> **129**.
More than ``MAX_BOOLEAN_OPERATORS`` (250) operators -> **6**; a tree deeper
than ``MAX_RPN_DEPTH`` -> **108**.

Result sets: ``@set name`` -> ``Clause("cql.resultSetId", "=", name)`` (the
name as sent; empty -> **128**); with attributes (resultAttr, type-101 only)
-> **245**.

Embedded sort (type 7, Zebra's extension): an operand carrying type 7 (1
ascending, 2 descending; else **237**) is a sort key, not a search.  Its parent
operator must be ``@or`` (``@or <query> @attr 7=1 @attr 1=4 0``), else **237**;
the keys may sit anywhere in the tree (``@and x @or y <key>`` is ``x and y``,
sorted).  Its term is the key's level (0 primary, 1 secondary ...; not an
integer -> **237**); keys are ordered by level, then as they occur.  Its use
attribute gives the sort column (bib1.toml ``sort``; missing -> **116**; not
sortable -> **207**); other attribute types on it are ignored.  A query of sort
keys only -> **237**.

Scan (``apt_to_scan``): the attributes are checked as above (type 7 -> 113),
the use attribute gives the index (``cql.allRecords``/``cql.resultSetId`` ->
114), the term (escaped like a search term, not stripped, may be empty) is the
start point; relation, position, structure, truncation and completeness do
not change a scan, which always lists whole headings.

Sort (``sort_column_for``): a sort field string is a CQL index or sort name
(``title``, ``dc.date``, ``relevance``) or ``1=N``; attributes: the Bib-1 use
attribute (others ignored; none -> **116**) and its bib1.toml ``sort`` column.
Unknown names/columns -> **207**, unknown use values -> **114**.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from indexers.index_config import IndexConfig, config_path, load_index_config
from indexers.query_model import Boolean, Clause, Node, Prox, Query, QueryError, SortKey

from ..diagnostics import Bib1Diagnostic
from .model import (
    _INT_RE,
    APT,
    BIB1,
    MAX_BOOLEAN_OPERATORS,
    MAX_RPN_DEPTH,
    AttributeElement,
    ProxSpec,
    ResultSetRef,
    RPNNode,
    RPNOp,
    RPNQuery,
)

# ---------------------------------------------------------------------------
# The Bib-1 mapping configuration (config/bib1.toml)

BIB1_CONFIG_FILE = "bib1.toml"
_KINDS = frozenset({"text", "key", "year"})
_USE_KEYS = frozenset({"name", "index", "sort", "kind", "note"})


@dataclass(frozen=True)
class UseAttribute:
    value: int
    name: str
    index: str                  # canonical index name (indexes.toml)
    sort: str | None = None     # sort column, None: not sortable
    kind: str = "text"          # "text" | "key" | "year"


@dataclass(frozen=True)
class Bib1Mapping:
    use: Mapping[int, UseAttribute]
    use_strings: Mapping[str, str] = field(default_factory=dict)    # lower-cased string -> index name
    path: str = ""

    def kind_of(self, index: str) -> str:
        """The kind of the first use attribute mapped to ``index`` (else text)."""
        low = index.lower()
        for entry in self.use.values():
            if entry.index.lower() == low:
                return entry.kind
        return "text"


def bib1_config_path(path: str | os.PathLike | None = None) -> Path:
    """``path`` (a file, or a directory holding bib1.toml), else
    $UNIONCAT_CONFIG_DIR/bib1.toml, else the repository's config/bib1.toml."""
    return config_path(path, BIB1_CONFIG_FILE)


def _build_mapping(data: dict, path: str) -> Bib1Mapping:
    use: dict[int, UseAttribute] = {}
    for key, spec in data.get("use", {}).items():
        if not (key.isascii() and key.isdigit()):
            raise ValueError(f"{path}: [use] key {key!r} is not a use attribute number")
        if not isinstance(spec, dict):
            raise ValueError(f"{path}: use {key}: expected a table")
        unknown = set(spec) - _USE_KEYS
        if unknown:
            raise ValueError(f"{path}: use {key}: unknown keys {sorted(unknown)}")
        index = spec.get("index")
        if not isinstance(index, str) or not index:
            raise ValueError(f"{path}: use {key}: 'index' is required")
        sort = spec.get("sort")
        if sort is not None and (not isinstance(sort, str) or not sort):
            raise ValueError(f"{path}: use {key}: 'sort' must be a column name")
        kind = spec.get("kind", "text")
        if kind not in _KINDS:
            raise ValueError(f"{path}: use {key}: kind {kind!r} is not one of {sorted(_KINDS)}")
        use[int(key)] = UseAttribute(int(key), str(spec.get("name", key)), index, sort, kind)
    strings = {}
    for key, index in data.get("use_string", {}).items():
        if not isinstance(index, str) or not index:
            raise ValueError(f"{path}: use_string {key!r}: expected an index name")
        strings[key.lower()] = index
    unknown = set(data) - {"use", "use_string"}
    if unknown:
        raise ValueError(f"{path}: unknown tables {sorted(unknown)}")
    return Bib1Mapping(use, strings, path)


@lru_cache(maxsize=8)
def _load_mapping(resolved: str) -> Bib1Mapping:
    with open(resolved, "rb") as fh:
        return _build_mapping(tomllib.load(fh), resolved)


def load_bib1_mapping(path: str | os.PathLike | None = None) -> Bib1Mapping:
    """The Bib-1 use attribute mapping (cached per file)."""
    return _load_mapping(str(bib1_config_path(path).resolve()))


def validate_bib1_mapping(mapping: Bib1Mapping, config: IndexConfig) -> None:
    """Check the mapping against the index configuration: every index resolves,
    every sort column exists.  Raises ValueError listing all problems."""
    problems = []
    columns = set(config.sort.values())
    for entry in mapping.use.values():
        try:
            config.resolve(entry.index)
        except QueryError:
            problems.append(f"use {entry.value}: index {entry.index!r} is not configured")
        if entry.sort is not None and entry.sort not in columns:
            problems.append(f"use {entry.value}: sort column {entry.sort!r} is not in [sort]")
    for key, index in mapping.use_strings.items():
        if index.lower() not in _SPECIAL:
            try:
                config.resolve(index)
            except QueryError:
                problems.append(f"use_string {key!r}: index {index!r} is not configured")
    if problems:
        raise ValueError("; ".join(problems))


# ---------------------------------------------------------------------------
# RPN -> query model

ALL_RECORDS = "cql.allRecords"
RESULT_SET_ID = "cql.resultSetId"
_SPECIAL = {ALL_RECORDS.lower(): ALL_RECORDS, RESULT_SET_ID.lower(): RESULT_SET_ID}

_RELATION_OPS = {1: "<", 2: "<=", 4: ">=", 5: ">", 6: "<>"}
_PROX_COMPARISONS = {1: "<", 2: "<=", 3: "=", 4: ">=", 5: ">", 6: "<>"}
_RELATIONS = frozenset({1, 2, 3, 4, 5, 6, 102, 103, 104})
_POSITIONS = frozenset({1, 2, 3})
_STRUCTURES = frozenset({1, 2, 3, 4, 5, 6, 105, 106, 108, 109})
_TRUNCATIONS = frozenset({1, 2, 3, 100, 101, 104, 105, 106})
_COMPLETENESS = frozenset({1, 2, 3})
_WORD_LISTS = frozenset({6, 105, 106})
_NUMBERS = frozenset({4, 5, 109})
_SORT_TYPE = 7
_WORD_UNIT = 2
_MAX_DISTANCE = 999_999_999
_YEAR_RE = re.compile(r"-?[0-9]{1,18}")
_MASK_CHARS = "\\*?\""


def _literal(text: str) -> str:
    """A literal text in the query model's term syntax (masks and escapes escaped)."""
    if "\\" not in text and "*" not in text and "?" not in text and '"' not in text:
        return text                     # the usual term: nothing to escape
    return "".join("\\" + c if c in _MASK_CHARS else c for c in text)


def _truncate(text: str, truncation: int) -> str:
    """The term in the query model's syntax, with the masks the truncation
    attribute asks for."""
    if truncation == 100:
        return _literal(text)
    if truncation in (1, 2, 3):
        return ("*" if truncation in (2, 3) else "") + _literal(text) + ("*" if truncation in (1, 3) else "")
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if truncation == 101 and c == "#":
            out.append("*")
        elif truncation == 104 and c == "#":
            out.append("?")
        elif truncation == 104 and c == "?":
            if i + 1 < n and text[i + 1] in "0123456789":
                raise Bib1Diagnostic(120, f"{truncation}: ?n (at most n characters) is not supported")
            out.append("*")
        elif truncation in (105, 106) and c in "*!":
            out.append("*" if c == "*" else "?")
        else:
            out.append(_literal(c))
        i += 1
    term = "".join(out)
    if truncation == 105 and not _ends_with_mask(term):
        term += "*"
    return term


def _mask_positions(term: str) -> list[int]:
    """Positions of the unescaped masks of a term in the model's syntax."""
    if "*" not in term and "?" not in term:
        return []                       # the usual term: no mask at all
    out = []
    i = 0
    while i < len(term):
        c = term[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?":
            out.append(i)
        i += 1
    return out


def _ends_with_mask(term: str) -> bool:
    masks = _mask_positions(term)
    return bool(masks) and masks[-1] == len(term) - 1 and term[-1] == "*"


def _describe(value) -> str:
    return value if isinstance(value, str) else str(value)


class _Mapper:
    def __init__(self, config: IndexConfig, mapping: Bib1Mapping, attribute_set: str):
        self.config = config
        self.mapping = mapping
        self.attribute_set = attribute_set
        self.operators = 0
        self._server_choice: str | None = None

    @property
    def server_choice(self) -> str:
        """The index of a term without a use attribute (looked up when one is met)."""
        if self._server_choice is None:
            self._server_choice = self.config.resolve(None).name
        return self._server_choice

    # -- attributes ------------------------------------------------------------
    def collect(self, attributes, *, allow_sort: bool) -> dict[int, int | str]:
        found: dict[int, int | str] = {}
        for a in attributes:
            aset = a.attribute_set or self.attribute_set
            if aset != BIB1:
                raise Bib1Diagnostic(121, aset)
            if not (1 <= a.type <= 6 or (allow_sort and a.type == _SORT_TYPE)):
                raise Bib1Diagnostic(113, str(a.type))
            if isinstance(a.value, tuple):
                raise Bib1Diagnostic(246, str(a.type))
            if a.type in found:
                if found[a.type] != a.value or type(found[a.type]) is not type(a.value):
                    raise Bib1Diagnostic(123, f"type {a.type} given twice ({_describe(found[a.type])} and "
                                              f"{_describe(a.value)})")
                continue
            found[a.type] = a.value
        return found

    @staticmethod
    def value(attrs: dict, atype: int, default, allowed: frozenset, code: int):
        v = attrs.get(atype, default)
        if v is None:
            return None
        if isinstance(v, str) or v not in allowed:
            raise Bib1Diagnostic(code, _describe(v))
        return v

    def checked(self, attrs: dict) -> tuple[int, int, int | None, int, int]:
        return (self.value(attrs, 2, 3, _RELATIONS, 117),
                self.value(attrs, 3, 3, _POSITIONS, 119),
                self.value(attrs, 4, None, _STRUCTURES, 118),
                self.value(attrs, 5, 100, _TRUNCATIONS, 120),
                self.value(attrs, 6, 1, _COMPLETENESS, 122))

    def use(self, value) -> tuple[str, str, bool]:
        """(canonical index, kind, special) for a use attribute value."""
        if value is None:
            return self.server_choice, "text", False
        if isinstance(value, str):
            name = self.mapping.use_strings.get(value.lower(), value)
            try:
                index = self.config.resolve(name).name
            except QueryError:
                for cand in [name.lower()] + self.config.candidates(name):
                    if cand in _SPECIAL:
                        return _SPECIAL[cand], "text", True
                raise Bib1Diagnostic(114, value) from None
            return index, self.mapping.kind_of(index), False
        entry = self.mapping.use.get(value)
        if entry is None:
            raise Bib1Diagnostic(114, str(value))
        try:
            index = self.config.resolve(entry.index).name
        except QueryError:
            raise Bib1Diagnostic(114, str(value)) from None
        return index, entry.kind, False

    def sort_column(self, value) -> str:
        if value is None:
            raise Bib1Diagnostic(116, "sort key")
        if isinstance(value, str):
            name = self.mapping.use_strings.get(value.lower(), value)
            try:
                return self.config.sort_column(name)
            except QueryError as err:
                if err.code == 16:
                    raise Bib1Diagnostic(114, value) from None
                raise Bib1Diagnostic(207, value) from None
        entry = self.mapping.use.get(value)
        if entry is None:
            raise Bib1Diagnostic(114, str(value))
        if entry.sort is None or entry.sort not in self.config.sort.values():
            raise Bib1Diagnostic(207, f"use attribute {value} ({entry.name}) cannot be sorted on")
        return entry.sort

    # -- tree ------------------------------------------------------------------
    def split_sort(self, node, depth: int) -> tuple[RPNNode | None, list[tuple[int, SortKey]]]:
        """Remove embedded sort operands (type 7); return the rest and the keys."""
        if depth > MAX_RPN_DEPTH:
            raise Bib1Diagnostic(108, f"query nested deeper than {MAX_RPN_DEPTH} levels")
        if isinstance(node, APT):
            if any(a.type == _SORT_TYPE for a in node.attributes):
                return None, [self.sort_key(node)]
            return node, []
        if isinstance(node, RPNOp):
            left, lkeys = self.split_sort(node.left, depth + 1)
            right, rkeys = self.split_sort(node.right, depth + 1)
            if not (lkeys or rkeys):
                return node, []
            keys = lkeys + rkeys
            if left is None or right is None:       # a sort operand is a direct child
                if node.op != "or":
                    raise Bib1Diagnostic(237, "an embedded sort key (type 7) must be @or'ed with the query")
                return (right if left is None else left), keys
            return RPNOp(node.op, left, right, node.prox), keys
        return node, []

    def sort_key(self, apt: APT) -> tuple[int, SortKey]:
        attrs = self.collect(apt.attributes, allow_sort=True)
        order = attrs[_SORT_TYPE]
        if order not in (1, 2) or isinstance(order, str):
            raise Bib1Diagnostic(237, f"sort attribute 7={_describe(order)} (1 ascending, 2 descending)")
        term = apt.term
        if apt.term_type in ("general", "characterString") and isinstance(term, str) and \
                _INT_RE.fullmatch(term.strip()):
            level = int(term.strip())
        elif apt.term_type == "numeric" and isinstance(term, int):
            level = term
        else:
            raise Bib1Diagnostic(237, f"the term of a sort key is its level (0, 1 ...), not {term!r}")
        column = self.sort_column(attrs.get(1))
        return level, SortKey(column, order == 1)

    def node(self, node, depth: int) -> Node:
        if depth > MAX_RPN_DEPTH:
            raise Bib1Diagnostic(108, f"query nested deeper than {MAX_RPN_DEPTH} levels")
        if isinstance(node, RPNOp):
            self.operators += 1
            if self.operators > MAX_BOOLEAN_OPERATORS:
                raise Bib1Diagnostic(6, str(MAX_BOOLEAN_OPERATORS))
            if node.op == "prox":
                for side in (node.left, node.right):
                    if isinstance(side, ResultSetRef):
                        raise Bib1Diagnostic(129, side.name)
            left = self.node(node.left, depth + 1)
            right = self.node(node.right, depth + 1)
            if node.op in ("and", "or"):
                return Boolean(node.op, left, right)
            if node.op == "and-not":
                return Boolean("not", left, right)
            if node.op == "prox":
                return self.prox(node.prox, left, right)
            raise Bib1Diagnostic(110, str(node.op))
        if isinstance(node, APT):
            return self.apt(node)
        if isinstance(node, ResultSetRef):
            if node.attributes:
                raise Bib1Diagnostic(245, node.name)
            if not node.name:
                raise Bib1Diagnostic(128, "empty result set name")
            return Clause(RESULT_SET_ID, "=", node.name)
        raise Bib1Diagnostic(108, f"not an RPN operand: {type(node).__name__}")

    def prox(self, p: ProxSpec | None, left: Node, right: Node) -> Prox:
        if p is None:
            raise Bib1Diagnostic(108, "prox operator without proximity parameters")
        if p.exclusion:
            raise Bib1Diagnostic(131, "exclusion")
        if p.relation not in _PROX_COMPARISONS:
            raise Bib1Diagnostic(131, str(p.relation))
        if p.unit_private:
            raise Bib1Diagnostic(132, f"private {p.unit}")
        if p.unit != _WORD_UNIT:
            raise Bib1Diagnostic(132, str(p.unit))
        if not 0 <= p.distance <= _MAX_DISTANCE:
            raise Bib1Diagnostic(202, str(p.distance))
        return Prox(left, right, distance=p.distance, comparison=_PROX_COMPARISONS[p.relation], unit="word",
                    ordered=bool(p.ordered))

    def apt(self, apt: APT) -> Node:
        attrs = self.collect(apt.attributes, allow_sort=False)
        relation, position, structure, truncation, completeness = self.checked(attrs)
        index, kind, special = self.use(attrs.get(1))
        text = _term_text(apt)
        if special:
            if index == ALL_RECORDS:
                if relation not in (3, 102, 103):
                    raise Bib1Diagnostic(123, f"{ALL_RECORDS} with relation {relation}")
                return Clause(ALL_RECORDS, "=", "1")
            if relation not in (3, 102):
                raise Bib1Diagnostic(123, f"{RESULT_SET_ID} with relation {relation}")
            if not text:
                raise Bib1Diagnostic(128, "empty result set name")
            return Clause(RESULT_SET_ID, "=", text)
        if relation == 103:
            if 1 not in attrs:
                return Clause(ALL_RECORDS, "=", "1")
            return Clause(index, "=", "*")
        if not text.strip():
            raise Bib1Diagnostic(125, "empty term")
        term = _truncate(text.strip(), truncation)
        masked = bool(_mask_positions(term))
        if relation in _RELATION_OPS or relation == 104:
            if structure in _WORD_LISTS:
                raise Bib1Diagnostic(123, f"relation {relation} with structure {structure}")
            if masked:
                raise Bib1Diagnostic(123, f"relation {relation} with truncation {truncation}")
            if structure in _NUMBERS:
                parts = text.split() if relation == 104 else [text.strip()]
                for part in parts:
                    if not _YEAR_RE.fullmatch(part):
                        raise Bib1Diagnostic(126, text)
            return Clause(index, "within" if relation == 104 else _RELATION_OPS[relation], term)
        # equality: relation 3 or 102
        if structure in _NUMBERS:
            if not masked and not _YEAR_RE.fullmatch(text.strip()):
                raise Bib1Diagnostic(126, text)
            return Clause(index, "=", term)
        if structure in _WORD_LISTS:
            if attrs.get(3) in (1, 2) or completeness != 1:
                raise Bib1Diagnostic(123, f"structure {structure} with position {position} and "
                                          f"completeness {completeness}")
            return Clause(index, "all" if structure == 6 else "any", term)
        if kind == "year":
            return Clause(index, "=", term)
        if completeness in (2, 3) or structure in (3, 108):
            return Clause(index, "==", term)
        if kind == "text" and position in (1, 2):
            if _ends_with_mask(term):
                return Clause(index, "==", term)
            return Boolean("or", Clause(index, "==", term), Clause(index, "==", term + " *"))
        if kind == "key":
            return Clause(index, "=", term)
        if structure == 1:
            return Clause(index, "adj", term)
        if structure == 2 and len(text.split()) > 1:
            return Clause(index, "all", term)
        return Clause(index, "=", term)


def _term_text(apt: APT) -> str:
    kind, term = apt.term_type, apt.term
    if kind in ("general", "characterString") and isinstance(term, str):
        return term
    if kind == "numeric" and isinstance(term, int):
        return str(term)
    raise Bib1Diagnostic(229, str(kind))


def _defaults(config: IndexConfig | None, mapping: Bib1Mapping | None) -> tuple[IndexConfig, Bib1Mapping]:
    return (config if config is not None else load_index_config(),
            mapping if mapping is not None else load_bib1_mapping())


def rpn_to_query(q: RPNQuery, config: IndexConfig | None = None, mapping: Bib1Mapping | None = None) -> Query:
    """The query model for a type-1/type-101 query (Bib-1 semantics: see the
    module docstring).  Raises Bib1Diagnostic."""
    config, mapping = _defaults(config, mapping)
    if not isinstance(q, RPNQuery):
        raise TypeError(f"not an RPNQuery: {q!r}")
    if q.attribute_set != BIB1:
        raise Bib1Diagnostic(121, q.attribute_set)
    m = _Mapper(config, mapping, q.attribute_set)
    root, keys = m.split_sort(q.root, 1)
    if root is None:
        raise Bib1Diagnostic(237, "the query has only embedded sort keys")
    node = m.node(root, 1)
    keys.sort(key=lambda k: k[0])       # stable: keys of one level keep their order
    return Query(node, tuple(k[1] for k in keys), ranked=_asks_relevance(q.root))


def _asks_relevance(node) -> bool:
    """True if any term carries relation 102 (relevance)."""
    if isinstance(node, APT):
        return any(a.type == 2 and a.value == 102 for a in node.attributes)
    if isinstance(node, RPNOp):
        return _asks_relevance(node.left) or _asks_relevance(node.right)
    return False


def apt_to_scan(apt: APT, config: IndexConfig | None = None, mapping: Bib1Mapping | None = None,
                attribute_set: str | None = BIB1) -> tuple[str, str]:
    """(canonical index, start term in the model's escaped syntax) for a Scan
    request's term.  ``attribute_set`` is the request's (None: Bib-1)."""
    config, mapping = _defaults(config, mapping)
    if not isinstance(apt, APT):
        raise TypeError(f"not an APT: {apt!r}")
    m = _Mapper(config, mapping, attribute_set or BIB1)
    attrs = m.collect(apt.attributes, allow_sort=False)
    m.checked(attrs)
    index, _kind, special = m.use(attrs.get(1))
    if special:
        raise Bib1Diagnostic(114, _describe(attrs.get(1)))
    return index, _literal(_term_text(apt))


def sort_column_for(spec: str | Iterable[AttributeElement], config: IndexConfig | None = None,
                    mapping: Bib1Mapping | None = None) -> str:
    """The sort column for a Z39.50 sort key: a sortField string (a CQL index or
    sort name, or ``1=N``) or sortAttributes (Bib-1; only the use attribute
    counts).  Raises Bib1Diagnostic."""
    config, mapping = _defaults(config, mapping)
    m = _Mapper(config, mapping, BIB1)
    if isinstance(spec, str):
        text = spec.strip()
        use = re.fullmatch(r"1\s*=\s*([0-9]{1,9})", text)
        if use:
            return m.sort_column(int(use.group(1)))
        if not text:
            raise Bib1Diagnostic(207, "empty sort field")
        try:
            return config.sort_column(text)
        except QueryError:
            raise Bib1Diagnostic(207, spec) from None
    uses = []
    for a in spec:
        if not isinstance(a, AttributeElement):
            raise TypeError(f"not an AttributeElement: {a!r}")
        if (a.attribute_set or BIB1) != BIB1:
            raise Bib1Diagnostic(121, a.attribute_set)
        if not 1 <= a.type <= _SORT_TYPE:
            raise Bib1Diagnostic(113, str(a.type))
        if a.type == 1:
            if isinstance(a.value, tuple):
                raise Bib1Diagnostic(246, "1")
            uses.append(a.value)
    if not uses:
        raise Bib1Diagnostic(116, "sort key")
    if any(u != uses[0] or type(u) is not type(uses[0]) for u in uses[1:]):
        raise Bib1Diagnostic(123, "type 1 given twice")
    return m.sort_column(uses[0])
