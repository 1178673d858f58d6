"""The one query model.

CQL (sru.cql) and Z39.50 RPN (z3950, later) both parse into these plain, immutable
objects; every index backend compiles them.  Nothing here knows about SQL, HTTP
or XML.

Index names are *canonical* names (e.g. ``dc.title``) resolved through
``config/indexes.toml`` by :mod:`indexers.index_config`; a front end that meets an
index it cannot resolve raises :class:`QueryError` with diagnostic 16.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

# Relations every backend must execute (SEARCH_SEMANTICS.md, "Relations").
RELATIONS = frozenset(
    {"=", "adj", "all", "any", "==", "exact", "<", "<=", ">", ">=", "<>", "within"}
)
# Relation modifiers kept in the tree (folding is the default; respectCase is accepted
# and treated as ignoreCase because all matching is on normalized text -- documented).
# The parser also accepts masked/relevant/word as descriptions of the default
# behaviour without storing them.
RELATION_MODIFIERS = frozenset({"ignorecase", "respectcase"})
PROX_UNITS = frozenset({"word"})
COMPARISONS = frozenset({"<", "<=", "=", ">=", ">", "<>"})


class QueryError(Exception):
    """A query that cannot be executed, carrying an SRU diagnostic number
    (info:srw/diagnostic/1/N) and the diagnostic's 'details' string.  ``bib1``:
    the Bib-1 diagnostic a Z39.50 client should get, where the SRU number does
    not say it (e.g. 111 for several databases at once); None: the usual
    correspondence (z3950.diagnostics.SRU_TO_BIB1)."""

    def __init__(self, code: int, details: str = "", message: str = "", *, bib1: int | None = None):
        super().__init__(message or f"diagnostic {code}: {details}")
        self.code = code
        self.details = details
        self.message = message or str(details)
        self.bib1 = bib1


@dataclass(frozen=True)
class Modifier:
    name: str  # lower-cased, prefix removed (e.g. "ignorecase", "distance", "sort.ascending")
    comparison: str | None = None  # "=", "<", ... or None for a bare modifier
    value: str | None = None


@dataclass(frozen=True)
class Clause:
    """index relation term, e.g. dc.title adj "history of libraries".

    ``term`` is the raw term as the user wrote it, with CQL escapes still in place
    (``\\*`` is a literal star, unescaped ``*``/``?`` are masking characters);
    backends hand it to :func:`indexers.normalize.query_tokens` /
    :func:`indexers.normalize.exact_key` which understand the escapes.
    """

    index: str
    relation: str
    term: str
    modifiers: tuple[Modifier, ...] = ()


@dataclass(frozen=True)
class Boolean:
    op: str  # "and" | "or" | "not"
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Prox:
    """CQL ``prox`` boolean: both sides match inside one field, within a distance."""

    left: "Node"
    right: "Node"
    distance: int = 1
    comparison: str = "<="  # one of COMPARISONS
    unit: str = "word"
    ordered: bool = False


Node = Union[Clause, Boolean, Prox]


@dataclass(frozen=True)
class SortKey:
    index: str  # sort column from config/indexes.toml [sort]: "title" | "creator" | "date" | "relevance"
    ascending: bool = True
    missing_value: str = "highValue"  # "highValue" | "lowValue" | "omit" (sort.missingHigh/Low/Omit)


@dataclass(frozen=True)
class Query:
    root: Node
    sort: tuple[SortKey, ...] = field(default_factory=tuple)
    # Without sort keys: True orders by relevance (CQL, and Z39.50 with relation 102);
    # False leaves index order (ascending union id), as Zebra does for Z39.50 queries
    # that do not ask for relevance -- cheaper, since nothing has to be scored.
    ranked: bool = True


def walk(node: Node):
    """Yield every node of a tree, depth first."""
    yield node
    if isinstance(node, (Boolean, Prox)):
        yield from walk(node.left)
        yield from walk(node.right)


def operands(node: Boolean) -> list[Node]:
    """The operands of a chain of one boolean operator, left to right, so that a
    backend can run ``a and b and c ...`` as one flat n-ary expression instead of
    nesting it once per operator (query parsers overflow on deep nesting).
    ``and`` and ``or`` are associative: ``a and (b and c)`` -> [a, b, c].  ``not``
    chains only on its left: ``(a not b) not c`` -> [a, b, c], meaning a minus
    each of the others; ``a not (b not c)`` -> [a, b not c]."""
    if node.op == "not":
        rights: list[Node] = []
        n: Node = node
        while isinstance(n, Boolean) and n.op == "not":
            rights.append(n.right)
            n = n.left
        return [n, *reversed(rights)]
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Boolean) and n.op == node.op:
            stack.append(n.right)
            stack.append(n.left)
        else:
            out.append(n)
    return out
