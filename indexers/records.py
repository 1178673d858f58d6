"""Plain objects the catalog hands to front ends (SRU, Z39.50, OPAC)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pymarc


@dataclass(frozen=True)
class Holding:
    """One library's holding (one item or copy) of a union record."""

    library: str  # member library code, e.g. "iizuka"
    local_id: str  # the library's own record id (001)
    branch: str = ""  # branch / service point code or name (852 $b by default)
    call_number: str = ""  # 852 $h $i by default
    location: str = ""  # shelving location (852 $c by default)
    barcode: str = ""  # 852 $p by default


@dataclass
class UnionRecord:
    """A hit: one manifestation with the holdings of every member library.

    ``marc`` is the display record: the preferred member record (see
    indexers/union.py) with its own 852s replaced by one 852 per holding of every
    member ($a library, $b branch, $c location, $h call number, $p barcode).
    ``members`` lists (library, local_id) of every member record.
    """

    id: int
    marc: pymarc.Record
    holdings: list[Holding] = field(default_factory=list)
    members: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ScanTerm:
    value: str  # the normalized term, usable in a query as index == "value"
    display: str  # a display form as it appears in a record
    count: int  # number of union records


@dataclass(frozen=True)
class FacetValue:
    value: str  # usable in a query (index == value)
    display: str
    count: int


@dataclass
class SearchResult:
    """A result set as a backend hands it out: the hit count, and either the
    ordered ids (small results) or a backend-specific handle from which pages are
    read on demand (Catalog.page), so a 200,000-hit query costs a count and a page,
    not 200,000 ids."""

    total: int
    ids: list[int] | None = None  # all ordered ids when materialized
    handle: Any = None  # backend's lazy form (SQL for the embedded index), typed by each backend
