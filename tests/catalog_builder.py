"""Build small catalogs for tests: records written with pymarc, ingested through
the real `ingest` pipeline into a data directory, searched through a backend."""
from __future__ import annotations

import asyncio
import uuid
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


BACKENDS = ["sqlite", "elasticsearch"]
# and the Elasticsearch backend with its record store in PostgreSQL (indexers/store_sql.py)
PG_STORE = "elasticsearch-pgstore"


def backend_fixture(request, data_dir: Path) -> "CatalogUnderTest":
    """A CatalogUnderTest for the backend named by request.param; the
    Elasticsearch one uses the session's node (fixture es_url, tests/conftest.py);
    PG_STORE a database of its own on the session's PostgreSQL (fixture pg_url), dropped
    when the catalog closes."""
    es_url = request.getfixturevalue("es_url") if request.param in ("elasticsearch", PG_STORE) else None
    if request.param != PG_STORE:
        return CatalogUnderTest(data_dir, request.param, es_url=es_url)
    import postgres_node

    server = request.getfixturevalue("pg_url")
    name = postgres_node.unique_database_name("store")
    postgres_node.admin_sql(server, f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: postgres_node.drop_database(server, name))
    return CatalogUnderTest(data_dir, "elasticsearch", es_url=es_url,
                            store_url=postgres_node.database_url(server, name))


@dataclass
class CatalogUnderTest:
    """A catalog in a data directory, loaded through the real ingest and searched
    through the backend's async Catalog interface (on a private event loop)."""

    data_dir: Path
    backend: str = "sqlite"
    es_url: str | None = None
    store_url: str | None = None         # the record store in PostgreSQL (Elasticsearch only)

    def __post_init__(self):
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self._n = 0
        self._cat = None
        self.loop = asyncio.new_event_loop()
        self.es_config = None
        if self.backend == "elasticsearch":
            from indexers.backends.elasticsearch_index import EsConfig

            if not self.es_url:
                raise ValueError("the elasticsearch backend needs es_url")
            self.es_config = EsConfig(urls=[self.es_url], index=f"test-{uuid.uuid4().hex[:12]}",
                                      retry_seconds=20.0, request_timeout=20.0)

    def load(self, library: str, records: list[pymarc.Record], full: bool = False):
        self._n += 1
        path = write(self.data_dir / f"in-{library}-{self._n}.mrc", records)
        res = ingest(self.data_dir, library, [path], full=full, quiet=True, es=self.es_config,
                     store_url=self.store_url)
        if self.es_config is not None:
            assert res.index_pending == 0 and res.index_error is None, res.index_error
        self.close_catalog()
        return res.counts

    @property
    def catalog(self):
        if self._cat is None:
            if self.es_config is not None:
                from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog

                self._cat = ElasticsearchCatalog(self.es_config)
            else:
                self._cat = SqliteCatalog(self.data_dir / "catalog.sqlite")
        return self._cat

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def query(self, cql: str) -> Query:
        return parse_cql(cql, self.catalog.config)

    def search(self, cql: str | Query):
        q = self.query(cql) if isinstance(cql, str) else cql
        return self.run(self.catalog.search(q))

    def ids(self, cql: str) -> list[int]:
        res = self.search(cql)
        return self.run(self.catalog.page(res, 0, res.total))

    def fetch(self, ids):
        return self.run(self.catalog.fetch(ids))

    def facets(self, res, names, limit):
        return self.run(self.catalog.facets(res, names, limit))

    def scan(self, index, term, position, maximum):
        return self.run(self.catalog.scan(index, term, position, maximum))

    def local_ids(self, cql: str) -> list[str]:
        """The first member's 001 of each hit, in result order."""
        return [r.members[0][1] for r in self.fetch(self.ids(cql))]

    def hits(self, cql: str) -> set[str]:
        """Every member 001 of every hit (order-free)."""
        return {m[1] for r in self.fetch(self.ids(cql)) for m in r.members}

    def close_catalog(self):
        if self._cat is not None:
            if hasattr(self._cat, "aclose"):
                self.run(self._cat.aclose())
            else:
                self._cat.close()
            self._cat = None

    def close(self):
        self.close_catalog()
        if self.es_config is not None:
            self.run(_drop_indexes(self.es_config))
        self.loop.close()


async def _drop_indexes(cfg) -> None:
    es = cfg.client()
    try:
        got = await es.options(ignore_status=404).indices.get(index=f"{cfg.index}-*")
        names = [n for n in got.body if n.startswith(cfg.index + "-")] if got.meta.status == 200 else []
        names.append(cfg.index + "-meta")
        if names:
            await es.options(ignore_status=404).indices.delete(index=",".join(names))
    finally:
        await es.close()
