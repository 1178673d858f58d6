"""The OPAC's search form as data (gateway/web/search_form.py) and the new arrivals limit's
window (search/arrivals.py): pure functions, no service."""
from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from multidict import MultiDict

from gateway.web import search_form as sf
from indexers.query_model import Boolean, Clause, QueryError, SortKey
from search.arrivals import window

FACETS = {"library": "bath.possessingInstitution", "material": "local.material", "language": "dc.language",
          "date": "dc.date"}
TODAY = date(2026, 11, 20)


def leaves(node):
    if isinstance(node, Boolean):
        yield from leaves(node.left)
        yield from leaves(node.right)
    else:
        yield node


def query(**params):
    pairs = [(k, x) for k, v in params.items() for x in (v if isinstance(v, list) else [v])]
    form = sf.parse(MultiDict(pairs), tuple(FACETS))
    return form, sf.to_query(form, FACETS, TODAY)


def test_the_one_box_is_all_words_of_server_choice_and_an_isbn_is_also_an_identifier():
    _, q = query(q="吾輩 猫")
    assert q.root == Clause("cql.serverChoice", "all", "吾輩 猫") and q.sort == () and q.ranked
    _, q = query(q="978-4-00-310101-8")
    assert q.root == Boolean("or", Clause("cql.serverChoice", "all", "978-4-00-310101-8"),
                             Clause("dc.identifier", "=", "9784003101018"))


def test_quotes_make_a_phrase_and_an_unbalanced_one_is_dropped_and_named():
    form, q = query(q='"library science" basics')
    assert list(leaves(q.root)) == [Clause("cql.serverChoice", "adj", "library science"),
                                    Clause("cql.serverChoice", "all", "basics")]
    assert form.problems == ()
    form, q = query(q='"library science')
    assert form.problems == ("quotes",) and q.root == Clause("cql.serverChoice", "all", "library science")


def test_what_is_typed_cannot_change_the_querys_shape():
    _, q = query(q='a) or dc.title=x and "b', title="x? y\\ *z*")
    for leaf in leaves(q.root):
        assert isinstance(leaf, Clause) and leaf.index in ("cql.serverChoice", "dc.title")
    title = next(c for c in leaves(q.root) if c.index == "dc.title")
    assert title.term == "x\\? y\\\\ *z*"                       # ? and \\ literal, * a truncation at the ends


def test_the_advanced_fields_each_become_one_clause_anded():
    _, q = query(title="猫", author="漱石", subject="文学", publisher="岩波", isbn="4-00-310101-X", year_from="1900",
                 year_to="1910", library="iizuka", branch="穂波*", material="book", language="jpn",
                 available="honami", new="komae", days="7", f=["material:book", "date:1905"], sort="newest")
    got = list(leaves(q.root))
    assert got == [
        Clause("dc.title", "all", "猫"), Clause("dc.creator", "all", "漱石"), Clause("dc.subject", "all", "文学"),
        Clause("dc.publisher", "all", "岩波"), Clause("dc.identifier", "=", "400310101X"),
        Clause("dc.date", ">=", "1900"), Clause("dc.date", "<=", "1910"),
        Clause("bath.possessingInstitution", "==", "iizuka"), Clause("bath.possessingInstitution", "==", "穂波\\*"),
        Clause("local.material", "==", "book"), Clause("dc.language", "==", "jpn"),
        Clause("local.available", "=", "honami"), Clause("local.added", ">=", "komae 2026-11-13"),
        Clause("local.material", "==", "book"), Clause("dc.date", "=", "1905")]
    assert q.sort == (SortKey("date", False, "lowValue"), SortKey("title", True))


def test_available_names_a_branch_or_every_branch_of_a_system():
    systems = {"iizuka": ("iizuka", "honami", "chikuho")}
    for value, clause in (("iizuka", Clause("local.available", "=", "iizuka")),       # the branch 飯塚図書館
                          ("all:iizuka", Clause("local.available", "any", "iizuka honami chikuho")),
                          ("honami", Clause("local.available", "=", "honami"))):
        form = sf.parse(MultiDict(available=value), ())
        assert sf.to_query(form, FACETS, TODAY, systems).root == clause, value
    assert sf.parse(MultiDict(available="all:../x"), ()).problems == ("available",)


def test_bad_values_are_dropped_and_named_never_raised():
    form = sf.parse(MultiDict(q="x", p="99999999999", sort="x", mode="grid", per="7", year_from="19a0",
                              material="ufo", language="english", library="../x", f="nope:1"), tuple(FACETS))
    assert set(form.problems) == {"p", "sort", "mode", "per", "year_from", "material", "language", "library", "f"}
    assert (form.page, form.sort, form.mode, form.per, form.year_from, form.library) == (1, "relevance", "card", 20,
                                                                                         "", "")
    assert sf.to_query(sf.parse(MultiDict(), ()), FACETS, TODAY) is None      # nothing to search for


def test_urls_keep_the_search_and_go_back_to_page_one():
    form = sf.parse(MultiDict(q="猫", p="3", f="material:book", mode="list"), tuple(FACETS))
    assert sf.url(form, sort="title") == "/search?q=%E7%8C%AB&f=material%3Abook&sort=title&mode=list"
    assert "p=4" in sf.url(form, page=4)
    assert "f=" not in sf.url(form, drop_f=("material", "book"))
    assert sf.parse(MultiDict(sf.params(form)), tuple(FACETS)) == form     # a URL reads back as the same form


def test_the_new_arrivals_window_counts_days_of_the_zone_given():
    tokyo = ZoneInfo("Asia/Tokyo")
    lib, since = window(Clause("local.added", ">=", "iizuka 2026-11-01"), zone=tokyo)
    assert lib == "iizuka" and since == datetime(2026, 11, 1, tzinfo=tokyo).timestamp()
    _, after = window(Clause("local.added", ">", "iizuka 2026-11-01"), zone=timezone.utc)
    assert after == datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()
    noon = datetime(2026, 11, 20, 12, tzinfo=timezone.utc).timestamp()
    _, default = window(Clause("local.added", "=", "iizuka"), clock=lambda: noon, zone=timezone.utc)
    assert default == datetime(2026, 10, 21, tzinfo=timezone.utc).timestamp()      # the last 30 days
    for relation, term, code in (("<", "iizuka 2026-11-01", 19), (">=", "iizuka", 36), (">=", "iizuka 2026-13-01", 36),
                                 (">=", "iiz* x", 28), ("=", "iizuka 2026-11-01", 19)):
        bad = Clause("local.added", relation, term)
        with pytest.raises(QueryError) as e:
            window(bad)
        assert e.value.code == code, bad


def test_a_cards_branch_summary_prefers_copies_in_and_names_the_system_of_a_shared_branch_name():
    from circulation.availability_view import CopyStatus
    from gateway.web import record_view as rv
    from indexers.records import Holding
    from search.availability import HoldingStatus

    def hs(library, branch, status, due=None, barcode="b"):
        c = CopyStatus(title_id="t", barcode=barcode, library=library, branch=branch, branch_name="中央図書館",
                       location="", call_number="", material_type="book", status=status, due=due)
        return HoldingStatus(Holding(library, "x", "中央図書館", "", "", barcode), c, 2)

    statuses = [hs("iizuka", "iizuka", "on_loan", date(2026, 12, 4)),
                hs("iizuka", "iizuka", "on_loan", date(2026, 12, 1)), hs("komae", "komae-central", "available"),
                HoldingStatus(Holding("komae", "y", "西", "", "", "z"))]
    summary, unknown = rv.branch_summary(statuses, "ja")
    assert unknown == 1
    assert [(b.place, b.status, b.available, b.copies, b.text) for b in summary] == [
        ("中央図書館（狛江市立図書館）", "available", 1, 1, "在架"),
        ("中央図書館（飯塚市立図書館）", "on_loan", 0, 2, "貸出中（返却予定日 2026-12-01）")]      # the earliest due
    assert rv.reservations_text(statuses, "en") == "2 reservation(s)"
