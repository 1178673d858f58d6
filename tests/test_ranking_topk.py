"""indexers/ranking.py: the first pages of a one-field word query ranked without
FTS5 scoring every hit are exactly FTS5's ``ORDER BY bm25(...), rowid`` -- on every
prefix, across page boundaries, with ties (records of equal length) and records
where the word occurs twice or more -- and what the catalog and SRU hand out is
unchanged."""
from __future__ import annotations

import random

import pytest

from catalog_builder import df, rec, write
from indexers import ranking as rk
from indexers.backends import sqlite_index as si
from indexers.backends.sqlite_index import SqliteCatalog
from indexers.ingest import db_path, ingest
from sru.cql import parse_cql

WORDS = "history art music war peace river city law school church ocean garden".split()
QUERIES = ["dc.title=history", "dc.title=war", "dc.subject=history", "dc.creator=smith", "dc.publisher=press",
           "dc.title=ocean", "dc.title all history", "dc.subject=law"]


def corpus(n: int = 700, seed: int = 18):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        # short titles of a few lengths: many ties in length; some with a word twice or three times
        words = [rnd.choice(WORDS) for _ in range(rnd.choice([1, 2, 2, 3, 3, 3, 5, 8]))]
        subj = [df("650", " 0", a=rnd.choice(WORDS).title(), x=rnd.choice(["History.", "Art.", "Law."]))
                for _ in range(rnd.choice([0, 1, 2, 3]))]
        creator = [df("100", "1 ", a=rnd.choice(["Smith, John", "Smith, Smith", "Brown, Ann"]))] if i % 3 else []
        # notes of some records long enough to keep them out of post (rk.POST_MAX_DL)
        nwords = rnd.randint(0, 12) if i % 4 else rnd.randint(15, 40)
        notes = [df("500", a=" ".join(rnd.choice(WORDS) for _ in range(nwords)) or "none")]
        pub = [df("264", " 1", b=rnd.choice(["Press Press", "City Press", "Law"]))] if i % 2 else []
        out.append(rec(f"r{i}", title=" ".join(words), year=str(1950 + i % 60),
                       fields=subj + creator + notes + pub))
    return out


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    d = tmp_path_factory.mktemp("topk")
    ingest(d, "a", [write(d / "a.mrc", corpus())], quiet=True)
    c = SqliteCatalog(db_path(d))
    yield c
    c.close()


def full_ranking(cat, cql: str) -> list[int]:
    res = cat.search_sync(parse_cql(cql, cat.config))
    h = res.handle
    return [r[0] for r in cat._conn().execute(h.order_sql, h.order_params)]


@pytest.mark.parametrize("cql", QUERIES)
@pytest.mark.parametrize("max_skip", [rk.MAX_SKIP, 0])   # repeated-word hits skipped in Python / in SQL
def test_every_prefix_is_fts5s_ranking(cat, cql, max_skip, monkeypatch):
    monkeypatch.setattr(rk, "MAX_SKIP", max_skip)
    res = cat.search_sync(parse_cql(cql, cat.config))
    assert res.handle.fast is not None, "a one-field word query is ranked by indexers/ranking.py"
    full = full_ranking(cat, cql)
    assert len(full) == res.total > 0
    for n in range(1, len(full) + 1):
        assert rk.top(cat._conn(), res.handle.fast, n, res.total, len(cat.writer.text_fields)) == full[:n], n


def test_pages_across_boundaries_equal_the_full_ranking(cat, monkeypatch):
    """Results larger than MATERIALIZE are paged lazily: every page, and one beyond
    the end, is the slice of the full ranking."""
    monkeypatch.setattr(si, "MATERIALIZE", 5)
    for cql in ("dc.title=history", "dc.subject=history", "dc.creator=smith"):
        res = cat.search_sync(parse_cql(cql, cat.config))
        assert res.ids is None and res.handle.fast is not None
        full = full_ranking(cat, cql)
        for start in (0, 1, 9, 10, 11, len(full) - 3, len(full) - 1, len(full), len(full) + 5):
            for count in (1, 10, 7):
                assert cat.page_sync(res, start, count) == full[start: start + count], (cql, start, count)


def test_the_scores_are_fts5s_to_the_bit(cat):
    """score() in FTS5's floating-point operations gives bm25()'s doubles."""
    conn = cat._conn()
    res = cat.search_sync(parse_cql("dc.title=history", cat.config))
    q = res.handle.fast
    nrow, ntok = rk.averages(conn, len(cat.writer.text_fields))
    avgdl = float(ntok) / float(nrow)
    idfs = [rk.idf(nrow, res.total)]
    reps = dict(conn.execute("SELECT union_id, tf FROM rep WHERE field='title' AND token='history'"))
    assert {2, 3} <= set(reps.values())
    got = conn.execute(f"SELECT rowid, bm25(ft, {cat._weights()}), (SELECT dl FROM dlen WHERE union_id=ft.rowid)"
                       " FROM ft WHERE ft MATCH ?", (q.expr,)).fetchall()
    for uid, bm25, dl in got:
        assert rk.score(idfs, [sum([q.weight] * reps.get(uid, 1))], dl, avgdl) == bm25


def test_lengths_are_fts5s_document_sizes(cat):
    conn = cat._conn()
    ncols = len(cat.writer.text_fields)
    assert conn.execute("SELECT COUNT(*) FROM dlen").fetchone() == conn.execute("SELECT COUNT(*) FROM doc").fetchone()
    for uid, sz, dl in conn.execute("SELECT id, sz, dl FROM ft_docsize JOIN dlen ON union_id = id"):
        i, total = 0, 0
        for _ in range(ncols):
            v, i = rk._varint(sz, i)
            total += v
        assert dl == total, uid


@pytest.mark.parametrize("cql", ["dc.title=\"history war\"", "dc.title=hist*", "cql.serverChoice=history",
                                 "dc.title=history or dc.title=war", "dc.title=history and dc.subject=art",
                                 "dc.title any \"history war\"", "dc.title=history sortby dc.date",
                                 "dc.title all \"history war\"", "dc.title all \"history history\""])
def test_other_queries_are_ranked_by_fts5(cat, cql):
    assert cat.search_sync(parse_cql(cql, cat.config)).handle.fast is None


def test_updates_and_deletes_keep_the_repeated_words(tmp_path):
    """Re-ingesting changed records replaces their rows in rep (and their lengths)."""
    recs = corpus(60, seed=3)
    ingest(tmp_path, "a", [write(tmp_path / "a.mrc", recs)], quiet=True, full=True)
    changed = [rec(r["001"].data, title="history history history of everything", year="1999") for r in recs[:20]]
    ingest(tmp_path, "a", [write(tmp_path / "b.mrc", changed + recs[20:40])], quiet=True, full=True)
    c = SqliteCatalog(db_path(tmp_path))
    try:
        conn = c._conn()
        want = set()
        for uid, *cols in conn.execute(f"SELECT rowid, {', '.join(c.writer.text_fields)} FROM ft"):
            dl, reps = rk.doc_stats(c.writer.text_fields, cols)
            want |= {(f, t, n, dl, uid) for f, t, n in reps}
            assert conn.execute("SELECT dl FROM dlen WHERE union_id=?", (uid,)).fetchone()[0] == dl
        assert set(conn.execute("SELECT field, token, tf, dl, union_id FROM rep")) == want
        assert ("title", "history", 3) in {(f, t, n) for f, t, n, _d, _u in want}
        for cql in ("dc.title=history", "dc.title=everything"):
            res = c.search_sync(parse_cql(cql, c.config))
            assert res.handle.fast is not None
            assert res.ids == full_ranking(c, cql)
    finally:
        c.close()


def test_a_catalog_of_the_former_format_is_ranked_by_fts5(tmp_path):
    import sqlite3

    ingest(tmp_path, "a", [write(tmp_path / "a.mrc", corpus(30))], quiet=True)
    conn = sqlite3.connect(db_path(tmp_path))
    with conn:
        conn.execute("UPDATE meta SET value='2.old' WHERE key='index_format'")
    conn.close()
    c = SqliteCatalog(db_path(tmp_path))
    try:
        res = c.search_sync(parse_cql("dc.title=history", c.config))
        assert res.handle.fast is None and res.ids == full_ranking(c, "dc.title=history")
        res = c.search_sync(parse_cql("dc.date>=1950 and dc.date<=1960", c.config))
        assert "DISTINCT" in res.handle.set_sql     # not known to be single-valued: counted distinct
    finally:
        c.close()


def test_a_rebuild_leaves_the_full_text_index_merged(tmp_path):
    """A rebuild writes every document again; the full-text index is merged afterwards
    (an explicit merge finds nothing left to do), or searches would read every word's
    old entries too."""
    import sqlite3

    ingest(tmp_path, "a", [write(tmp_path / "a.mrc", corpus(60))], quiet=True)
    conn = sqlite3.connect(db_path(tmp_path))
    with conn:
        conn.execute("UPDATE meta SET value='2.old' WHERE key='index_format'")
    conn.close()
    ingest(tmp_path, "b", [write(tmp_path / "none.mrc", [])], quiet=True)      # rebuilds the 60
    conn = sqlite3.connect(db_path(tmp_path))
    try:
        assert conn.execute("SELECT value FROM meta WHERE key='index_format'").fetchone()[0] != "2.old"
        blocks = conn.execute("SELECT COUNT(*), SUM(LENGTH(block)) FROM ft_data").fetchone()
        conn.execute("INSERT INTO ft(ft) VALUES('optimize')")
        assert conn.execute("SELECT COUNT(*), SUM(LENGTH(block)) FROM ft_data").fetchone() == blocks
    finally:
        conn.close()
    c = SqliteCatalog(db_path(tmp_path))
    try:
        assert c.search_sync(parse_cql("dc.title=history", c.config)).ids == full_ranking(c, "dc.title=history")
    finally:
        c.close()


def test_single_valued_number_ranges_skip_distinct_and_count_the_same(cat):
    res = cat.search_sync(parse_cql("dc.date>=1960 and dc.date<=1979", cat.config))
    assert "DISTINCT" not in res.handle.set_sql
    n = cat._conn().execute("SELECT COUNT(DISTINCT union_id) FROM num WHERE field='date'"
                            " AND value BETWEEN 1960 AND 1979").fetchone()[0]
    assert res.total == n > 0


def test_fts_tokens_cut_and_fold_as_fts5s_ascii_tokenizer():
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='ascii')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    texts = [f"ab{chr(c)}cd x{chr(c)}" for c in range(1, 128)] + ["Ab\u3000Cd \ue000 東京 o'brien", "  two  spaces "]
    for i, text in enumerate(texts, 1):
        conn.execute("INSERT INTO t(rowid, a) VALUES (?, ?)", (i, text))
        want = [r[0] for r in conn.execute("SELECT term FROM v WHERE doc=? ORDER BY offset", (i,))]
        assert rk.fts_tokens(text) == want, repr(text)


def test_a_word_with_readings_is_ranked_here_until_a_record_has_the_reading(tmp_path):
    """``women`` is also read as romaji (おめん): while no record has that reading in
    the field the ranking is the word's; once one has, FTS5 ranks (more terms)."""
    recs = [rec(f"w{i}", title=" ".join(["women"] * (1 + i % 3) + ["of"] * (i % 5)), year="2000")
            for i in range(40)]
    ingest(tmp_path, "a", [write(tmp_path / "a.mrc", recs)], quiet=True)
    c = SqliteCatalog(db_path(tmp_path))
    try:
        res = c.search_sync(parse_cql("dc.title=women", c.config))
        assert res.handle.fast is not None and res.handle.fast.others is not None
        assert rk.top(c._conn(), res.handle.fast, res.total, res.total, 5) == full_ranking(c, "dc.title=women")
        assert res.ids == full_ranking(c, "dc.title=women")
    finally:
        c.close()
    ingest(tmp_path, "b", [write(tmp_path / "b.mrc", [rec("j1", title="おめん", lang="jpn")])], quiet=True)
    c = SqliteCatalog(db_path(tmp_path))
    try:
        res = c.search_sync(parse_cql("dc.title=women", c.config))
        assert res.total == 41
        assert rk.top(c._conn(), res.handle.fast, res.total, res.total, 5) is None
        assert res.ids == full_ranking(c, "dc.title=women")
    finally:
        c.close()


def test_document_lengths_count_fts5s_tokens_in_every_column():
    """doc_stats counts a plain column by its spaces and splits the others: both as
    FTS5's ascii tokenizer."""
    rnd = random.Random(7)
    pieces = ["ab", "C", "x-y", " ", "  ", "\ue000", "東", "o'b", "9", ":", "\t"]
    for _ in range(5000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        for field in ("notes", "title"):
            assert rk.doc_stats([field], [text])[0] == len(rk._FTS_TOKEN.findall(text.translate(rk._LOWER))), text


def post_rows_wanted(conn, fields) -> set:
    """post as the writer's rule makes it from every stored document."""
    want = set()
    for uid, *cols in conn.execute(f"SELECT rowid, {', '.join(fields)} FROM ft"):
        dl, _reps, once = rk.doc_rows(fields, cols)
        want |= {(f, t, dl, uid) for f, t in once}
    return want


def test_short_records_words_come_from_post_without_the_join(cat, monkeypatch):
    """While ``post`` holds n hits of the word's tf = 1 class, the first n are read
    from it (the join over all hits is not run) and are still FTS5's ranking; beyond
    that the join answers."""
    conn = cat._conn()
    fields = cat.writer.text_fields
    assert set(conn.execute("SELECT field, token, dl, union_id FROM post")) == post_rows_wanted(conn, fields)
    assert conn.execute("SELECT MAX(dl) FROM post").fetchone()[0] <= rk.POST_MAX_DL
    assert conn.execute("SELECT MAX(dl) FROM dlen").fetchone()[0] > rk.POST_MAX_DL   # some records are not in it
    joined = rk._once_joined
    calls = []
    monkeypatch.setattr(rk, "_once_joined", lambda *a: calls.append(a[3]) or joined(*a))
    for cql, field, tok in (("dc.title=history", "title", "history"), ("dc.subject=law", "subject", "law")):
        res = cat.search_sync(parse_cql(cql, cat.config))
        full = full_ranking(cat, cql)
        short = conn.execute("SELECT COUNT(*) FROM post WHERE field=? AND token=?", (field, tok)).fetchone()[0]
        assert 10 < short < len(full)
        for n in (1, 10, short, short + 1, len(full)):
            calls.clear()
            assert rk.top(conn, res.handle.fast, n, res.total, len(fields)) == full[:n], (cql, n)
            assert calls == ([] if n <= short else [n]), (cql, n)


def test_post_follows_updates_withdrawals_and_merges(tmp_path):
    """Changed, withdrawn and merged records (union ids gone, documents rebuilt)
    leave post exactly what the documents make, and the ranking FTS5's."""
    recs = corpus(80, seed=5)
    lccn = [rec(f"m{i}", title="history of war", fields=[df("010", a=f"8500{i:04d}")]) for i in range(6)]
    ingest(tmp_path, "a", [write(tmp_path / "a.mrc", recs + lccn)], quiet=True, full=True)
    changed = [rec(r["001"].data, title="history", year="1999") for r in recs[:15]]          # now short
    longer = [rec(r["001"].data, title=" ".join(["war history"] + WORDS * 3), year="1999") for r in recs[15:25]]
    gone = [rec(r["001"].data, title="x", leader5="d") for r in recs[25:30]]
    ingest(tmp_path, "a", [write(tmp_path / "b.mrc", changed + longer + gone + recs[30:] + lccn)], quiet=True)
    # another library's records with the same LCCN merge into the union records of "a"
    other = [rec(f"o{i}", title="history history of the war", fields=[df("010", a=f"8500{i:04d}")])
             for i in range(4)]
    counts = ingest(tmp_path, "b", [write(tmp_path / "c.mrc", other)], quiet=True)
    c = SqliteCatalog(db_path(tmp_path))
    try:
        conn = c._conn()
        assert len(list(conn.execute("SELECT 1 FROM union_rec"))) == 80 - 5 + 6, counts
        assert set(conn.execute("SELECT field, token, dl, union_id FROM post")) == \
            post_rows_wanted(conn, c.writer.text_fields)
        for cql in ("dc.title=history", "dc.title=war", "dc.subject=history", "dc.title=everything"):
            res = c.search_sync(parse_cql(cql, c.config))
            full = full_ranking(c, cql)
            assert res.handle.fast is not None and len(full) == res.total
            for n in range(1, len(full) + 1):
                assert rk.top(conn, res.handle.fast, n, res.total, len(c.writer.text_fields)) == full[:n], (cql, n)
    finally:
        c.close()


def test_a_fast_set_on_a_catalog_of_another_format_is_paged_by_fts5(tmp_path, monkeypatch):
    """A result set that carries the fast ranking (e.g. a shared one, made before the
    catalog's format changed) is paged by FTS5 when the index is not of this format."""
    import sqlite3

    monkeypatch.setattr(si, "MATERIALIZE", 5)
    ingest(tmp_path, "a", [write(tmp_path / "a.mrc", corpus(60))], quiet=True)
    c = SqliteCatalog(db_path(tmp_path))
    try:
        res = c.search_sync(parse_cql("dc.title=history", c.config))
        assert res.ids is None and res.handle.fast is not None
        full = full_ranking(c, "dc.title=history")
        conn = sqlite3.connect(db_path(tmp_path))
        with conn:
            conn.execute("UPDATE meta SET value='2.old' WHERE key='index_format'")
            conn.execute("UPDATE meta SET value=value || 'x' WHERE key='generation'")
            conn.execute("DROP TABLE post")
        conn.close()
        assert c.page_sync(res, 0, 10) == full[:10] and c.page_sync(res, 3, 7) == full[3:10]
    finally:
        c.close()
