"""The record store in PostgreSQL (issue 18; indexers/store_sql.py): the same ingests give
the same store as in SQLite, one ingest writes a shared store at a time, the outbox
commits with the records and is pushed from PostgreSQL, and what cannot work says so."""
from __future__ import annotations

import json
import sqlite3
import uuid

import pytest

from gateway.demo import write_demo_files
from indexers.backends.elasticsearch_index import EsConfig, Pusher
from indexers.ingest import BackendMismatch, Busy, StorageError, ingest, writer_lock
from indexers.store_sql import PgConnection
from live_server import free_port


@pytest.fixture
def store_url(pg_url):
    import postgres_node

    name = postgres_node.unique_database_name("store")
    postgres_node.admin_sql(pg_url, f'CREATE DATABASE "{name}"')
    yield postgres_node.database_url(pg_url, name)
    postgres_node.drop_database(pg_url, name)


@pytest.fixture
def es_cfg(es_url):
    return EsConfig(urls=[es_url], index=f"pgstore-{uuid.uuid4().hex[:8]}", request_timeout=20.0,
                    retry_seconds=20.0)


def _rows(conn, sql):
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in conn.execute(sql).fetchall()]


def _picture(conn) -> dict:
    """The store as a client could tell it: union records by their members, their
    holdings and display records, the libraries that left them, the runs' counts."""
    members: dict[int, list] = {}
    for uid, lib, lid, holdings in _rows(conn, "SELECT union_id, library, local_id, holdings FROM source"):
        members.setdefault(uid, []).append((lib, lid, holdings))
    display = dict(_rows(conn, "SELECT union_id, iso FROM display"))
    gone = _rows(conn, "SELECT union_id, library FROM union_gone")
    by_members = {uid: tuple(sorted(m)) for uid, m in members.items()}
    return {
        "unions": sorted((by_members[uid], display.get(uid)) for uid in members),
        "gone": sorted((by_members.get(uid, ()), lib) for uid, lib in gone),
        "runs": [(lib, full, json.loads(counts), outcome)
                 for lib, full, counts, outcome in _rows(conn, 'SELECT library, "full", counts, outcome FROM run'
                                                               " ORDER BY id")],
        "outbox": _rows(conn, "SELECT COUNT(*) FROM es_outbox"),
        "union_rec": _rows(conn, "SELECT COUNT(*) FROM union_rec"),
    }


def test_the_same_ingests_make_the_same_store_in_sqlite_and_in_postgresql(tmp_path, store_url, es_cfg):
    files = write_demo_files(tmp_path / "in")
    pictures = []
    for where, url in (("sqlite", None), ("pg", store_url)):
        d = tmp_path / where
        cfg = EsConfig(urls=es_cfg.urls, index=f"{es_cfg.index}-{where}", request_timeout=20.0)
        for lib in ("iizuka", "komae", "hiroshima-u"):
            res = ingest(d, lib, [files[lib]], quiet=True, es=cfg, store_url=url)
            assert res.error is None and res.index_pending == 0, (res.error, res.index_error)
        # komae's catalogue read again whole, but with two records less: withdrawn, union_gone kept
        from pymarc import MARCReader

        with open(files["komae"], "rb") as fh:
            kept = list(MARCReader(fh, to_unicode=True, force_utf8=True))[2:]
        (d / "komae-less.mrc").write_bytes(b"".join(r.as_marc() for r in kept))
        res = ingest(d, "komae", [d / "komae-less.mrc"], full=True, quiet=True, es=cfg, store_url=url)
        assert res.counts.withdrawn == 2 and res.error is None
        conn = PgConnection(url) if url else sqlite3.connect(d / "catalog.sqlite")
        try:
            pictures.append(_picture(conn))
        finally:
            conn.close()
        if url:   # nothing of the store is in the data directory
            assert not (d / "catalog.sqlite").exists()
    sqlite_store, pg_store = pictures
    assert pg_store == sqlite_store
    assert len(pg_store["unions"]) > 5 and len(pg_store["gone"]) == 2
    assert any(len({m[0] for m in members}) >= 2 for members, _ in pg_store["unions"])    # merged across libraries
    assert all(iso for _, iso in pg_store["unions"])                         # display records written


def test_one_ingest_writes_a_shared_store_at_a_time(tmp_path, store_url, es_cfg):
    files = write_demo_files(tmp_path / "in")
    held = writer_lock(tmp_path / "machine-a", store_url)       # an ingest on another machine's data dir
    try:
        with pytest.raises(Busy, match="another ingest or reindex is writing the record store"):
            ingest(tmp_path / "machine-b", "iizuka", [files["iizuka"]], quiet=True, es=es_cfg, store_url=store_url)
    finally:
        held.close()
    res = ingest(tmp_path / "machine-b", "iizuka", [files["iizuka"]], quiet=True, es=es_cfg, store_url=store_url)
    assert res.counts.added == 11 and res.error is None


def test_a_store_in_postgresql_is_for_the_elasticsearch_backend(tmp_path, store_url):
    files = write_demo_files(tmp_path / "in")
    with pytest.raises(BackendMismatch, match="Elasticsearch backend"):
        ingest(tmp_path / "d", "iizuka", [files["iizuka"]], quiet=True, store_url=store_url)


def test_an_unreachable_store_is_a_clear_error_that_shows_no_password(tmp_path, es_cfg):
    port = free_port()                                  # nothing listens there
    url = f"postgresql://someone:s3cret@127.0.0.1:{port}/catalog"
    files = write_demo_files(tmp_path / "in")
    with pytest.raises(StorageError) as err:
        ingest(tmp_path / "d", "iizuka", [files["iizuka"]], quiet=True, es=es_cfg, store_url=url)
    assert "cannot open the record store postgresql://someone:***@127.0.0.1" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_the_outbox_commits_with_the_records_and_is_pushed_from_postgresql(tmp_path, store_url, es_cfg):
    """With the cluster away, the union records wait in the store's outbox (committed with
    the records, in PostgreSQL); a Pusher on the store's URL sends them later, once."""
    files = write_demo_files(tmp_path / "in")
    port = free_port()
    away = EsConfig(urls=[f"http://127.0.0.1:{port}"], index=es_cfg.index, retry_seconds=0.5, request_timeout=2.0)
    res = ingest(tmp_path / "d", "iizuka", [files["iizuka"]], quiet=True, es=away, store_url=store_url)
    assert res.counts.added == 11 and res.error is None
    assert res.index_pending == 11 and res.index_error
    pusher = Pusher(store_url, es_cfg)
    try:
        assert pusher.pending() == 11
        rep = pusher.drain()
        assert (rep.indexed, rep.failed, pusher.pending()) == (11, 0, 0)
        assert pusher.drain().indexed == 0                      # exactly once
    finally:
        pusher.close()


def test_readers_of_a_store_in_postgresql_say_what_is_wrong(store_url):
    """New arrivals on a store no ingest has made yet: none; on a server that is away:
    BackendUnavailable (the search route's diagnostic 1), never another exception."""
    import asyncio

    from indexers.backend import BackendUnavailable
    from indexers.store import StoreArrivals

    assert asyncio.run(StoreArrivals(store_url).added_since("iizuka", 0.0)) == []
    port = free_port()
    away = StoreArrivals(f"postgresql://someone:s3cret@127.0.0.1:{port}/catalog")
    with pytest.raises(BackendUnavailable) as err:
        asyncio.run(away.added_since("iizuka", 0.0))
    assert "someone:***@" in str(err.value) and "s3cret" not in str(err.value)


def _isbn13(n: int) -> str:
    body = f"978400{n:06d}"
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    return body + str(check)


def _rows_with_ids(conn) -> dict:
    out = {}
    for name, sql in (
            ("source", "SELECT id, library, local_id, union_id, digest, run_id, titles FROM source ORDER BY id"),
            ("union_rec", "SELECT id FROM union_rec ORDER BY id"),
            ("matchkey", "SELECT key, library, union_id, source_id FROM matchkey ORDER BY source_id, key"),
            ("union_gone", "SELECT union_id, library FROM union_gone ORDER BY union_id, library"),
            ("display", "SELECT union_id, iso FROM display ORDER BY union_id"),
            ("es_outbox", "SELECT union_id FROM es_outbox ORDER BY union_id"),
            ("run", "SELECT id, library, counts FROM run ORDER BY id")):
        out[name] = _rows(conn, sql)
    return out


@pytest.mark.parametrize("batch", [1000, 3])
def test_windows_of_records_give_the_same_rows_and_ids_as_record_by_record(tmp_path, store_url, es_cfg,
                                                                             monkeypatch, batch):
    """On PostgreSQL an ingest reads a window's look-ups at once, defers its writes and
    reserves its ids (indexers/store_batch.py); the rows, ids included, are those SQLite's
    statements one record at a time give: with a record twice in one window (added, then
    changed), two records of one library matching one union record (the second may not join
    it once the first has), a deletion inside the window, records that create no union
    record (their reserved ids given back), and windows cut by batches of 3."""
    import indexers.ingest
    from catalog_builder import df, rec, write

    monkeypatch.setattr(indexers.ingest, "BATCH", batch)
    shared, other = _isbn13(1), _isbn13(2)
    other_lib = [rec("y1", title="Shared work", fields=[df("020", a=shared)]),
                 rec("y2", title="Other work", fields=[df("020", a=other)]),
                 rec("y3", title="Third work", fields=[df("020", a=_isbn13(3))])]
    first = [rec("x1", title="Shared work", fields=[df("020", a=shared)]),
             rec("x2", title="Shared work", fields=[df("020", a=shared)]),
             rec("x3", title="Other work", fields=[df("020", a=other)]),
             rec("x4", title="Alone"),
             rec("x1", title="Shared work", subtitle="revised", fields=[df("020", a=shared)]),
             rec("x3", title="Other work", leader5="d"),
             rec("x5", title="Other work", fields=[df("020", a=other)]),
             rec("x6", title="Third work", fields=[df("020", a=_isbn13(3))])]
    again = [rec("x2", title="Shared work", fields=[df("020", a=shared)]),
             rec("x5", title="Other work", subtitle="second edition", fields=[df("020", a=other)]),
             rec("x7", title="Shared work", fields=[df("020", a=shared)]),
             rec("x8", title="New alone")]
    pictures = []
    for where, url in (("sqlite", None), ("pg", store_url)):
        d = tmp_path / where
        cfg = EsConfig(urls=es_cfg.urls, index=f"{es_cfg.index}-{where}", request_timeout=20.0)
        counts = []
        for lib, records, full in (("komae", other_lib, False), ("iizuka", first, False),
                                   ("iizuka", again, True)):
            res = ingest(d, lib, [write(tmp_path / f"{where}-{lib}-{len(counts)}.mrc", records)], quiet=True,
                         es=cfg, store_url=url, workers=0, full=full)
            assert res.error is None and res.index_pending == 0, (res.error, res.index_error)
            counts.append(res.counts.as_dict())
        conn = PgConnection(url) if url else sqlite3.connect(d / "catalog.sqlite")
        try:
            pictures.append((counts, _rows_with_ids(conn)))
        finally:
            conn.close()
    (sqlite_counts, sqlite_rows), (pg_counts, pg_rows) = pictures
    assert pg_counts == sqlite_counts
    for name in sqlite_rows:
        assert pg_rows[name] == sqlite_rows[name], name
    assert sqlite_counts[1]["merged"] >= 2 and sqlite_counts[1]["updated"] == 1
    assert sqlite_counts[1]["withdrawn"] == 1 and sqlite_counts[2]["withdrawn"] >= 3
    unions_of = {}
    for _sid, lib, lid, uid, *_ in sqlite_rows["source"]:
        unions_of[(lib, lid)] = uid
    assert unions_of[("iizuka", "x2")] != unions_of[("komae", "y1")]     # x1 joined it first
