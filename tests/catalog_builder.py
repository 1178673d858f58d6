"""Build small catalogs for tests: records written with pymarc, ingested through
the real `ingest` pipeline into a data directory, searched through a backend."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pymarc
from pymarc import Field, Indicators, Subfield

from indexers.backends.sqlite_index import SqliteCatalog
from indexers.ingest import ingest
from indexers.query_model import Query
from sru.cql import parse_cql


def f008(year: str = "2001", lang: str = "jpn", date_type: str = "s") -> str:
    return ("200101" + date_type + year.ljust(4)[:4] + "    " + "xx " + " " * 17 + lang + " d").ljust(40)[:40]


def rec(local_id: str, *, title: str | None = None, year: str = "2001", lang: str = "eng",
        fields: list[Field] | None = None, leader5: str = "n", subtitle: str | None = None,
        nonfiling: str = "0") -> pymarc.Record:
    r = pymarc.Record(force_utf8=True)
    r.leader = f"     {leader5}am a22     2a 4500"
    r.add_field(Field(tag="001", data=local_id))
    r.add_field(Field(tag="008", data=f008(year, lang)))
    if title is not None:
        subs = [Subfield("a", title)] + ([Subfield("b", subtitle)] if subtitle else [])
        r.add_field(Field(tag="245", indicators=Indicators("1", nonfiling), subfields=subs))
    for f in fields or []:
        r.add_ordered_field(f)
    return r


def df(tag: str, ind: str = "  ", **subs: str) -> Field:
    """df("650", " 0", a="Libraries") -- subfield codes as keyword names (use _6 for $6)."""
    return Field(tag=tag, indicators=Indicators(ind[0], ind[1]),
                 subfields=[Subfield(k.lstrip("_"), v) for k, v in subs.items()])


def df_list(tag: str, ind: str, pairs: list[tuple[str, str]]) -> Field:
    return Field(tag=tag, indicators=Indicators(ind[0], ind[1]), subfields=[Subfield(c, v) for c, v in pairs])


def write(path: Path, records: list[pymarc.Record]) -> Path:
    with open(path, "wb") as fh:
        for r in records:
            fh.write(r.as_marc())
    return path


@dataclass
class CatalogUnderTest:
    data_dir: Path
    backend: str = "sqlite"

    def __post_init__(self):
        self._n = 0
        self._cat = None

    def load(self, library: str, records: list[pymarc.Record], full: bool = False):
        self._n += 1
        path = write(self.data_dir / f"in-{library}-{self._n}.mrc", records)
        res = ingest(self.data_dir, library, [path], full=full, quiet=True)
        self._cat = None
        return res.counts

    @property
    def catalog(self) -> SqliteCatalog:
        if self._cat is None:
            self._cat = SqliteCatalog(self.data_dir / "catalog.sqlite")
        return self._cat

    def query(self, cql: str) -> Query:
        return parse_cql(cql, self.catalog.config)

    def ids(self, cql: str) -> list[int]:
        res = self.catalog.search_sync(self.query(cql))
        return self.catalog.page_sync(res, 0, res.total)

    def local_ids(self, cql: str) -> list[str]:
        """The first member's 001 of each hit, in result order."""
        recs = self.catalog.fetch_sync(self.ids(cql))
        return [r.members[0][1] for r in recs]

    def hits(self, cql: str) -> set[str]:
        """Every member 001 of every hit (order-free)."""
        return {m[1] for r in self.catalog.fetch_sync(self.ids(cql)) for m in r.members}

    def close(self):
        if self._cat is not None:
            self._cat.close()
