"""CQL 1.2 (Contextual Query Language) parser producing the query model.

    parse_cql(text, config=None) -> indexers.query_model.Query
    to_cql(query, config=None)   -> str   (canonical CQL; parse_cql(to_cql(q)) == q)

A hand-written tokenizer and a recursive-descent parser for the whole CQL 1.2
grammar::

    sortedQuery      ::= prefixAssignment sortedQuery | scopedClause ['sortby' sortSpec]
    cqlQuery         ::= prefixAssignment cqlQuery | scopedClause
    prefixAssignment ::= '>' prefix '=' uri | '>' uri
    scopedClause     ::= scopedClause booleanGroup searchClause | searchClause
    booleanGroup     ::= boolean [modifierList]          boolean ::= and | or | not | prox
    searchClause     ::= '(' cqlQuery ')' | index relation searchTerm | searchTerm
    relation         ::= comparitor [modifierList]
    comparitor       ::= '=' | '==' | '<>' | '<' | '>' | '<=' | '>=' | namedComparitor
    modifierList     ::= ('/' modifierName [comparitorSymbol modifierValue])+
    sortSpec         ::= (index [modifierList])+

Boolean operators (case-insensitive) have equal precedence and associate to the
left: ``a or b and c`` is ``(a or b) and c``.  The keywords are only keywords
where the grammar expects an operator; as a term they are ordinary words
(``title = and``).  Any word that follows an index-position word is a named
relation (``title any fish``); an unknown one is diagnostic 19.

Terms: ``Clause.term`` keeps the CQL escapes exactly as written (``\\*``,
``\\?``, ``\\"``, ``\\\\`` ...) and loses only the surrounding quotes; the
normalizer interprets the escapes and the masking characters.  A backslash
escapes the following character in unquoted words as well as in quoted strings
(``a\\ b`` is one word), so an unquoted and a quoted spelling of a term always
mean the same thing.

Prefix maps (``> dc = "info:srw/cql-context-set/1/dc-v1.1"``, or the default set
``> "uri"``) are scoped: one at the start of the query covers the whole query
including ``sortby``; one at the start of a parenthesized subquery covers that
subquery only.  Index names are resolved through
:class:`indexers.index_config.IndexConfig` with the prefix map in scope, and
``Clause.index`` is the canonical name (``dc.title``).

Relations: ``= == <> < > <= >=`` as written; named relations (any case, bare or
``cql.``-prefixed) ``adj all any within exact`` as their lower-case name, and the
CQL 1.1 ``scr`` ("server choice relation") as ``=``.  Bare terms are
``Clause(server choice index, "=", term)``.

Special indexes, unless the configuration defines them as ordinary indexes:
``cql.allRecords = <anything>`` -> ``Clause("cql.allRecords", "=", "1")`` and
``cql.resultSetId = id`` -> ``Clause("cql.resultSetId", "=", id)``.

Sort keys: ``sortby index[/modifiers] ...`` gives ``SortKey(index=<sort column>)``,
the column being ``title``, ``creator``, ``date`` (from the index's ``sort`` in
indexes.toml) or ``relevance`` (``cql.relevance``).  Sort modifiers (``sort.``
prefix optional): ``ascending`` (default), ``descending``, ``missingHigh``
(default, ``missing_value="highValue"``), ``missingLow`` (``"lowValue"``),
``missingOmit`` (``"omit"``); ``ignoreCase``, ``respectCase`` and
``ignoreAccents`` are accepted and not recorded (sorting is on normalized text).

Diagnostics (SRU diagnostic list, info:srw/diagnostic/1/N) -- raising
:class:`QueryError` is the only way this module fails:

====  ==============================================  =============================================
code  list entry                                      raised for
====  ==============================================  =============================================
10    Query syntax error                              any syntax error, an empty query, nesting
                                                      deeper than MAX_NESTING (details give the
                                                      0-based character position)
15    Unsupported context set                         a query prefix bound to an unknown set URI
16    Unsupported index                               an index (also a sort key) not configured
19    Unsupported relation                            ``encloses``, unknown named relations
20    Unsupported relation modifier                   every relation modifier except ignoreCase,
                                                      respectCase (kept) and masked, relevant,
                                                      word, ignoreAccents (accepted no-ops)
21    Unsupported combination of relation modifers    ignoreCase together with respectCase
22    Unsupported combination of relation and index   cql.allRecords / cql.resultSetId with a
                                                      relation other than ``=``
27    Empty term unsupported                          ``""`` or a term of blanks only
38    Too many boolean operators in query             more than MAX_BOOLEAN_OPERATORS
40    Unsupported proximity relation                  ``distance`` compared with ``==``
41    Unsupported proximity distance                  distance not a non-negative integer
42    Unsupported proximity unit                      any unit but ``word``
43    Unsupported proximity ordering                  ``ordered``/``unordered`` given a value
44    Unsupported combination of proximity modifiers  a proximity modifier given twice, or both
                                                      ordered and unordered
46    Unsupported boolean modifier                    any modifier on and/or/not; an unknown one
                                                      on prox
80    Sort not supported                              sort key on an index that has no sort
                                                      column; unknown sort modifier
82    Unsupported sort sequence                       sort.locale, sort.unicodeCollation,
                                                      sort.respectAccents
90    Unsupported direction                           direction modifier with a value, or both
                                                      ascending and descending
91    Unsupported case                                sort.ignoreCase/respectCase with a value
92    Unsupported missing value action                sort.missingFail, sort.missingValue=...
====  ==============================================  =============================================

Syntax errors take precedence: the whole query is parsed before any index,
relation or modifier is checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from indexers.index_config import DEFAULT_PREFIX, RELEVANCE, IndexConfig, load_index_config
from indexers.query_model import (
    COMPARISONS,
    Boolean,
    Clause,
    Modifier,
    Node,
    Prox,
    Query,
    QueryError,
    SortKey,
)

__all__ = ["parse_cql", "to_cql", "MAX_NESTING", "MAX_BOOLEAN_OPERATORS"]

MAX_NESTING = 200  # levels of parentheses
MAX_BOOLEAN_OPERATORS = 250  # bounds the depth of the returned tree

ALL_RECORDS = "cql.allRecords"
RESULT_SET_ID = "cql.resultSetId"
CQL_SET_URI = "info:srw/cql-context-set/1/cql-v1.2"
SORT_SET_URI = "info:srw/cql-context-set/1/sort-v1.0"

BOOLEANS = ("and", "or", "not", "prox")
KEYWORDS = frozenset(BOOLEANS + ("sortby",))
SYMBOLS = ("==", "<>", "<=", ">=", "=", "<", ">")
_STOP = frozenset('()=<>/"')

# Named relations of the cql context set -> relation of the query model.
_NAMED_RELATIONS = {
    "adj": "adj",
    "all": "all",
    "any": "any",
    "within": "within",
    "exact": "exact",  # CQL 1.1; executed like ==
    "scr": "=",  # "server choice relation": the server chooses, and it chooses =
}
_UNSUPPORTED_RELATIONS = frozenset({"encloses"})

# Relation modifiers kept in Clause.modifiers (query_model.RELATION_MODIFIERS) ...
_KEPT_MODIFIERS = {"ignorecase": "ignorecase", "respectcase": "respectcase"}
# ... and those accepted as no-ops because they name what is always done:
# masking is on by default, ranking is always by relevance, '=' on text is word
# matching, and Latin diacritics are always folded.
_NOOP_MODIFIERS = frozenset({"masked", "relevant", "word", "ignoreaccents"})

_MISSING = {"missinghigh": "highValue", "missinglow": "lowValue", "missingomit": "omit"}
_SORT_CASE = frozenset({"ignorecase", "respectcase", "ignoreaccents"})
_SORT_SEQUENCE = frozenset({"locale", "unicodecollation", "respectaccents"})


# --------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class _Tok:
    kind: str  # "(" ")" "/" "REL" "WORD" "STR" "EOF"
    value: str  # for STR: the text between the quotes, escapes untouched
    pos: int

    @property
    def is_term(self) -> bool:
        return self.kind in ("WORD", "STR")

    def keyword(self) -> str | None:
        if self.kind == "WORD":
            low = self.value.lower()
            if low in KEYWORDS:
                return low
        return None

    def describe(self) -> str:
        if self.kind == "EOF":
            return f"end of query at position {self.pos}"
        if self.kind == "STR":
            return f'"{self.value}" at position {self.pos}'
        return f"'{self.value}' at position {self.pos}"


def _syntax(msg: str) -> QueryError:
    return QueryError(10, msg, f"query syntax error: {msg}")


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()/":
            toks.append(_Tok(c, c, i))
            i += 1
        elif c in "=<>":
            two = text[i : i + 2]
            sym = two if two in SYMBOLS else c
            toks.append(_Tok("REL", sym, i))
            i += len(sym)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise _syntax(f"unterminated quoted string starting at position {i}")
            toks.append(_Tok("STR", text[i + 1 : j], i))
            i = j + 1
        else:
            j = i
            while j < n and not (text[j].isspace() or text[j] in _STOP):
                if text[j] == "\\":
                    if j + 1 >= n:
                        raise _syntax(f"backslash at end of query (position {j})")
                    j += 2
                else:
                    j += 1
            toks.append(_Tok("WORD", text[i:j], i))
            i = j
    toks.append(_Tok("EOF", "", n))
    return toks


def _unescape(s: str) -> str:
    """Drop CQL escapes, for names (indexes, prefixes, URIs, modifier values)."""
    if "\\" not in s:
        return s
    out = []
    it = iter(s)
    for ch in it:
        if ch == "\\":
            ch = next(it, "")
        out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------- raw syntax tree
@dataclass
class _RawMod:
    name: str  # unescaped, as written
    comparison: str | None
    value: str | None
    pos: int

    def written(self) -> str:
        if self.comparison is None:
            return self.name
        return f"{self.name}{self.comparison}{self.value}"


@dataclass
class _RawClause:
    index: _Tok | None  # None: bare term (server choice)
    relation: _Tok | None
    mods: list[_RawMod]
    term: _Tok
    prefixes: Mapping[str, str]


@dataclass
class _RawBool:
    op: str
    mods: list[_RawMod]
    left: object
    right: object
    pos: int
    prefixes: Mapping[str, str]


@dataclass
class _RawQuery:
    root: object
    sort: list[tuple[_Tok, list[_RawMod]]] = field(default_factory=list)
    prefixes: Mapping[str, str] = field(default_factory=dict)


class _Parser:
    """Phase 1: syntax only.  Builds the raw tree; raises only diagnostic 10."""

    def __init__(self, text: str):
        self.toks = _tokenize(text)
        self.i = 0
        self.booleans = 0

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def expect_term(self, what: str) -> _Tok:
        tok = self.peek()
        if not tok.is_term:
            raise _syntax(f"expected {what}, found {tok.describe()}")
        return self.take()

    # sortedQuery
    def parse(self) -> _RawQuery:
        if self.peek().kind == "EOF":
            raise _syntax("empty query")
        prefixes = self.prefix_assignments({})
        root = self.scoped(prefixes, 0)
        sort: list[tuple[_Tok, list[_RawMod]]] = []
        tok = self.peek()
        if tok.keyword() == "sortby":
            self.take()
            while self.peek().is_term:
                key = self.take()
                sort.append((key, self.modifiers()))
            if not sort:
                raise _syntax(f"expected a sort key after 'sortby', found {self.peek().describe()}")
            tok = self.peek()
        if tok.kind != "EOF":
            if tok.kind == ")":
                raise _syntax(f"unbalanced ')' at position {tok.pos}")
            raise _syntax(f"expected a boolean operator, 'sortby' or end of query, found {tok.describe()}")
        return _RawQuery(root, sort, prefixes)

    def prefix_assignments(self, prefixes: Mapping[str, str]) -> Mapping[str, str]:
        scoped: dict[str, str] | None = None
        while self.peek().kind == "REL" and self.peek().value == ">":
            gt = self.take()
            first = self.expect_term("a context set prefix or URI after '>'")
            if self.peek().kind == "REL" and self.peek().value == "=":
                self.take()
                uri = self.expect_term("a context set URI")
                prefix = _unescape(first.value).lower()
                if not prefix or "." in prefix:
                    raise _syntax(f"invalid context set prefix {first.describe()}")
                value = _unescape(uri.value)
            else:
                prefix, value = DEFAULT_PREFIX, _unescape(first.value)
            if not value.strip():
                raise _syntax(f"empty context set URI in the prefix assignment at position {gt.pos}")
            if scoped is None:
                scoped = dict(prefixes)
            scoped[prefix] = value
        return prefixes if scoped is None else scoped

    # cqlQuery (after any prefix assignments) / scopedClause
    def scoped(self, prefixes: Mapping[str, str], depth: int):
        left = self.search_clause(prefixes, depth)
        while True:
            tok = self.peek()
            op = tok.keyword()
            if op is None or op == "sortby":
                return left
            self.take()
            mods = self.modifiers()
            self.booleans += 1
            right = self.search_clause(prefixes, depth)
            left = _RawBool(op, mods, left, right, tok.pos, prefixes)

    def search_clause(self, prefixes: Mapping[str, str], depth: int):
        tok = self.peek()
        if tok.kind == "(":
            if depth >= MAX_NESTING:
                raise _syntax(
                    f"query too deeply nested (more than {MAX_NESTING} levels of parentheses, "
                    f"position {tok.pos})"
                )
            self.take()
            inner = self.scoped(self.prefix_assignments(prefixes), depth + 1)
            close = self.peek()
            if close.kind != ")":
                raise _syntax(
                    f"expected ')' to close '(' at position {tok.pos}, found {close.describe()}"
                )
            self.take()
            return inner
        if tok.is_term:
            nxt = self.peek(1)
            if nxt.kind == "REL" or nxt.kind == "STR" or (
                nxt.kind == "WORD" and nxt.keyword() is None
            ):
                index = self.take()
                relation = self.take()
                mods = self.modifiers()
                term = self.expect_term(f"a search term after the relation at position {relation.pos}")
                return _RawClause(index, relation, mods, term, prefixes)
            self.take()
            return _RawClause(None, None, [], tok, prefixes)
        if tok.kind == ")":
            raise _syntax(f"expected a search term, found unbalanced ')' at position {tok.pos}")
        raise _syntax(f"expected a search term or '(', found {tok.describe()}")

    def modifiers(self) -> list[_RawMod]:
        mods: list[_RawMod] = []
        while self.peek().kind == "/":
            slash = self.take()
            name = self.expect_term(f"a modifier name after '/' at position {slash.pos}")
            if self.peek().kind == "REL":
                comparison = self.take().value
                value = self.expect_term(f"a value for modifier '{_unescape(name.value)}'")
                mods.append(_RawMod(_unescape(name.value), comparison, _unescape(value.value), slash.pos))
            else:
                mods.append(_RawMod(_unescape(name.value), None, None, slash.pos))
        return mods


# ------------------------------------------------------------ semantic conversion
class _Builder:
    """Phase 2: resolve indexes, relations and modifiers into the query model."""

    def __init__(self, config: IndexConfig):
        self.config = config
        self.cql_uri = config.sets.get("cql", CQL_SET_URI)
        self.server_choice = config.resolve(None).name

    def split(self, name: str, prefixes: Mapping[str, str], default: str) -> tuple[str | None, str]:
        """(context set, lower-cased local name) of a relation or modifier name.
        The set is "cql", "sort", another configured set name, or None (unknown)."""
        prefix, dot, local = name.partition(".")
        if not dot:
            return default, name.lower()
        prefix = prefix.lower()
        if prefix and prefix in prefixes:
            uri = prefixes[prefix].strip()
        elif prefix == "sort":
            return "sort", local.lower()
        elif prefix in self.config.sets:
            uri = self.config.sets[prefix]
        else:
            return None, local.lower()
        if uri == SORT_SET_URI:
            return "sort", local.lower()
        if uri == self.cql_uri:
            return "cql", local.lower()
        return self.config.set_for_uri(uri), local.lower()

    def node(self, raw) -> Node:
        if isinstance(raw, _RawClause):
            return self.clause(raw)
        left = self.node(raw.left)
        right = self.node(raw.right)
        if raw.op == "prox":
            return self.prox(raw, left, right)
        if raw.mods:
            raise QueryError(46, raw.mods[0].written(), f"boolean '{raw.op}' takes no modifiers")
        return Boolean(raw.op, left, right)

    def index_name(self, tok: _Tok, prefixes: Mapping[str, str]) -> tuple[str, bool]:
        """(canonical name, is it one of the unconfigured special indexes)"""
        name = _unescape(tok.value) if tok.kind == "STR" else tok.value
        try:
            return self.config.resolve(name, prefixes).name, False
        except QueryError as err:
            if err.code != 16:
                raise
            cands = self.config.candidates(name, prefixes)
            for special in (ALL_RECORDS, RESULT_SET_ID):
                if special.lower() in cands:
                    return special, True
            raise

    def relation(self, tok: _Tok, prefixes: Mapping[str, str]) -> str:
        if tok.kind == "REL":
            return tok.value
        written = _unescape(tok.value) if tok.kind == "STR" else tok.value
        set_name, local = self.split(written, prefixes, "cql")
        if set_name == "cql" and local in _NAMED_RELATIONS:
            return _NAMED_RELATIONS[local]
        if set_name == "cql" and local in _UNSUPPORTED_RELATIONS:
            raise QueryError(19, local)
        raise QueryError(19, written)

    def relation_modifiers(self, mods: list[_RawMod], prefixes) -> tuple[Modifier, ...]:
        kept: list[Modifier] = []
        for m in mods:
            set_name, local = self.split(m.name, prefixes, "cql")
            if set_name != "cql" or m.comparison is not None:
                raise QueryError(20, m.written())
            if local in _KEPT_MODIFIERS:
                mod = Modifier(_KEPT_MODIFIERS[local])
                if mod not in kept:
                    kept.append(mod)
            elif local not in _NOOP_MODIFIERS:
                raise QueryError(20, m.written())
        if len(kept) > 1:
            raise QueryError(21, "/".join(k.name for k in kept))
        return tuple(kept)

    def clause(self, raw: _RawClause) -> Clause:
        term = raw.term.value
        if raw.index is None:
            if not term.strip():
                raise QueryError(27, "", "empty term unsupported")
            return Clause(self.server_choice, "=", term)
        assert raw.relation is not None     # the parser reads an index with its relation
        index, special = self.index_name(raw.index, raw.prefixes)
        relation = self.relation(raw.relation, raw.prefixes)
        if special:
            if relation != "=":
                raise QueryError(22, f"{index} {relation}")
            if raw.mods:
                raise QueryError(20, raw.mods[0].written())
            if index == ALL_RECORDS:
                return Clause(ALL_RECORDS, "=", "1")
        modifiers = self.relation_modifiers(raw.mods, raw.prefixes)
        if not term.strip():
            raise QueryError(27, "", "empty term unsupported")
        return Clause(index, relation, term, modifiers)

    def prox(self, raw: _RawBool, left: Node, right: Node) -> Prox:
        distance: int | None = None
        comparison = "<="
        unit: str | None = None
        ordered: bool | None = None
        for m in raw.mods:
            set_name, local = self.split(m.name, raw.prefixes, "cql")
            if set_name != "cql":
                raise QueryError(46, m.written())
            if local == "distance":
                if distance is not None:
                    raise QueryError(44, "distance given twice")
                if m.comparison is None:
                    raise QueryError(41, m.written())
                if m.comparison not in COMPARISONS:
                    raise QueryError(40, m.comparison)
                value = (m.value or "").strip()
                if not (value.isascii() and value.isdigit()) or len(value) > 9:
                    raise QueryError(41, value)
                distance, comparison = int(value), m.comparison
            elif local == "unit":
                if unit is not None:
                    raise QueryError(44, "unit given twice")
                if m.comparison != "=":
                    raise QueryError(42, m.written())
                unit = (m.value or "").strip().lower()
                if unit != "word":
                    raise QueryError(42, m.value or "")
            elif local in ("ordered", "unordered"):
                if m.comparison is not None:
                    raise QueryError(43, m.written())
                want = local == "ordered"
                if ordered is not None and ordered != want:
                    raise QueryError(44, "ordered/unordered")
                ordered = want
            else:
                raise QueryError(46, m.written())
        return Prox(
            left,
            right,
            distance=1 if distance is None else distance,
            comparison=comparison,
            unit=unit or "word",
            ordered=bool(ordered),
        )

    def sort_key(self, tok: _Tok, mods: list[_RawMod], prefixes) -> SortKey:
        name = _unescape(tok.value) if tok.kind == "STR" else tok.value
        column = self.config.sort_column(name, prefixes)
        ascending: bool | None = None
        missing: str | None = None
        case: str | None = None
        for m in mods:
            set_name, local = self.split(m.name, prefixes, "sort")
            if set_name != "sort":
                raise QueryError(80, m.written(), f"unsupported sort modifier {m.written()}")
            if local in ("ascending", "descending"):
                want = local == "ascending"
                if m.comparison is not None or (ascending is not None and ascending != want):
                    raise QueryError(90, m.written())
                ascending = want
            elif local in _SORT_CASE:
                if m.comparison is not None:
                    raise QueryError(91, m.written())
                if local != "ignoreaccents":
                    if case is not None and case != local:
                        raise QueryError(91, "ignoreCase/respectCase")
                    case = local
            elif local in _MISSING:
                value = _MISSING[local]
                if m.comparison is not None or (missing is not None and missing != value):
                    raise QueryError(92, m.written())
                missing = value
            elif local in ("missingfail", "missingvalue"):
                raise QueryError(92, m.written())
            elif local in _SORT_SEQUENCE:
                raise QueryError(82, m.written())
            else:
                raise QueryError(80, m.written(), f"unsupported sort modifier {m.written()}")
        return SortKey(
            index=column,
            ascending=True if ascending is None else ascending,
            missing_value=missing or "highValue",
        )


def parse_cql(text: str, config: IndexConfig | None = None) -> Query:
    """Parse a CQL 1.2 query into the query model (see the module docstring)."""
    if not isinstance(text, str):
        raise QueryError(10, "query is not text")
    builder = _Builder(config if config is not None else load_index_config())
    try:
        parser = _Parser(text)
        raw = parser.parse()
        if parser.booleans > MAX_BOOLEAN_OPERATORS:
            raise QueryError(38, str(MAX_BOOLEAN_OPERATORS), "too many boolean operators in query")
        root = builder.node(raw.root)
        sort = tuple(builder.sort_key(tok, mods, raw.prefixes) for tok, mods in raw.sort)
    except RecursionError:
        # MAX_NESTING keeps the parser well inside Python's limit; this only
        # happens when the caller's own stack is already nearly exhausted.
        raise QueryError(10, "query too deeply nested") from None
    return Query(root, sort)


# ----------------------------------------------------------------- serialization
def _quote_term(term: str) -> str:
    """A term in CQL: bare when it can be, else quoted.  The term is in escaped
    form (as in Clause.term); a stray '"' is escaped and a dangling final
    backslash doubled so that the output always parses."""
    if term and term.lower() not in KEYWORDS and not any(
        c.isspace() or c in _STOP for c in term
    ) and not _dangling_backslash(term):
        return term
    out = []
    i = 0
    while i < len(term):
        c = term[i]
        if c == "\\":
            nxt = term[i + 1 : i + 2]
            out.append("\\" + (nxt or "\\"))
            i += 2
        elif c == '"':
            out.append('\\"')
            i += 1
        else:
            out.append(c)
            i += 1
    return '"' + "".join(out) + '"'


def _dangling_backslash(term: str) -> bool:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            if i + 1 >= len(term):
                return True
            i += 2
        else:
            i += 1
    return False


_MODIFIER_SPELLING = {"ignorecase": "ignoreCase", "respectcase": "respectCase"}


def _modifiers_cql(mods) -> str:
    out = []
    for m in mods:
        name = _MODIFIER_SPELLING.get(m.name, m.name)
        if m.comparison is None:
            out.append(f"/{name}")
        else:
            out.append(f"/{name}{m.comparison}{_quote_term(m.value or '')}")
    return "".join(out)


def _node_cql(node: Node, server_choice: str) -> str:
    if isinstance(node, Clause):
        if node.index == server_choice and node.relation == "=" and not node.modifiers:
            return _quote_term(node.term)
        rel = node.relation + _modifiers_cql(node.modifiers)
        return f"{node.index} {rel} {_quote_term(node.term)}"
    left = _node_cql(node.left, server_choice)
    right = _node_cql(node.right, server_choice)
    if isinstance(node.right, (Boolean, Prox)):
        right = f"({right})"
    if isinstance(node, Boolean):
        return f"{left} {node.op} {right}"
    op = "prox"
    if (node.distance, node.comparison) != (1, "<="):
        op += f"/distance{node.comparison}{node.distance}"
    if node.unit != "word":
        op += f"/unit={_quote_term(node.unit)}"
    if node.ordered:
        op += "/ordered"
    return f"{left} {op} {right}"


def _sort_cql(key: SortKey, config: IndexConfig) -> str:
    if key.index == RELEVANCE:
        name = f"cql.{RELEVANCE}"
    else:
        name = next(
            (d.name for d in config.indexes.values() if d.sort == key.index), key.index
        )
    out = name + ("/sort.ascending" if key.ascending else "/sort.descending")
    if key.missing_value != "highValue":
        out += "/sort." + {"lowValue": "missingLow", "omit": "missingOmit"}.get(
            key.missing_value, key.missing_value
        )
    return out


def to_cql(query: Query, config: IndexConfig | None = None) -> str:
    """Canonical CQL for a query: canonical index names, no prefix maps, bare
    server-choice terms, parentheses only where left-associativity needs them."""
    config = config if config is not None else load_index_config()
    out = _node_cql(query.root, config.resolve(None).name)
    if query.sort:
        out += " sortby " + " ".join(_sort_cql(k, config) for k in query.sort)
    return out
