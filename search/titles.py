"""Union records and circulation title ids: the one mapping between them, both ways.

The circulation database (``items.title_id``, ``requests.title_id``) names a title by

* ``isbn:<ISBN-13>`` -- the ISBN of the manifestation (an ISBN-10 is converted), or
* the union record's number (``"1234"``) for a title without an ISBN,

so a union record stands for the titles :func:`title_ids` gives: ``isbn:<ISBN-13>`` of
each ISBN in its 020 $a (in field order, duplicates once), then its own number. Other
title ids the circulation database may hold (``issn:...:<issue>``, ``jan:...``) name
issues and AV items the union catalog does not describe one by one; no union record
stands for them.

Used by the availability of a record (search/availability.py: which copies are the
record's), the search limit 「貸出可能な資料のみ」 (:func:`titles_query`: the query that finds
the union records of a set of title ids), and the ILL title resolver
(gateway/ill_service.py).
"""
from __future__ import annotations

from collections.abc import Iterable

from indexers.normalize import normalize_isbn
from indexers.query_model import Boolean, Clause, Node

ISBN_PREFIX = "isbn:"
ISBN_INDEX = "bath.isbn"
RESULT_SET_INDEX = "cql.resultSetId"
# ISBNs per `bath.isbn any "..."` clause: each backend runs one such clause as one set
# lookup (SQLite: IN over json_each, Elasticsearch: one terms query, at most 65,536 terms)
ISBNS_PER_CLAUSE = 10000


def isbns_of(record) -> list[str]:
    """ISBN-13s of a union record's (or a bare pymarc record's) 020 $a, in order, once each."""
    marc = getattr(record, "marc", record)
    out: list[str] = []
    for f in marc.get_fields("020"):
        for v in f.get_subfields("a"):
            n = normalize_isbn(v)
            if n and n not in out:
                out.append(n)
    return out


def title_ids(record) -> list[str]:
    """The circulation title ids a union record stands for: ``isbn:<ISBN-13>`` of its 020s,
    then its number (the first is the one to give a title that is new to circulation)."""
    out = [ISBN_PREFIX + i for i in isbns_of(record)]
    rid = getattr(record, "id", None)
    if rid is not None:
        out.append(str(rid))
    return out


def primary_title_id(record) -> str:
    """The title id to name a union record by: its first ISBN, else its number."""
    ids = title_ids(record)
    return ids[0] if ids else ""


def isbn_title_id(isbn: str) -> str | None:
    """``isbn:<ISBN-13>`` for an ISBN as written (ISBN-10, hyphens), None if it is none."""
    n = normalize_isbn(isbn or "")
    return ISBN_PREFIX + n if n else None


def parse_title_id(title_id: str) -> tuple[str, str | int] | None:
    """("isbn", ISBN-13) or ("record", union record number) for a title id a union record
    can stand for; None for any other (``issn:``, ``jan:``, malformed)."""
    t = (title_id or "").strip()
    if len(t) == 18 and t.startswith("isbn:97") and t[5:].isdigit() and t[5:].isascii() and t[7] in "89":
        return "isbn", t[5:]                   # already isbn:<ISBN-13> (the usual form): as below, sooner
    if t.lower().startswith(ISBN_PREFIX):
        isbn = normalize_isbn(t[len(ISBN_PREFIX):])
        return ("isbn", isbn) if isbn else None
    if t.isascii() and t.isdigit() and len(t) <= 12:
        return "record", int(t)
    return None


def titles_query(ids: Iterable[str], set_name: str) -> tuple[Node, list[int]]:
    """The query that finds the union records of circulation title ids: ``bath.isbn any
    "<isbn> <isbn> ..."`` (ISBNS_PER_CLAUSE ISBNs a clause) or ``cql.resultSetId =
    set_name``, the set of the record numbers, returned as the second value for the caller
    to hand to the catalog under ``set_name`` (it is always part of the query, so that no
    title ids at all still makes a query that finds nothing)."""
    isbns: set[str] = set()
    numbers: set[int] = set()
    for t in ids:
        parsed = parse_title_id(t)
        if parsed is None:
            continue
        kind, value = parsed
        if kind == "isbn":
            isbns.add(str(value))
        else:
            numbers.add(int(value))
    node: Node = Clause(RESULT_SET_INDEX, "=", set_name)
    ordered = sorted(isbns)
    for i in range(0, len(ordered), ISBNS_PER_CLAUSE):
        node = Boolean("or", node, Clause(ISBN_INDEX, "any", " ".join(ordered[i:i + ISBNS_PER_CLAUSE])))
    return node, sorted(numbers)
