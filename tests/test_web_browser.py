"""The pages in a real browser: Debian's Chromium driven by Playwright, against the real
service on loopback (tests/live_server.py) on SQLite with the seed of web_harness.

Every page a scenario opens is checked with axe-core (no serious or critical violation of
WCAG 2.0/2.1 A and AA), must not trip the Content-Security-Policy (the console would say
so), and is saved as a screenshot in build/screenshots/ (ignored by git) to be looked at.

Scenarios: a patron logs in, sees loans and holds, renews (and sees a refused renewal
with its reason), cancels a hold, uses the cart, My本棚 and the history, the reading
marathon, the calendar and the settings (the @hotmail warning); staff check a copy in at
the counter by typing its barcode and Enter (a scanner), the counter says it goes to the
hold shelf, and the patron who waits for it sees 貸出準備完了; the English switch; a
phone-sized screen; the lockout message; 新規パスワード登録.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page

from test_circulation_api import STAFF_PW
from web_harness import (
    EMILY,
    HANAKO,
    HIROSHIMA_PATRON,
    HIROSHIMA_STAFF,
    LOCKED,
    NEWCOMER,
    NEWCOMER_PHONE,
    PASSWORDS,
    SCREENSHOTS,
    STAFF,
    TARO,
    start_site,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
IMPACTS = ("serious", "critical")
AXE_RUN = """async () => {
  const r = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 targets: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = start_site(tmp_path_factory.mktemp("web-browser"))
    try:
        yield s
    finally:
        s.server.stop()




class Tab:
    """One browser tab on the site, with the checks every page gets."""

    def __init__(self, browser: Browser, site, axe: str, **context):
        self.ctx = browser.new_context(locale="ja-JP", **context)
        self.page: Page = self.ctx.new_page()
        self.base, self.axe = site.base, axe
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text))
        self.page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: d.accept())          # the cancel confirmations

    def go(self, path: str) -> Page:
        resp = self.page.goto(self.base + path)
        assert resp is not None and resp.status < 500, (path, resp and resp.status)
        return self.page

    def check(self, name: str) -> list:
        """axe-core on the page (no serious or critical violation), no CSP report in the
        console, a lang attribute, a screenshot."""
        page = self.page
        assert page.evaluate("document.documentElement.lang") in ("ja", "en")
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(self.axe)                 # not a script tag: the CSP allows no inline script
        violations = page.evaluate(AXE_RUN)
        bad = [v for v in violations if v["impact"] in IMPACTS]
        assert not bad, f"{name}: {bad}"
        csp = [m for m in self.console if "Content Security Policy" in m or "page error" in m]
        assert not csp, f"{name}: {csp}"
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        return violations

    def submit(self, locator) -> Page:
        """Click what sends a form (or follows a link) and wait for the next page."""
        with self.page.expect_navigation():
            locator.click()
        return self.page

    def login(self, card: str, password: str | None = None) -> Page:
        page = self.go("/login")
        page.get_by_label("利用者番号").fill(card)
        page.get_by_label("パスワード").fill(password or PASSWORDS[card])
        return self.submit(page.get_by_role("button", name="ログイン"))

    def close(self) -> None:
        self.ctx.close()


def text(page: Page, selector: str = "main") -> str:
    return re.sub(r"\s+", " ", page.inner_text(selector))


# --------------------------------------------------------------------------- patron

def test_a_patron_logs_in_sees_loans_and_holds_renews_and_cancels(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/")
        tab.check("home")
        page = tab.go("/login")
        tab.check("login")
        page = tab.login(EMILY)
        assert page.url.endswith("/my")
        assert "貸出中：2件" in text(page) and "予約中：1件" in text(page)
        tab.check("my-portal")

        tab.submit(page.get_by_role("link", name="貸出一覧").first)
        assert "本を読む本" not in text(page) and "こころ" in text(page)
        tab.check("my-loans")
        row = page.locator("tr", has_text="こころ")
        tab.submit(row.get_by_role("button", name="貸出延長"))
        assert "貸出を延長しました" in text(page, ".msg")
        # renewed once: no button any more, the reason instead (the renewal limit)
        row = page.locator("tr", has_text="こころ")
        assert row.get_by_role("button", name="貸出延長").count() == 0
        assert "延長" in row.locator(".refusal").inner_text()
        tab.check("my-loans-renewed")

        tab.submit(page.get_by_role("link", name="予約一覧").first)
        assert "予約中" in text(page) and "図書館の歴史" in text(page)
        tab.check("my-holds")
        tab.submit(page.locator("tr", has_text="図書館の歴史").get_by_role("button", name="予約取消"))
        assert "予約を取り消しました" in text(page, ".msg")
        tab.submit(page.get_by_role("link", name="取消済予約一覧").first)
        assert "図書館の歴史" in text(page) and "WEBキャンセル" in text(page)
        tab.check("my-cancelled")
    finally:
        tab.close()


def test_a_renewal_is_refused_with_its_reason_when_someone_waits(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.login(TARO)
        page.goto(site.base + "/my/loans")
        row = page.locator("tr", has_text="吾輩は猫である")
        assert row.get_by_role("button", name="貸出延長").count() == 0
        reason = row.locator(".refusal").inner_text()
        assert "予約" in reason, reason
        assert "次に予約者がいます" in row.inner_text()
        tab.check("my-loans-refused")
    finally:
        tab.close()


def test_the_cart_bookshelf_history_marathon_calendar_and_settings(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.login(EMILY)
        page.goto(site.base + "/my/cart")
        assert "本を読む本" in text(page) and "図書館にない本" in text(page)
        tab.check("my-cart")
        page.get_by_label("受取場所").select_option("honami")
        tab.submit(page.get_by_role("button", name="予約する"))
        assert "予約内容の確認" in text(page) and "穂波" in text(page)
        tab.check("my-cart-confirm")
        tab.submit(page.get_by_role("button", name="予約完了"))
        body = text(page)
        assert "予約しました" in body and "本を読む本" in body and "坊っちゃん" in body
        assert "予約できませんでした" in body and "所蔵していない資料は予約できません" in body
        tab.check("my-cart-done")

        # My本棚: from the loans page to 読みたい本, and off again
        page.goto(site.base + "/my/loans")
        tab.submit(page.locator("li", has_text="こころ").get_by_role("button", name="My本棚に追加する"))
        page.goto(site.base + "/my/bookshelf?shelf=want")
        assert "こころ" in text(page)
        tab.check("my-bookshelf")
        tab.submit(page.get_by_role("button", name=re.compile("削除: こころ")))
        assert "こころ" not in text(page, "table") if page.locator("table").count() else True
        # 借りた本: the terms must be agreed to, then it is kept, then stopped
        page.goto(site.base + "/my/bookshelf?shelf=history")
        page.get_by_label("利用規約に同意します").check()
        tab.submit(page.get_by_role("button", name="貸出履歴保存開始"))
        assert "貸出履歴を保存しています" in text(page)
        tab.check("my-history")
        tab.submit(page.get_by_role("button", name="貸出履歴保存停止"))
        assert "貸出履歴は保存していません" in text(page)

        page.goto(site.base + "/my/marathon")
        page.get_by_label("読書目標（冊）").fill("12")
        tab.submit(page.get_by_role("button", name="目標を設定"))
        assert "目標12冊" in text(page)
        assert page.locator("figure.graph svg rect").count() == 12
        tab.check("my-marathon")

        page.goto(site.base + "/my/calendar?month=2026-11")
        page.get_by_label("館").select_option("iizuka")
        tab.submit(page.get_by_role("button", name="表示"))
        cell = page.locator("td.closed", has_text="30")
        assert cell.count() == 1 and "休館日" in cell.inner_text()
        assert page.locator("td.due").count() >= 1                     # Emily's loans fall due this month
        tab.check("my-calendar")

        page.goto(site.base + "/my/settings")
        tab.check("my-settings")
        page.get_by_label("新メールアドレス").fill("emily@hotmail.com")
        email_form = page.locator("form", has=page.get_by_label("新メールアドレス"))
        tab.submit(email_form.get_by_role("button", name="変更する"))
        assert "hotmail" in text(page, ".msg") or "届" in text(page, ".msg")
        assert "emily@hotmail.com" in page.inner_text("#old-mail")
        page.get_by_label("予約受付場所").select_option("shonai")
        tab.submit(page.locator("form", has=page.get_by_label("予約受付場所")).get_by_role("button", name="変更する"))
        assert page.get_by_label("予約受付場所").input_value() == "shonai"
    finally:
        tab.close()


# --------------------------------------------------------------------------- staff

def test_staff_check_in_a_copy_someone_waits_for_and_the_patron_sees_it_ready(site, browser, axe):
    staff = Tab(browser, site, axe)
    try:
        page = staff.go("/staff/login")
        staff.check("staff-login")
        page.get_by_label("ユーザー名").fill(STAFF)
        page.get_by_label("パスワード").fill(STAFF_PW)
        staff.submit(page.get_by_role("button", name="ログイン"))
        assert page.url.endswith("/staff") and "業務画面" in text(page)
        staff.check("staff-workbench")
        staff.submit(page.get_by_role("link", name="貸出・返却").first)
        staff.check("staff-counter")
        # a scanner is a keyboard: the barcode and Enter
        page.get_by_label("資料バーコード").nth(1).click()
        page.keyboard.type("I-T2")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        result = text(page, "#result")
        assert "返却しました" in result and "取置棚" in result, result
        assert "I-T2" in result
        staff.check("staff-counter-trapped")
        # the next scan goes straight into the check-in field again
        assert page.evaluate("document.activeElement && document.activeElement.id") == "ci-barcode"
        page.goto(site.base + "/staff/shelf")
        assert "吾輩は猫である" in text(page) and HANAKO in text(page)
        staff.check("staff-shelf")
        page.goto(site.base + "/staff/pull-list")
        staff.check("staff-pull-list")
        page.goto(site.base + "/staff/patron")
        page.get_by_label("利用者番号").fill(HANAKO)
        staff.submit(page.get_by_role("button", name="照会"))
        assert "山田 花子" in text(page) and "貸出準備完了" in text(page)
        staff.check("staff-patron")
    finally:
        staff.close()
    patron = Tab(browser, site, axe)
    try:
        page = patron.login(HANAKO)
        assert "予約割当済：1件" in text(page)
        page.goto(site.base + "/my/holds")
        row = page.locator("tr", has_text="吾輩は猫である")
        assert "貸出準備完了" in row.inner_text()
        assert row.get_by_role("button", name="予約取消").count() == 0     # secured: only the library cancels
        patron.check("my-holds-ready")
    finally:
        patron.close()


def test_hiroshimas_services_page(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/staff/login")
        page.get_by_label("ユーザー名").fill(HIROSHIMA_STAFF)
        page.get_by_label("パスワード").fill(STAFF_PW)
        tab.submit(page.get_by_role("button", name="ログイン"))
        tab.submit(page.get_by_role("link", name="広島市の利用者サービス").first)
        tab.check("staff-services")
        form = page.locator("form", has=page.get_by_role("group", name="宅配の利用登録", exact=True))
        form.get_by_label("利用者番号").fill(HIROSHIMA_PATRON)
        form.get_by_label("受付方法").select_option("post")
        tab.submit(form.get_by_role("button", name="登録する"))
        assert "受け付けました" in text(page, "#result")
        assert "宅配の利用登録: はい" in text(page)
        tab.check("staff-services-registered")
    finally:
        tab.close()


# --------------------------------------------------------------------------- language, phone, login

def test_the_english_switch(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/login")
        tab.submit(page.get_by_role("link", name="English"))
        assert page.evaluate("document.documentElement.lang") == "en"
        assert "lang=" not in page.url                            # the choice is a cookie, not in the URL
        page.get_by_label("Card number").fill(EMILY)
        page.get_by_label("Password").fill(PASSWORDS[EMILY])
        tab.submit(page.get_by_role("button", name="Log in"))
        assert "My page" in text(page) and "On loan: 2" in text(page)
        tab.check("en-my-portal")
        page.goto(site.base + "/my/loans")
        assert "Due" in text(page) and "Renew" in text(page)
        tab.check("en-my-loans")
        tab.submit(page.get_by_role("link", name="日本語"))
        assert page.evaluate("document.documentElement.lang") == "ja" and "貸出一覧" in text(page)
    finally:
        tab.close()


def test_the_pages_fit_a_phone(site, browser, axe):
    tab = Tab(browser, site, axe, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True,
              device_scale_factor=2)
    try:
        page = tab.login(EMILY)
        for path, name in (("/my", "phone-my-portal"), ("/my/loans", "phone-my-loans"), ("/my/holds", "phone-my-holds"),
                           ("/my/calendar", "phone-my-calendar")):
            page.goto(site.base + path)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (path, overflow)
            tab.check(name)
    finally:
        tab.close()


def test_the_lockout_message_after_five_wrong_passwords(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        for _ in range(5):
            page = tab.login(LOCKED, "wrong99")
        message = text(page, "#login-error")
        assert "パスワードを続けて間違えたため" in message and "までログインできません" in message, message
        tab.check("login-locked")
        page = tab.login(LOCKED)                            # even the right password, while locked
        assert "までログインできません" in text(page, "#login-error")
    finally:
        tab.close()


def test_a_newcomer_registers_a_password_and_logs_in(site, browser, axe):
    tab = Tab(browser, site, axe)
    try:
        page = tab.go("/login")
        tab.submit(page.get_by_role("link", name="新規パスワード登録").first)
        tab.check("password-registration")
        page.get_by_label("利用者番号").fill(NEWCOMER)
        page.get_by_label("登録されている電話番号").fill(NEWCOMER_PHONE)
        page.get_by_label("新パスワード", exact=True).fill("sakura26")
        page.get_by_label("再入力").fill("sakura26")
        tab.submit(page.get_by_role("button", name="登録する"))
        assert page.url.endswith("/login") and "パスワードを登録しました" in text(page, ".msg")
        page = tab.login(NEWCOMER, "sakura26")
        assert page.url.endswith("/my")
    finally:
        tab.close()
