"""The OPAC's search and title pages without a browser: the real service on loopback
(tests/live_server.py) with the demo catalog ingested through the real pipeline and the
circulation seed of web_harness (吾輩は猫である on loan to Taro, Hanako waiting for it),
asked over HTTP with the form client of web_harness.

What is checked: the one box in Japanese and its hit in both result modes with the live
status; sort, facets, the advanced fields, ISBN with hyphens, 「貸出可能な資料のみ」; that
every bad value of a search URL gives a page that says what was left out (never a 500);
the title page's record and holdings with live status; reserving from the title page and
the policy engine's refusal in the patron's language; no patron data in the URLs.
"""
from __future__ import annotations

import re
import urllib.parse

import pytest

from circulation import cart, lists
from lifecycle import reasons
from log_checks import no_errors_logged
from web_harness import EMILY, LOCKED, PASSWORDS, Browserless, start_site

pytestmark = pytest.mark.usefixtures("cheap_hashing")
CAT = "吾輩は猫である"          # T2 of the seed: Taro has its one Iizuka copy, Hanako waits for it


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = start_site(tmp_path_factory.mktemp("web-search"), catalog=True)
    try:
        yield s
    finally:
        s.server.stop()


def get(site, path: str, **params):
    c = Browserless(site.base)
    return c.get(path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else ""))


def titles(text: str) -> list[str]:
    """The hit titles of a results page, in order."""
    return [re.sub(r"<[^>]+>", "", t).strip()
            for t in re.findall(r'<a href="/title/\d+"[^>]*>(.*?)</a>', text, re.DOTALL)]


def total(text: str) -> int:
    m = re.search(r'class="summary" role="status">(\d+) 件中', text) or \
        re.search(r'class="summary" role="status">(?:Showing \d+.\d+ of )?(\d+)', text)
    return int(m.group(1)) if m else 0


def warnings(text: str) -> list[str]:
    return re.findall(r'class="msg msg-warning" role="status">(.*?)</p>', text, re.DOTALL)


def title_link(site, query: str) -> str:
    page = get(site, "/search", q=query)
    m = re.search(r'<a href="(/title/\d+)">', page.text)
    assert m, page.text[:2000]
    return m.group(1)


# --------------------------------------------------------------------------- results

def test_the_one_box_in_japanese_finds_the_title_with_its_live_status(site):
    page = get(site, "/search", q="猫")
    assert page.status == 200 and '<html lang="ja"' in page.text
    assert titles(page.text) == [CAT] and total(page.text) == 1
    assert "カード表示" in page.text and 'class="cover"' in page.text     # the card mode, a cover placeholder
    assert "貸出中（返却予定日" in page.text and "飯塚図書館" in page.text   # Taro's loan, live, per branch
    assert "予約 1 件" in page.text                                      # Hanako's hold
    # the reading and the romanized title find it too (search semantics: kana, romaji)
    assert titles(get(site, "/search", q="ワガハイ").text) == [CAT]


def test_the_list_mode_is_one_line_a_title_without_status(site):
    page = get(site, "/search", q="図書館", mode="list")
    assert page.status == 200
    lines = re.findall(r'<li class="hit-line">(.*?)</li>', page.text, re.DOTALL)
    assert len(lines) == total(page.text) >= 3
    assert "貸出中" not in page.text and 'class="cover"' not in page.text


def _years(text: str) -> list[int]:
    return [int(y) for y in re.findall(r"，(\d{4})</span>", text)]


def test_sort_orders(site):
    newest = _years(get(site, "/search", q="図書館", mode="list", sort="newest").text)
    assert len(newest) >= 3 and newest == sorted(newest, reverse=True)
    oldest = _years(get(site, "/search", q="図書館", mode="list", sort="oldest").text)
    assert oldest == sorted(oldest) and sorted(oldest) == sorted(newest)
    by_title = titles(get(site, "/search", q="introduction", mode="list", sort="title").text)
    assert by_title == ["Introduction to algorithms", "Introduction to information retrieval"]


def test_facets_narrow_the_search_and_can_be_removed(site):
    page = get(site, "/search", q="図書館")
    n = total(page.text)
    for facet in ("所蔵館", "資料種別", "言語", "出版年"):
        assert f">{facet}</h3>" in page.text, facet
    year_link = re.search(r'href="(/search\?[^"]*f=date%3A2001[^"]*)"', page.text)
    assert year_link, "the year 2001 facet"
    narrowed = Browserless(site.base).get(year_link.group(1).replace("&amp;", "&"))
    assert titles(narrowed.text) == ["図書館の歴史"] and total(narrowed.text) < n
    assert "絞り込み中の条件" in narrowed.text
    lib = get(site, "/search", q="library", f="library:komae")
    assert total(lib.text) >= 1
    assert total(get(site, "/search", q="indexing", f="library:iizuka").text) == 0
    assert total(get(site, "/search", q="indexing", f="library:komae").text) == 1


def test_advanced_fields_build_the_same_query_model(site):
    adv = get(site, "/search/advanced")
    assert adv.status == 200
    for field in ("title", "author", "subject", "publisher", "isbn", "year_from", "year_to", "library", "branch",
                  "material", "language", "available"):
        assert f'name="{field}"' in adv.text, field
    assert titles(get(site, "/search", title="猫", adv="1").text) == [CAT]
    assert titles(get(site, "/search", author="漱石").text) == [CAT]
    assert titles(get(site, "/search", subject="日本文学").text) == [CAT]
    assert CAT in titles(get(site, "/search", publisher="岩波書店").text)
    assert titles(get(site, "/search", isbn="978-4-00-310101-8").text) == [CAT]
    assert titles(get(site, "/search", q="978-4-00-310101-8").text) == [CAT]        # an ISBN in the one box
    both = titles(get(site, "/search", year_from="1800", year_to="1910", language="jpn", mode="list",
                      sort="oldest").text)
    assert both == ["學問のすゝめ", CAT]
    assert titles(get(site, "/search", q="history", language="eng", material="book", library="komae",
                      mode="list", sort="title").text) == ["A history of libraries in the western world",
                                                           "Tokyo: a cultural history"]


def test_the_available_limit_follows_the_circulation_database(site):
    # Taro has the Iizuka copy of the cat: not in at the Iizuka library; 學問のすゝめ's is lent to Emily too
    assert total(get(site, "/search", q="猫", available="iizuka").text) == 0
    assert total(get(site, "/search", q="猫", available="all:iizuka").text) == 0
    assert total(get(site, "/search", q="猫").text) == 1
    # 本を読む本's copy (the demo catalog calls that ISBN 日本の図書館) is in at the 飯塚図書館 branch:
    # found there and in the whole system, not at 穂波
    for place, found in (("all:iizuka", True), ("iizuka", True), ("honami", False), ("all:komae", False)):
        hits = titles(get(site, "/search", q="日本の図書館", available=place).text)
        assert ("日本の図書館" in hits) is found, (place, hits)
    page = get(site, "/search", q="猫")
    assert '<option value="all:iizuka">' in page.text and '<option value="iizuka">' in page.text


@pytest.mark.parametrize("params, said", [
    ({"q": '"unbalanced library'}, "引用符"),
    ({"q": "library", "p": "99999999999"}, "ページ番号"),
    ({"q": "library", "p": "-3"}, "ページ番号"),
    ({"q": "library", "sort": "garbage'; DROP"}, "並び順"),
    ({"q": "library", "mode": "grid"}, "表示方法"),
    ({"q": "library", "per": "100000"}, "表示件数"),
    ({"q": "library", "year_from": "abcd"}, "出版年"),
    ({"q": "library", "f": "nonsense:1"}, "絞り込み"),
    ({"q": "library", "material": "spaceship"}, "資料種別"),
    ({"q": "library", "library": "../../etc"}, "所蔵館"),
])
def test_bad_values_are_left_out_and_said(site, params, said, caplog):
    with no_errors_logged(caplog):
        page = get(site, "/search", **params)
    assert page.status == 200, page.text[:500]
    assert any(said in w for w in warnings(page.text)), (params, warnings(page.text))


def test_odd_queries_never_fail(site, caplog):
    with no_errors_logged(caplog):
        _odd_queries(site)


def _odd_queries(site):
    for q in ('""', '"', "\\", "*", "?", "a" * 5000, "\x00\x01", "and or not", "((", "prox/unit=word",
              "cql.serverChoice = x", "%", "図書館" * 300):
        page = get(site, "/search", q=q)
        assert page.status in (200, 422), (q, page.status, page.text[:300])
        assert "Traceback" not in page.text
    c = Browserless(site.base)
    for raw in ("q=%ED%A0%80%FF", "q=%00", "f=%FF%FE", "q=a&q=b", "p=1e9", "per=-1&p=0"):  # bytes that are not UTF-8
        page = c.get("/search?" + raw)
        assert page.status in (200, 422), (raw, page.status)
    for path in ("/search/advanced?year_from=%FF&library=%00", "/title/-1", "/title/1.5", "/title?tid=isbn:x",
                 "/new?library=%FF&days=x", "/new?library=komae&days=99999", "/ranking?x=%FF"):
        page = c.get(path)
        assert page.status in (200, 404, 422), (path, page.status)
    c.login(LOCKED)
    token = c.get("/search?q=x").csrf()
    for action, data in (("/search/chosen", {"action": "burn", "rid": "1"}), ("/search/chosen", {"action": "set"}),
                         ("/search/chosen/place", {"mode": "set", "rid": ["1", "1"]}),
                         ("/title/1/reserve", {"pickup_branch": "../x", "memo": "x" * 5000}),
                         ("/title/99999999/reserve", {"pickup_branch": "iizuka"})):
        items = [(k, x) for k, v in data.items() for x in (v if isinstance(v, list) else [v])]
        page = c.post(action, items, csrf=token)
        assert page.status in (200, 400, 404, 409, 422), (action, data, page.status)


def test_a_page_past_the_last_goes_to_the_last(site):
    page = Browserless(site.base).get("/search?q=library&p=7", follow=False)
    assert page.status in (302, 303) and "p=" not in page.headers["Location"]


def test_the_english_switch(site):
    c = Browserless(site.base)
    page = c.get("/search?q=%E7%8C%AB&lang=en")
    assert '<html lang="en"' in page.text and ">Results</h2>" in page.text
    assert "On loan (due" in page.text and ">Cards</option>" in page.text
    assert '<html lang="en"' in c.get("/title/1").text                  # the choice is kept (cookie)
    assert "引用符" not in " ".join(warnings(c.get('/search?q=%22x').text))


def test_new_arrivals_and_the_ranking(site):
    c = Browserless(site.base)
    assert c.get("/ranking").status == 200 and CAT in c.get("/ranking").text
    new = c.get("/new")
    assert new.status == 200
    page = c.get("/new?library=komae&days=30")                        # ingested today: new
    assert page.status == 200 and total(page.text) >= 1, page.text[:1000]
    assert c.get("/new?library=nowhere").status == 404


# --------------------------------------------------------------------------- the title page

def test_the_title_page_shows_the_record_and_the_live_holdings(site):
    path = title_link(site, "猫")
    page = get(site, path)
    assert page.status == 200
    assert f"<h1 id=\"title-h\">{CAT}</h1>" in page.text
    assert "ワガハイ ワ ネコ デ アル" in page.text                        # the reading
    assert "9784003101018" in page.text and "岩波書店" in page.text and "1905" in page.text
    assert 'href="/search?subject=' in page.text                         # subjects are links
    row = re.search(r"<tr>(?:(?!</tr>).)*I-T2(?:(?!</tr>).)*</tr>", page.text, re.DOTALL)
    assert row and "貸出中（返却予定日" in row.group(0) and "913.6" in row.group(0) and "飯塚図書館" in row.group(0)
    assert "予約 1 件" in page.text
    assert "/login?next=" in page.text                                 # anonymous: log in to reserve
    assert get(site, "/title/999999").status == 404
    assert get(site, "/title/abc").status == 404
    assert get(site, "/title/" + "9" * 40).status == 404


def test_a_circulation_title_id_leads_to_its_record(site):
    page = Browserless(site.base).get("/title?tid=isbn:9784003101018", follow=False)
    assert page.status in (302, 303) and re.fullmatch(r"/title/\d+", page.headers["Location"])
    assert get(site, "/title", tid="nonsense").status == 404


def test_a_patron_reserves_from_the_title_page_and_a_second_time_is_refused(site):
    c = Browserless(site.base)
    path = title_link(site, "猫")
    login = c.get("/login?next=" + urllib.parse.quote(path))
    back = c.post("/login", {"card_number": LOCKED, "password": PASSWORDS[LOCKED], "next": path},
                  csrf=login.csrf())
    assert back.url.endswith(path), back.url                        # back on the title page after logging in
    page = c.get(path)
    assert 'name="pickup_branch"' in page.text and 'name="memo"' in page.text
    cart_form = re.search(r'<form method="post" action="/my/cart/add">.*?</form>', page.text, re.DOTALL)
    assert cart_form and 'name="title_id" value="isbn:9784003101018"' in cart_form.group(0)   # 予約カートに入れる
    done = c.post(path + "/reserve", {"pickup_branch": "honami", "contact_method": "none", "memo": "急ぎません"},
                  csrf=page.csrf())
    assert done.status == 200 and done.url.endswith("/my/holds"), done.url
    assert CAT in done.text
    mine = site.server.run(lists.patron_requests(site.circ, LOCKED))
    assert [(r["title_id"], r["pickup_branch"]) for r in mine] == [("isbn:9784003101018", "honami")]
    again = c.post(path + "/reserve", {"pickup_branch": "honami", "contact_method": "none"},
                   csrf=c.get(path).csrf())
    assert again.status == 409
    said = reasons.decide("duplicate_request")                      # the policy engine's reason, in Japanese
    assert 'role="alert"' in again.text and said.message_ja in again.text
    c.get("/my?lang=en")
    refused_en = c.post(path + "/reserve", {"pickup_branch": "honami"}, csrf=c.get(path).csrf())
    assert refused_en.status == 409 and '<html lang="en"' in refused_en.text
    assert said.message_en in refused_en.text and said.message_ja not in refused_en.text
    c.get("/my?lang=ja")


def test_reserving_needs_a_login_and_the_csrf_token(site):
    path = title_link(site, "猫")
    c = Browserless(site.base)
    anon = c.post(path + "/reserve", {"pickup_branch": "iizuka"}, follow=False)
    assert anon.status in (302, 303, 401, 403)
    c.login(LOCKED)
    assert c.post(path + "/reserve", {"pickup_branch": "iizuka"}).status == 403     # no token


def test_no_patron_data_in_the_urls_of_the_search_and_title_pages(site):
    c = Browserless(site.base)
    c.login(LOCKED)
    path = title_link(site, "猫")
    for page in (c.get("/search?q=%E7%8C%AB"), c.get("/search?q=library&mode=list"), c.get(path),
                 c.get("/search/advanced")):
        assert page.status == 200
        for u in re.findall(r'(?:href|action|src)="([^"]*)"', page.text):
            assert LOCKED not in u and PASSWORDS[LOCKED] not in u, u
        assert LOCKED not in page.url


def test_the_library_facet_names_libraries_not_branches(site):
    page = get(site, "/search", q="図書館")
    facet = re.search(r'<h3 id="facet-library">.*?</ul>', page.text, re.DOTALL).group(0)
    names = re.findall(r'">([^<]+)</a>', facet)
    assert set(names) <= {"飯塚市立図書館", "狛江市立図書館", "広島大学図書館"} and len(names) >= 2, names
    link = re.search(r'href="([^"]*f=library%3Ahiroshima[^"]*)"', facet)
    chosen = Browserless(site.base).get(link.group(1).replace("&amp;", "&"))
    assert "所蔵館: 広島大学図書館" in re.sub(r"\s+", " ", chosen.text) and total(chosen.text) >= 1


def test_a_result_lists_titles_go_to_the_cart_and_the_title_pages_button_too(site):
    c = Browserless(site.base)
    c.login(EMILY)
    page = c.get("/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8&mode=list")         # 図書館
    rids = re.findall(r'name="rid" value="(\d+)"', page.text)[:2]
    assert len(rids) == 2
    seeded = len(site.server.run(cart.items(site.circ, EMILY)))
    done = c.post("/search/chosen", [("action", "cart"), *[("rid", r) for r in rids],
                                     ("back", "/search?q=x")], csrf=page.csrf())
    assert done.url.endswith("/my/cart"), done.url
    before = {i.title_id for i in site.server.run(cart.items(site.circ, EMILY))}
    names = [re.sub(r"<[^>]+>", "", t) for t in re.findall(r'<a href="/title/\d+">(.*?)</a>', page.text)[:2]]
    assert all(n in done.text for n in names), (names, done.messages())
    said = done.messages()           # one line a title: put in, or already there (the seed's cart)
    endings = ("予約カートに入れました。", "すでに予約カートに入っています。")
    assert len(said) == 2 and all(m.endswith(endings) for m in said)
    assert len(before) == seeded + sum(m.endswith("入れました。") for m in said) and "isbn:9784004310013" in before
    # nothing chosen, or a number that is not a record: said, not a 500
    none = c.post("/search/chosen", {"action": "cart", "back": "/search?q=x"}, csrf=page.csrf())
    assert none.status == 200 and none.messages()
    bad = c.post("/search/chosen", {"action": "cart", "rid": "x'1"}, csrf=page.csrf())
    assert bad.status == 200 and bad.messages()


def test_a_set_reservation_from_a_result_list(site):
    c = Browserless(site.base)
    c.login(LOCKED)
    page = c.get("/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8&mode=list")         # 図書館
    first = re.search(r'name="rid" value="(\d+)"[^>]*>(?:(?!</li>).)*図書館の歴史', page.text, re.DOTALL)
    other = re.search(r'name="rid" value="(\d+)"', get(site, "/search", q="學問のすゝめ", mode="list").text) or \
        re.search(r'href="/title/(\d+)"', get(site, "/search", q="學問のすゝめ", mode="list").text)
    assert first and other
    rids = [first.group(1), other.group(1)]
    form = c.post("/search/chosen", [("action", "set"), *[("rid", r) for r in rids]], csrf=page.csrf())
    assert form.status == 200 and 'name="mode" value="set"' in form.text
    fields = [("mode", "set"), *[("rid", r) for r in rids], ("pickup_branch", "iizuka"), ("contact_method", "none")]
    placed = c.post("/search/chosen/place", fields, csrf=form.csrf())
    assert placed.url.endswith("/my/holds"), (placed.status, placed.messages())
    mine = {r["title_id"] for r in site.server.run(lists.patron_requests(site.circ, LOCKED))}
    assert {"isbn:9784004310013", "isbn:9784101010014"} <= mine


def test_a_large_results_facets_are_counted_when_asked(site, monkeypatch):
    from gateway.web import search as web_search

    monkeypatch.setattr(web_search, "FACET_INLINE", 1)          # 3 hits count as large here
    page = get(site, "/search", q="図書館")
    assert total(page.text) == 3 and 'id="facet-library"' not in page.text
    link = re.search(r'<a class="facets-load" href="([^"]+)">', page.text)
    assert link and "facets=1" in link.group(1)
    asked = Browserless(site.base).get(link.group(1).replace("&amp;", "&"))
    assert 'id="facet-library"' in asked.text and 'class="facets-load"' not in asked.text
    assert titles(asked.text) == titles(page.text)               # the same page of results


def test_a_group_reservation_needs_two_titles_and_places_one_request_for_either(site):
    from web_harness import HANAKO

    c = Browserless(site.base)
    c.login(HANAKO)
    page = c.get("/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8&mode=list")         # 図書館
    rid = re.search(r'name="rid" value="(\d+)"[^>]*>(?:(?!</li>).)*図書館の歴史', page.text, re.DOTALL).group(1)
    other = re.search(r'href="/title/(\d+)"', get(site, "/search", q="學問のすゝめ", mode="list").text).group(1)
    one = c.post("/search/chosen", {"action": "group", "rid": rid, "back": "/search?q=x"}, csrf=page.csrf())
    assert one.status == 200 and one.messages() and one.url.endswith("/search?q=x")       # two at least: said
    form = c.post("/search/chosen", [("action", "group"), ("rid", rid), ("rid", other)], csrf=page.csrf())
    fields = [("mode", "group"), ("rid", rid), ("rid", other), ("pickup_branch", "iizuka"), ("contact_method", "email")]
    placed = c.post("/search/chosen/place", fields, csrf=form.csrf())
    assert placed.url.endswith("/my/holds"), (placed.status, placed.messages())
    mine = [r for r in site.server.run(lists.patron_requests(site.circ, HANAKO))
            if r["title_id"] in ("isbn:9784004310013", "isbn:9784101010014")]
    assert mine, "the group's request"
