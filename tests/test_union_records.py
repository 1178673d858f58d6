"""Union records (SEARCH_SEMANTICS.md "Union records"): merge rules, one
library's records never merged, re-ingest, withdrawals, both 880 conventions."""
from __future__ import annotations

import pytest

from catalog_builder import BACKENDS, PG_STORE, backend_fixture, df, rec


@pytest.fixture(params=[*BACKENDS, PG_STORE])   # the record store in SQLite and in PostgreSQL
def cat(request, tmp_path):
    c = backend_fixture(request, tmp_path)
    yield c
    c.close()


def holdings_of(cat, cql):
    out = []
    for r in cat.fetch(cat.ids(cql)):
        out.append(sorted((h.library, h.branch) for h in r.holdings))
    return out


def ndl(local_id, isbn="9784004310013", **kw):
    """NDL JAPAN/MARC convention: kanji in 245, reading in the linked 880."""
    return rec(local_id, lang="jpn", fields=[
        df("020", a=isbn), df("245", "10", _6="880-01", a="図書館の歴史"),
        df("880", "10", _6="245-01/$1", a="トショカン ノ レキシ"), df("852", b="中央図書館", h="010.2")], **kw)


def loc(local_id, isbn="4-00-431001-0"):
    """Library of Congress convention: romanized 245, kanji in the linked 880."""
    return rec(local_id, lang="jpn", fields=[
        df("020", a=isbn), df("245", "10", _6="880-01", a="Toshokan no rekishi /"),
        df("880", "10", _6="245-01/$1", a="圖書館の歴史 /"), df("852", b="East Library", h="Z721"),
        # hiroshima-u exports Koha-style items (config/libraries.toml); others read 852
        df("952", a="East Library", o="Z721")])


def test_same_title_from_two_libraries_in_the_two_880_conventions_is_one_hit_with_two_holdings(cat):
    cat.load("iizuka", [ndl("iz1")])
    counts = cat.load("hiroshima-u", [loc("hu1")])
    assert counts.merged == 1
    for q in ("dc.title=図書館の歴史", "dc.title=toshokan", "dc.title=トショカン", "bath.isbn=9784004310013"):
        assert holdings_of(cat, q) == [[("hiroshima-u", "East Library"), ("iizuka", "中央図書館")]], q


def test_merge_by_lccn(cat):
    cat.load("a", [rec("x1", title="Alpha", fields=[df("010", a="  85000002 ")])])
    cat.load("b", [rec("y1", title="Completely different wording", fields=[df("010", a="85000002")])])
    assert len(cat.ids("cql.allRecords=1")) == 1


def test_merge_by_national_bibliography_number(cat):
    cat.load("a", [rec("x1", title="Alpha", fields=[df("015", a="JP20012345", _2="jnb")])])
    cat.load("b", [rec("y1", title="Alpha", fields=[df("015", a="JP20012345", _2="jnb")])])
    assert len(cat.ids("cql.allRecords=1")) == 1


def test_isbn_match_needs_titles_to_agree(cat):
    cat.load("a", [rec("x1", title="Alpha beta", fields=[df("020", a="9780306406157")])])
    cat.load("b", [rec("y1", title="Gamma delta", fields=[df("020", a="0306406152")])])
    assert len(cat.ids("cql.allRecords=1")) == 2
    cat.load("c", [rec("z1", title="Alpha beta :", subtitle="a subtitle", fields=[df("020", a="0306406152")])])
    assert len(cat.ids("cql.allRecords=1")) == 2
    assert holdings_of(cat, "dc.title=alpha") == [[("a", ""), ("c", "")]]


def test_records_of_one_library_are_never_merged(cat):
    vols = [rec(f"v{i}", title="Collected works",
                fields=[df("020", a="9780306406157"), df("245", "10", a="Collected works", n=f"v. {i}")])
            for i in (1, 2)]
    cat.load("a", vols)
    assert len(cat.ids("cql.allRecords=1")) == 2
    # another library's copy joins one of them, not both
    cat.load("b", [rec("w1", title="Collected works", fields=[df("020", a="9780306406157")])])
    assert len(cat.ids("cql.allRecords=1")) == 2
    assert sorted(len(h) for h in holdings_of(cat, "cql.allRecords=1")) == [1, 2]


def test_reingest_replaces_the_library_contribution(cat):
    cat.load("a", [rec("x1", title="First title", fields=[df("852", b="Main")])])
    counts = cat.load("a", [rec("x1", title="First title", fields=[df("852", b="Main")])])
    assert (counts.unchanged, counts.added, counts.updated) == (1, 0, 0)
    counts = cat.load("a", [rec("x1", title="Second title", fields=[df("852", b="West")])])
    assert counts.updated == 1
    assert cat.hits("dc.title=first") == set()
    assert holdings_of(cat, "dc.title=second") == [[("a", "West")]]
    assert len(cat.ids("cql.allRecords=1")) == 1


def test_leader_05_d_withdraws_the_holding(cat):
    cat.load("a", [ndl("iz1")])
    cat.load("b", [loc("hu1")])
    counts = cat.load("a", [ndl("iz1", leader5="d")])
    assert counts.withdrawn == 1
    assert holdings_of(cat, "dc.title=図書館の歴史") == [[("b", "East Library")]]
    counts = cat.load("b", [loc("hu1")])
    counts = cat.load("b", [rec("hu1", title="x", leader5="d")])
    assert cat.ids("dc.title=図書館の歴史") == []  # no holdings left: gone from search
    assert cat.ids("cql.allRecords=1") == []


def test_deletion_of_an_unknown_record_is_counted_not_dropped(cat):
    counts = cat.load("a", [rec("nope", title="x", leader5="d")])
    assert counts.deleted_unknown == 1 and counts.read == 1


def test_full_reload_withdraws_what_is_missing(cat):
    cat.load("a", [rec(f"x{i}", title=f"Title {w}") for i, w in enumerate(["one", "two", "three"])])
    counts = cat.load("a", [rec("x0", title="Title one"), rec("x2", title="Title three")], full=True)
    assert counts.withdrawn == 1
    assert cat.hits("dc.title=two") == set()
    assert cat.hits("dc.title=title") == {"x0", "x2"}


def test_union_record_indexes_fields_of_all_members(cat):
    cat.load("a", [rec("x1", title="Shared title",
                       fields=[df("010", a="2001000002"), df("650", " 0", a="Oceanography")])])
    cat.load("b", [rec("y1", title="Shared title",
                       fields=[df("010", a="2001000002"), df("650", " 0", a="Marine biology")])])
    assert cat.hits("dc.subject=oceanography") == cat.hits("dc.subject=marine") == {"x1", "y1"}


def test_display_record_carries_every_holding_as_852(cat):
    cat.load("iizuka", [ndl("iz1")])
    cat.load("hiroshima-u", [loc("hu1")])
    (r,) = cat.fetch(cat.ids("dc.title=図書館の歴史"))
    f852 = sorted((f.get("a"), f.get("b")) for f in r.marc.get_fields("852"))
    assert f852 == [("hiroshima-u", "East Library"), ("iizuka", "中央図書館")]


def test_display_record_drops_the_preferred_members_own_item_fields(cat):
    cat.load("hiroshima-u", [loc("hu1")])  # Koha-style 952 items (config/libraries.toml)
    cat.load("iizuka", [ndl("iz1")])
    (r,) = cat.fetch(cat.ids("dc.title=図書館の歴史"))
    assert r.marc.get_fields("952") == []
    assert sorted(f.get("a") for f in r.marc.get_fields("852")) == ["hiroshima-u", "iizuka"]


def test_possessing_institution_uses_holding_libraries(cat):
    cat.load("iizuka", [ndl("iz1")])
    cat.load("hiroshima-u", [loc("hu1")])
    assert len(cat.ids("bath.possessingInstitution=iizuka")) == 1
    assert len(cat.ids("bath.possessingInstitution=hiroshima-u")) == 1
    assert cat.ids("bath.possessingInstitution=komae") == []
