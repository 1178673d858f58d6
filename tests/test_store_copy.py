"""`unioncat copy-store` (issue 18; indexers/store_copy.py): a data directory's record store
copied into an empty PostgreSQL store -- every table row for row, the ids' sequences past
the highest id ever given, the source untouched, a non-empty target refused -- and the copy
serving `/oai` and `local.added` as the source does, taking ingests and a reindex as it
would; an embedded catalog converted to an Elasticsearch one."""
from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.request
import uuid
from pathlib import Path

import pytest

from gateway.demo import write_demo_files
from indexers.backends.elasticsearch_index import EsConfig
from indexers.ingest import ingest
from indexers.store_copy import TABLES, CopyError, TargetNotEmpty, copy_store
from indexers.store_sql import PgConnection
from test_sru_workers import Served, count, diag_codes, sru
from test_stateless_store import _cli, _identifiers, _oai

OAI = {"o": "http://www.openarchives.org/OAI/2.0/"}


def _database(pg_url, made: list) -> str:
    import postgres_node

    name = postgres_node.unique_database_name("copy")
    postgres_node.admin_sql(pg_url, f'CREATE DATABASE "{name}"')
    made.append(name)
    return postgres_node.database_url(pg_url, name)


def _norm(v):
    return bytes(v) if isinstance(v, memoryview) else v


def _table(conn, t, where: str = "") -> list[tuple]:
    cols = ", ".join(t.columns)
    order = "key, library, union_id, source_id" if t.name == "matchkey" else t.order
    try:
        rows = conn.execute(f"SELECT {cols} FROM {t.name} {where} ORDER BY {order}").fetchall()
    except sqlite3.OperationalError:            # a table the source does not have
        return []
    return [tuple(_norm(v) for v in r) for r in rows]


def _tables(conn) -> dict[str, list[tuple]]:
    return {t.name: _table(conn, t) for t in TABLES}


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _write_updates(files: dict, d: Path) -> Path:
    """komae's catalogue again whole: two records less (withdrawn), one changed (updated)."""
    from pymarc import Field, MARCReader, Subfield

    with open(files["komae"], "rb") as fh:
        kept = list(MARCReader(fh, to_unicode=True, force_utf8=True))[2:]
    kept[0].add_ordered_field(Field(tag="500", indicators=[" ", " "], subfields=[Subfield("a", "Revised.")]))
    out = d / "komae-less.mrc"
    out.write_bytes(b"".join(r.as_marc() for r in kept))
    return out


@pytest.fixture(scope="module")
def copied(es_url, pg_url, tmp_path_factory):
    """An Elasticsearch catalog in a data directory (three libraries merged, then komae's
    catalogue with withdrawals and an update), copied by `unioncat copy-store`."""
    import postgres_node

    made: list[str] = []
    src = tmp_path_factory.mktemp("copy-src")
    cfg = EsConfig(urls=[es_url], index=f"copy-{uuid.uuid4().hex[:8]}", request_timeout=30.0)
    files = write_demo_files(src / "in")
    for lib in ("iizuka", "komae", "hiroshima-u"):
        res = ingest(src, lib, [files[lib]], quiet=True, es=cfg)
        assert res.error is None and res.index_pending == 0, (res.error, res.index_error)
    res = ingest(src, "komae", [_write_updates(files, src)], full=True, quiet=True, es=cfg)
    assert (res.counts.withdrawn, res.counts.updated) == (2, 1) and res.error is None
    before = _dump(src / "catalog.sqlite")
    url = _database(pg_url, made)
    run = _cli("copy-store", "--data-dir", src, "--store-db", url)
    try:
        yield src, url, cfg, files, before, run, made
    finally:
        for name in made:
            postgres_node.drop_database(pg_url, name)


def test_every_table_is_copied_row_for_row(copied):
    src, url, _cfg, _files, before, run, _ = copied
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    source = sqlite3.connect(src / "catalog.sqlite")
    target = PgConnection(url)
    try:
        want, got = _tables(source), _tables(target)
        unions = source.execute("SELECT COUNT(*) FROM union_rec").fetchone()[0]
        seqs = dict(source.execute("SELECT name, seq FROM sqlite_sequence"))
        next_ids = {t: target.execute("SELECT nextval(pg_get_serial_sequence(?, 'id'))", (t,)).fetchone()[0]
                    for t in ("run", "union_rec", "source")}
    finally:
        source.close()
        target.close()
    for t in TABLES:
        assert got[t.name] == want[t.name], t.name
    assert want["union_gone"] and want["display"] and want["run"] and want["matchkey"]    # nothing trivial
    assert len(want["source"]) > len(want["union_rec"]) == unions     # merged across libraries
    assert f"{unions} union records, {len(want['source'])} source records, 4 runs" in run.stdout
    assert "copy-store: source" in run.stderr                          # progress
    # the ids go on after the highest ever given, deleted ones too (a withdrawn record's union id)
    assert next_ids == {t: seqs[t] + 1 for t in ("run", "union_rec", "source")}
    assert _dump(src / "catalog.sqlite") == before                      # the source untouched


def test_a_store_that_is_not_empty_is_refused(copied, tmp_path):
    src, url, *_ = copied
    target = PgConnection(url)
    try:
        sizes = {t.name: target.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0] for t in TABLES}
        again = _cli("copy-store", "--data-dir", src, "--store-db", url, "--quiet")
        assert again.returncode == 2
        assert again.stderr.count("\n") == 1 and "is not empty" in again.stderr, again.stderr
        assert sizes == {t.name: target.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0] for t in TABLES}
    finally:
        target.close()
    nothing = _cli("copy-store", "--data-dir", tmp_path, "--store-db", url)
    assert nothing.returncode == 2 and "holds no record store" in nothing.stderr
    bad = _cli("copy-store", "--data-dir", src, "--store-db", "sqlite:///x.db")
    assert bad.returncode == 2 and "a postgresql:// URL is needed" in bad.stderr


def test_the_copy_serves_oai_and_arrivals_as_the_source_does(copied, tmp_path):
    src, url, cfg, *_ = copied
    gw = tmp_path / "gw"
    gw.mkdir()
    (gw / "unioncat.toml").write_text(f'backend = "elasticsearch"\n[elasticsearch]\nurls = ["{cfg.urls[0]}"]\n'
                                      f'index = "{cfg.index}"\nrequest_timeout = 30\n')
    served = [Served(src, tmp_path / "src.log", workers=0),
              Served(gw, tmp_path / "gw.log", workers=0, extra=("--store-db", url))]
    try:
        on_source, on_copy = served
        ids = _identifiers(on_source.port)
        assert len(ids) > 10 and _identifiers(on_copy.port) == ids
        assert _identifiers(on_copy.port, set="komae") == _identifiers(on_source.port, set="komae") != []
        deleted = _oai(on_copy.port, verb="ListIdentifiers", metadataPrefix="marc21", set="komae")
        assert deleted.xpath("//o:header[@status='deleted']", namespaces=OAI)     # the withdrawals
        for ident in (ids[0], ids[-1]):
            records = [_oai(g.port, verb="GetRecord", identifier=ident, metadataPrefix="marc21") for g in served]
            assert [r.find(".//o:record", OAI) is not None for r in records] == [True, True]
            from lxml import etree

            assert etree.tostring(records[0].find(".//o:record", OAI)) == etree.tostring(
                records[1].find(".//o:record", OAI))
        for lib, n in (("iizuka", 11), ("hiroshima-u", 7)):
            q = f'local.added >= "{lib} 2000-01-01"'
            got = [sru(g.port, query=q, maximumRecords="0") for g in served]
            assert [diag_codes(t) for t in got] == [[], []]
            assert count(got[0]) == count(got[1]) == n
    finally:
        for g in served:
            g.stop()
    for g in served:
        assert "Traceback" not in g.log.read_text()
    assert sorted(p.name for p in gw.iterdir()) == ["unioncat.toml"]


def test_ingests_and_reindex_go_on_on_the_copy_as_on_the_source(copied, pg_url, tmp_path):
    """After the copy, the same ingest into the source and into the copy gives the same
    tables (new ids included: the sequences go on where SQLite's would); reindex and stats
    work on the copy with --store-db alone."""
    src, _url, cfg, files, _before, _run, made = copied
    here = tmp_path / "src"
    shutil.copytree(src, here)
    url = _database(pg_url, made)
    copy_store(here / "catalog.sqlite", url, batch=3)            # small batches: several per table
    more = write_demo_files(tmp_path / "more")
    for d, store in ((here, None), (tmp_path / "elsewhere", url)):
        c = EsConfig(urls=cfg.urls, index=f"{cfg.index}-{'pg' if store else 'sqlite'}", request_timeout=30.0)
        res = ingest(d, "komae", [more["komae"]], full=True, quiet=True, es=c, store_url=store)  # two come back
        assert res.error is None and res.counts.added == 2, (res.error, res.counts)
        res = ingest(d, "hiroshima", [files["iizuka"]], quiet=True, es=c, store_url=store)         # all new
        assert res.error is None and res.counts.added == 11
    source, target = sqlite3.connect(here / "catalog.sqlite"), PgConnection(url)
    try:
        timeless = {"union_rec": ("id",), "source": ("id", "library", "local_id", "union_id", "digest", "run_id"),
                    "run": ("id", "library", '"full"', "counts", "outcome"), "union_gone": ("union_id", "library"),
                    "es_outbox": ("union_id",), "meta": ("key",)}
        for t in TABLES:
            cols = timeless.get(t.name, t.columns)
            q = f"SELECT {', '.join(cols)} FROM {t.name} ORDER BY {', '.join(cols)}"
            assert [tuple(map(_norm, r)) for r in source.execute(q)] == \
                [tuple(map(_norm, r)) for r in target.execute(q).fetchall()], t.name
    finally:
        source.close()
        target.close()
    opts = ("--data-dir", tmp_path / "third", "--store-db", url)
    rep = _cli("reindex", *opts, "--workers", "1")
    assert rep.returncode == 0, rep.stderr
    stats = _cli("stats", *opts)
    unions = int(stats.stdout.split("union records: ")[1].split()[0])
    assert stats.returncode == 0 and f"reindexed {unions} union records" in rep.stdout
    assert f"elasticsearch: {unions} documents, 0 waiting in the outbox, 0 rejected" in stats.stdout


def test_a_copy_that_fails_leaves_the_target_empty(copied, pg_url):
    src, *_rest, made = copied
    url = _database(pg_url, made)

    def stop_in_source(table, done, total):
        if table == "source":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_store(src / "catalog.sqlite", url, batch=5, progress=stop_in_source)
    rep = copy_store(src / "catalog.sqlite", url)           # nothing was left: the target is still empty
    assert rep.rows["source"] > 10 and not rep.converted
    with pytest.raises(TargetNotEmpty, match="union_rec"):
        copy_store(src / "catalog.sqlite", url)
    with pytest.raises(CopyError, match="no record store"):
        copy_store(src / "nothing.sqlite", url)


def test_an_embedded_catalog_is_converted_and_reindexed(es_url, pg_url, tmp_path):
    """The embedded index's catalog becomes an Elasticsearch one: the store's tables copied,
    its meta saying elasticsearch (with the cluster given), the full-text index left behind;
    `reindex --store-db` builds the index, and the source keeps working."""
    import postgres_node

    emb = tmp_path / "embedded"
    files = write_demo_files(tmp_path / "in")
    for lib in ("iizuka", "komae"):
        assert ingest(emb, lib, [files[lib]], quiet=True).error is None
    before = _dump(emb / "catalog.sqlite")
    made: list[str] = []
    url = _database(pg_url, made)
    index = f"conv-{uuid.uuid4().hex[:8]}"
    try:
        run = _cli("copy-store", "--data-dir", emb, "--store-db", url, "--es-url", es_url, "--es-index", index)
        assert run.returncode == 0, run.stderr
        assert "the catalog was on the embedded index" in run.stdout and "unioncat reindex --store-db" in run.stdout
        target = PgConnection(url)
        try:
            meta = dict(target.execute("SELECT key, value FROM meta").fetchall())
            unions = target.execute("SELECT COUNT(*) FROM union_rec").fetchone()[0]
            embedded_tables = target.execute("SELECT to_regclass('term'), to_regclass('post')").fetchone()
        finally:
            target.close()
        from indexers.terms import INDEX_FORMAT

        assert meta["backend"] == "elasticsearch" and meta["index_format"] == INDEX_FORMAT
        assert json.loads(meta["es_urls"]) == [es_url] and meta["es_index"] == index
        assert not any(k.startswith("num_multi:") for k in meta) and embedded_tables == (None, None)
        opts = ("--data-dir", tmp_path / "gw", "--store-db", url)
        rep = _cli("reindex", *opts)
        assert rep.returncode == 0 and f"reindexed {unions} union records" in rep.stdout, rep.stderr
        with urllib.request.urlopen(f"{es_url}/{index}/_count", timeout=30) as r:
            assert json.load(r)["count"] == unions
        assert _dump(emb / "catalog.sqlite") == before
        search = _cli("search", "--data-dir", emb, "cql.allRecords = 1")    # still embedded
        assert search.returncode == 0, search.stderr
    finally:
        for name in made:
            postgres_node.drop_database(pg_url, name)
