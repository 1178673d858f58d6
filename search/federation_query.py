"""The query model written for a partner target, with its index mapping: CQL for
SRU targets, PQF (Bib-1) for Z39.50 targets.  Pure functions.

A target's ``indexes`` table maps our canonical index names to the target's: CQL
index names for SRU (default: ours, ``dc.title``), Bib-1 attribute lists for Z39.50
(``"1=4"``, ``"1=1016 4=2"``; default: the first use attribute config/bib1.toml maps
to the index).  What a target cannot be asked (an index it has no mapping for, a
``prox``, a relation PQF cannot say) raises ``Unmappable``: that target then gives a
diagnostic naming it, and the others still answer.
"""
from __future__ import annotations

from collections.abc import Mapping

from indexers.query_model import Boolean, Clause, Node, Prox, Query

_RELATION_ATTR = {"<": 1, "<=": 2, "=": 3, ">=": 4, ">": 5, "<>": 6}


class Unmappable(Exception):
    """The query cannot be said to this target (the reason names what)."""


def _cql_term(term: str) -> str:
    if term and all(c not in term for c in ' "()=<>/') and term.lower() not in ("and", "or", "not", "prox"):
        return term
    return '"' + term.replace('"', '\\"') + '"'


def to_cql(query: Query, indexes: Mapping[str, str] | None = None) -> str:
    """CQL text for an SRU target; ``indexes``: ours -> theirs (absent: the same name)."""
    indexes = {k.lower(): v for k, v in (indexes or {}).items()}

    def node(n: Node) -> str:
        if isinstance(n, Clause):
            index = indexes.get(n.index.lower(), n.index)
            if not index:
                raise Unmappable(f"the index {n.index} is not searchable there")
            rel = n.relation
            if rel == "==":
                rel = "exact"
            if n.index.lower() == "cql.allrecords":
                return "cql.allRecords=1"
            return f"{index} {rel} {_cql_term(n.term)}"
        if isinstance(n, Boolean):
            return f"({node(n.left)} {n.op} {node(n.right)})"
        if isinstance(n, Prox):
            raise Unmappable("prox is not sent to partner targets")
        raise Unmappable(f"query node {type(n).__name__}")

    return node(query.root)


def _pqf_term(term: str) -> tuple[str, int | None]:
    """The term without CQL masking, and the Bib-1 truncation it asks for."""
    left, right = term.startswith("*"), term.endswith("*") and not term.endswith("\\*")
    core = term[1 if left else 0: len(term) - (1 if right else 0)]
    if "*" in core.replace("\\*", "") or "?" in core.replace("\\?", ""):
        raise Unmappable(f"masking inside {term!r}")
    core = core.replace("\\*", "*").replace("\\?", "?").replace("\\\\", "\\")
    trunc = 3 if left and right else 2 if left else 1 if right else None
    return core, trunc


def _quote(term: str) -> str:
    return '"' + term.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_pqf(query: Query, use_of: Mapping[str, str]) -> str:
    """PQF for a Z39.50 target; ``use_of``: our index (lower case) -> Bib-1 attributes
    ("1=4", or several separated by spaces)."""

    def attrs(index: str) -> str:
        a = use_of.get(index.lower())
        if not a:
            raise Unmappable(f"the index {index} has no Bib-1 use attribute there")
        return " ".join(f"@attr {x}" for x in a.split())

    def clause(c: Clause) -> str:
        if c.index.lower() == "cql.allrecords":
            return '@attr 1=_ALLRECORDS @attr 2=103 ""'
        rel = c.relation
        if rel in ("any", "all"):
            words = c.term.split()
            if not words:
                raise Unmappable("an empty term")
            parts = [clause(Clause(c.index, "=", w)) for w in words]
            op = "@or" if rel == "any" else "@and"
            out = parts[-1]
            for p in reversed(parts[:-1]):
                out = f"{op} {p} {out}"
            return out
        term, trunc = _pqf_term(c.term)
        a = attrs(c.index)
        if rel in ("=", "adj"):
            a += " @attr 4=1" if len(term.split()) > 1 else " @attr 4=2"
        elif rel in ("==", "exact"):
            a += " @attr 4=1 @attr 6=3"
        elif rel in _RELATION_ATTR:
            a += f" @attr 2={_RELATION_ATTR[rel]}"
        else:
            raise Unmappable(f"the relation {rel}")
        if trunc is not None:
            a += f" @attr 5={trunc}"
        return f"{a} {_quote(term)}"

    def node(n: Node) -> str:
        if isinstance(n, Clause):
            return clause(n)
        if isinstance(n, Boolean):
            return f"@{n.op} {node(n.left)} {node(n.right)}"
        raise Unmappable("prox is not sent to partner targets")

    return node(query.root)


def default_use_attributes(bib1_use: Mapping[int, object]) -> dict[str, str]:
    """Our index (lower case) -> "1=<use>": the first (lowest) use attribute
    config/bib1.toml maps to each index."""
    out: dict[str, str] = {}
    for value in sorted(bib1_use):
        index = getattr(bib1_use[value], "index", "").lower()
        if index and index not in out:
            out[index] = f"1={value}"
    return out
