"""The OPAC's search and title pages in a real browser (Debian's Chromium driven by
Playwright), with the helpers of tests/test_web_browser.py: every page a scenario opens is
checked with axe-core (no serious or critical WCAG 2.x A/AA violation), must not trip the
Content-Security-Policy, and is saved as a screenshot in build/screenshots/.

The service runs with the demo catalog and the circulation seed (web_harness): a patron
searches in Japanese from the home page, opens 吾輩は猫である, logs in from the title page,
reserves it and sees it among her holds on My page; the English switch on the results
page; the pages on a phone-sized screen; the advanced search; a bad query's message.
"""
from __future__ import annotations

import pytest

from test_web_browser import Tab, text
from web_harness import EMILY, PASSWORDS, start_site

pytestmark = pytest.mark.usefixtures("cheap_hashing")
CAT = "吾輩は猫である"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = start_site(tmp_path_factory.mktemp("web-search-browser"), catalog=True)
    try:
        yield s
    finally:
        s.server.stop()




def test_a_patron_searches_in_japanese_opens_a_title_reserves_it_and_sees_it_on_my_page(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/")
        page.get_by_role("searchbox", name="キーワード").fill("猫")
        tab.submit(page.get_by_role("button", name="検索").first)
        assert "/search?" in page.url and "1 件中" in text(page)
        card = page.locator("li.hit", has_text=CAT)
        assert "貸出中（返却予定日" in card.inner_text() and "予約 1 件" in card.inner_text()
        tab.check("search-results")

        tab.submit(page.get_by_role("link", name=CAT))
        assert page.locator("h1").inner_text() == CAT
        assert "9784003101018" in text(page) and "所蔵一覧" in text(page)
        tab.check("title")

        tab.submit(page.get_by_role("link", name="予約するにはログインしてください"))
        page.get_by_label("利用者番号").fill(EMILY)
        page.get_by_label("パスワード").fill(PASSWORDS[EMILY])
        tab.submit(page.get_by_role("button", name="ログイン"))
        assert "/title/" in page.url and page.locator("h1").inner_text() == CAT   # back where she was
        title_path = page.url[len(site.base):]
        page.locator("#r-pickup").select_option("honami")
        page.locator("#r-memo").fill("週末に受け取ります")
        tab.check("title-patron")
        tab.submit(page.get_by_role("button", name="予約する"))
        assert page.url.endswith("/my/holds")
        assert "予約を受け付けました" in text(page, ".msg") and CAT in text(page)
        row = page.locator("tr", has_text=CAT)
        assert row.count() == 1
        tab.check("my-holds-after-reserve")

        # the same title again: the policy engine's reason, on the title page
        page = tab.go(title_path)
        assert "この資料の予約・リクエスト" in text(page)                     # her hold is shown
        tab.submit(page.get_by_role("button", name="予約する"))
        assert "この資料はすでに予約・リクエストしています。" in page.locator("[role=alert]").inner_text()
        tab.check("title-refused")
    finally:
        tab.close()


def test_the_english_switch_on_the_results_page(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8")        # 図書館
        tab.submit(page.get_by_role("link", name="English"))
        assert page.evaluate("document.documentElement.lang") == "en"
        assert "Results" in text(page) and "Narrow down" in text(page)
        assert page.get_by_label("Sort by").count() == 1
        tab.check("en-search-results")
        page.get_by_label("Sort by").select_option("title")
        tab.submit(page.get_by_role("button", name="Apply"))
        assert "sort=title" in page.url
        tab.check("en-search-results-by-title")
        tab.submit(page.get_by_role("link", name="日本語"))
        assert page.evaluate("document.documentElement.lang") == "ja" and "検索結果" in text(page)
    finally:
        tab.close()


def test_the_search_pages_fit_a_phone(site, browser, axe):
    tab = Tab(browser, site, axe, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True,
              device_scale_factor=2)
    try:
        for path, name in (("/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8", "phone-search-results"),
                           ("/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8&mode=list", "phone-search-list"),
                           ("/search/advanced", "phone-advanced"),
                           ("/search?q=%E7%8C%AB", None)):
            page = tab.go(path)
            if name is None:                              # the title page, from its result
                tab.submit(page.get_by_role("link", name=CAT))
                name = "phone-title"
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (path, overflow)
            tab.check(name)
    finally:
        tab.close()


def test_the_advanced_search_and_a_bad_query(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/search/advanced")
        tab.check("advanced")
        page.get_by_label("著者名").fill("漱石")
        page.get_by_label("から（西暦）").fill("1900")
        page.get_by_label("まで（西暦）").fill("1910")
        tab.submit(page.locator("form.advanced button[type=submit]"))
        assert "1 件中" in text(page) and CAT in text(page)
        tab.check("advanced-results")
        page = tab.go('/search?q=%22library&p=99999999&sort=nonsense')
        said = text(page, "main")
        assert "引用符" in said and "ページ番号" in said and "並び順" in said
        tab.check("search-bad-query")
    finally:
        tab.close()


def test_a_large_results_refinements_arrive_by_script(site, browser, axe, monkeypatch):
    from gateway.web import search as web_search

    monkeypatch.setattr(web_search, "FACET_INLINE", 1)          # the demo's 3 hits count as large here
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8")        # 図書館
        page.locator("#facet-library").wait_for(timeout=10_000)       # site.js put the counted facets in place
        assert page.locator("a.facets-load").count() == 0
        assert "飯塚市立図書館" in page.locator("nav.facets").inner_text()
        tab.check("search-results-facets-by-script")
    finally:
        tab.close()


def test_the_ranking_and_new_arrivals(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/ranking")
        assert "予約ランキング" in text(page) and CAT in text(page)
        tab.check("ranking")
        tab.submit(page.get_by_role("link", name=CAT).first)           # a ranked title opens its page
        assert page.locator("h1").inner_text() == CAT
        page = tab.go("/new")
        tab.check("new-arrivals")
        tab.submit(page.locator("section", has_text="狛江市立図書館").get_by_role("link").first)
        assert "狛江市立図書館の新着資料" in text(page) and "件中" in text(page)    # ingested today: all new
        tab.check("new-arrivals-komae")
    finally:
        tab.close()
