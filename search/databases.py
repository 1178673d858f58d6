"""Database names, the same on every front end (SRU ``/sru/{database}``, Z39.50
``databaseNames``, and whatever comes next).

``default`` is the whole union catalog.  Any other database is a holding
library: a search in it is restricted to the records that library holds
(``bath.possessingInstitution == code``, like a Metaproxy virt_db route).  The
libraries are those of config/libraries.toml and every library that holds
records in the catalog, whether configured or not (a library ingested under a
new code is a database as soon as its records are searchable).  The catalog is
asked through the one Catalog interface: a scan of the index the restriction
uses, repeated when the catalog's generation has changed and a name is not yet
known.  Names are matched without regard to case (``Default``, ``KOMAE``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from indexers.query_model import Boolean, Clause, Query, QueryError

DEFAULT = "default"
LIBRARY_INDEX = "bath.possessingInstitution"
MAX_LIBRARIES = 10000            # holding names read from the catalog at most
RESOLVED_MAX = 256               # answers of Databases.resolve remembered (then forgotten at once)


@dataclass(frozen=True)
class Database:
    name: str                    # canonical name: "default" or the library code as configured / indexed
    library: str | None = None   # the restriction; None: the whole union catalog
    # a federation (search/federation.py): the Catalog that fans out to its targets; None: the union's
    catalog: Any = field(default=None, compare=False, repr=False)

    def restrict(self, query: Query) -> Query:
        """``query`` limited to this database's records."""
        if self.library is None:
            return query
        flt = Clause(LIBRARY_INDEX, "==", self.library)
        return Query(Boolean("and", query.root, flt), query.sort, query.ranked)


def database_error(code: int, details: str, message: str, bib1: int) -> QueryError:
    return QueryError(code, details, message, bib1=bib1)


class Databases:
    """The databases of one catalog.  ``configured``: library codes from
    config/libraries.toml (databases even before their first record)."""

    def __init__(self, configured: Iterable[str] = ()):
        self._names: dict[str, Database] = {DEFAULT: Database(DEFAULT)}
        for code in configured:
            self._names.setdefault(code.lower(), Database(code, code))
        self._generation: str | None = None
        # the answers of ``resolve`` by the names as asked (``Default`` from nearly every
        # Z39.50 request): names are only ever added, so an answer stays right until the
        # names change, when all are forgotten
        self._resolved: dict[tuple[str, ...], Database] = {}

    def add_federation(self, name: str, catalog) -> None:
        """A federation database ([federation.<name>]): searched on its own catalog."""
        self._names[name.lower()] = Database(name, None, catalog)
        self._resolved.clear()

    def resolved(self, names: tuple[str, ...]) -> Database | None:
        """What ``resolve`` answered for these names before (None: not asked yet, or the
        names changed since); every name in it is known."""
        return self._resolved.get(names) if type(names) is tuple else None

    def names(self) -> list[str]:
        return [d.name for d in self._names.values()]

    def known(self, name: str) -> Database | None:
        return self._names.get(name.lower())

    async def refresh(self, catalog, generation: str) -> None:
        """Add the libraries that hold records (once per catalog generation)."""
        if generation == self._generation:
            return
        terms = await catalog.scan(LIBRARY_INDEX, "", 1, MAX_LIBRARIES)
        for t in terms:
            code = t.display or t.value
            if code and code.lower() not in self._names:
                self._names[code.lower()] = Database(code, code)
                self._resolved.clear()
        self._generation = generation

    def resolve(self, names: tuple[str, ...]) -> Database:
        """The database for a request's names (Z39.50 may send several: they must
        all be the union, or one and the same library).  Unknown: 235."""
        hit = self.resolved(names)
        if hit is not None:
            return hit
        db = self._resolve(names)
        if type(names) is tuple:
            if len(self._resolved) >= RESOLVED_MAX:
                self._resolved.clear()
            self._resolved[names] = db
        return db

    def _resolve(self, names: tuple[str, ...]) -> Database:
        if not names:
            raise database_error(235, "", "no database given", bib1=109)
        found = []
        for name in names:
            db = self.known(name)
            if db is None:
                raise database_error(235, name, f"database {name} does not exist", bib1=235)
            found.append(db)
        if any(d.catalog is not None for d in found):
            if len({d.name for d in found}) > 1:
                raise database_error(48, "", "a federation is searched on its own, not with other databases",
                                     bib1=111)
            return found[0]
        if len({d.library for d in found}) > 1:
            if any(d.library is None for d in found):
                return Database(names[0], None)
            raise database_error(48, "", "searching several member databases at once is not "
                                 "supported; use Default", bib1=111)
        return Database(names[0], found[0].library)
