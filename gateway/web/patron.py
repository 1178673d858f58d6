"""The patron's pages (the Iizuka guide's 利用者ポータル): log in, 新規パスワード登録, the
portal, 貸出一覧 with renewals, 予約一覧 and 取消済予約一覧, the 予約カート and its
checkout, My本棚 with the borrowing history, 読書マラソン, カレンダー and 利用者情報変更.

Each handler calls the circulation functions the JSON API calls (gateway/api/patron.py)
and shows their Decisions' messages in the patron's language. A change is a POST with
the CSRF token, answered by a redirect to the page it belongs to with the message
(post/redirect/get), so reloading a page never repeats a renewal. Ids of loans and
requests travel in form bodies, never in URLs.
"""
from __future__ import annotations

import calendar as _calendar
from datetime import date, timedelta

from circulation import auth, bookshelf, cart, delivery, holds, lists, loans, queries
from circulation.ill import requester as ill_requester
from circulation.store import NotFound
from lifecycle import reasons
from lifecycle.table import State

from . import search_form
from .core import Page, Redirect, Refused, page
from .search import available_places

SHELF_TABS = ("want", "finished", "history")


def _pickups(pg: Page, library: str) -> list[tuple[str, str]]:
    prof = pg.circ.profiles.get(library)
    if prof is None:
        return []
    return [(c, bc.branch.name) for c, bc in prof.branches.items() if bc.branch.pickup]


def _contacts(pg: Page, library: str) -> list[str]:
    prof = pg.circ.profiles.get(library)
    return sorted(prof.placing.contact_methods) if prof else []


# --------------------------------------------------------------------------- public

@page()
async def home(pg: Page):
    rankings = []
    for code, prof in pg.circ.profiles.items():
        rankings.append({"library": code, "name": prof.name,
                         "titles": await lists.reservation_ranking(pg.circ, code, 5)})
    return pg.render("home.html", rankings=rankings, form=search_form.SearchForm(), places=available_places(pg),
                     sf=search_form)


def _next(pg: Page, value: str) -> str:
    """Where to go after logging in: a search or title page the patron came from (a
    path of this site only), else the portal."""
    ok = value.startswith(("/search?", "/title/")) and len(value) < 2000 and "//" not in value \
        and "\\" not in value and value.isprintable()
    return value if ok else "/my"


@page()
async def login_form(pg: Page):
    if pg.patron:
        raise Redirect(_next(pg, pg.query("next")))
    return pg.render("login.html", card="", error=None, next=_next(pg, pg.query("next")))


@page()
async def login(pg: Page):
    card = pg.field("card_number")
    res = await auth.patron_login(pg.circ, card=card, password=pg.field("password"))
    if res.session_token is None:
        return pg.render("login.html", status=401 if res.decision.code != "locked_out" else 429,
                         card=card, error=pg.w.message(res.decision), next=_next(pg, pg.field("next")))
    pg.start_session(res.session_token, res.principal, auth.PATRON_MAX)
    raise Redirect(_next(pg, pg.field("next")))


@page()
async def logout(pg: Page):
    staff = pg.staff
    if pg.token:
        await auth.logout(pg.circ, pg.token)
    pg.end_session()
    pg.flash(pg.w("logged_out"))
    raise pg.redirect("/staff/login" if staff else "/login")


@page()
async def registration_form(pg: Page):
    return pg.render("register.html", card="", error=None)


@page()
async def register(pg: Page):
    card, new, again = pg.field("card_number"), pg.field("new_password"), pg.field("new_password_again")
    if new != again:
        return pg.render("register.html", status=422, card=card, error=pg.w("pw_mismatch"))
    d = await auth.set_password(pg.circ, card=card, new_password=new, role="patron", actor=card,
                                registered_phone=pg.field("phone"))
    if not d.allowed:
        return pg.render("register.html", status=403 if d.code == "registration_failed" else 422,
                         card=card, error=pg.w.message(d))
    pg.flash(pg.w.message(d))
    raise pg.redirect("/login")


# --------------------------------------------------------------------------- the portal

@page("patron")
async def portal(pg: Page):
    p = await queries.patron(pg.circ, pg.card)
    my_loans = await loans.patron_loans(pg.circ, pg.card)
    my_holds = await lists.patron_requests(pg.circ, pg.card)
    ready = [r for r in my_holds if r["state"] == State.ON_HOLD_SHELF.value]
    in_cart = await cart.items(pg.circ, pg.card)
    prof = pg.circ.profiles.get(p.library)
    return pg.render("my/portal.html", me=p, library_name=prof.name if prof else p.library,
                     loans=my_loans, overdue=[x for x in my_loans if x["overdue"]],
                     waiting=len(my_holds) - len(ready), ready=ready, cart_count=len(in_cart),
                     delivery=prof is not None and prof.delivery is not None and prof.delivery.enabled)


# --------------------------------------------------------------------------- loans

@page("patron")
async def loans_page(pg: Page):
    return pg.render("my/loans.html", loans=await loans.patron_loans(pg.circ, pg.card))


async def renew_one(pg: Page, loan_id: int) -> tuple[bool, str]:
    """Renew one loan as the API does: (done or asked, the message). Another library's
    copy (ISO 18626) asks its lender: 延長を依頼しました."""
    res = await loans.renew(pg.circ, loan_id=loan_id, role="patron", actor=pg.card, channel="web", card=pg.card)
    d = res.decision
    if d.allowed:
        return True, pg.w("renewed_to", due=pg.w.date(res.due))
    if d.code == "renewal_by_lender" and pg.st.ill is not None:
        asked = await ill_requester.request_renewal(pg.st.ill, loan_id=loan_id, actor=pg.card, card=pg.card)
        if asked.ok:
            return True, pg.w.message(reasons.decide("renewal_pending"))
        return False, pg.w.message(reasons.decide(asked.code, **(asked.detail or {})))
    return False, pg.w.message(d)


@page("patron")
async def renew(pg: Page):
    ids = [pg.field("one")] if pg.field("one") else pg.fields("loan_id")
    if not ids or not all(i.isdigit() and len(i) < 19 for i in ids):
        raise Refused(400, pg.w("bad_input"))
    for loan_id in dict.fromkeys(int(i) for i in ids):
        try:
            ok, text = await renew_one(pg, loan_id)
        except NotFound:
            ok, text = False, pg.w("not_found")
        pg.flash(text, "info" if ok else "error")
    raise pg.redirect("/my/loans")


# --------------------------------------------------------------------------- holds

@page("patron")
async def holds_page(pg: Page):
    rows = await lists.patron_requests(pg.circ, pg.card)
    ready = sum(1 for r in rows if r["state"] == State.ON_HOLD_SHELF.value)
    return pg.render("my/holds.html", holds=rows, ready=ready, waiting=len(rows) - ready,
                     cancellable={State.QUEUED.value, State.SUSPENDED.value, State.NEW.value,
                                  State.VALIDATED.value, State.PURCHASE_REVIEW.value, State.SENT.value,
                                  State.WILL_SUPPLY.value, State.CONDITION_PENDING.value})


@page("patron")
async def hold_action(pg: Page):
    rid, action = pg.int_field("request_id"), pg.field("action")
    if action == "cancel":
        d = await holds.cancel(pg.circ, request_id=rid, role="patron", actor=pg.card, channel="web", card=pg.card)
        text = pg.w("cancel_done") if d.allowed else pg.w.message(d)
    elif action in ("suspend", "resume"):
        fn = holds.suspend if action == "suspend" else holds.resume
        d = await fn(pg.circ, request_id=rid, role="patron", actor=pg.card, card=pg.card, channel="web")
        text = pg.w.message(d)
    else:
        raise Refused(400, pg.w("bad_input"))
    pg.flash(text, "info" if d.allowed else "error")
    raise pg.redirect("/my/holds")


@page("patron")
async def cancelled_page(pg: Page):
    return pg.render("my/cancelled.html", rows=await lists.cancelled_requests(pg.circ, pg.card))


# --------------------------------------------------------------------------- the cart

@page("patron")
async def cart_page(pg: Page):
    p = await queries.patron(pg.circ, pg.card)
    return pg.render("my/cart.html", items=await cart.items(pg.circ, pg.card), me=p,
                     pickups=_pickups(pg, p.library), contacts=_contacts(pg, p.library), max=cart.CART_MAX)


@page("patron")
async def cart_add(pg: Page):
    """予約カートに入れる (from a title page or a result list: title id and title)."""
    d = await cart.add(pg.circ, pg.card, pg.field("title_id"), pg.field("title"))
    pg.flash(pg.w.message(d), "info" if d.allowed else "error")
    raise pg.redirect("/my/cart")


@page("patron")
async def cart_remove(pg: Page):
    if pg.field("all"):
        await cart.clear(pg.circ, pg.card)
    else:
        d = await cart.remove(pg.circ, pg.card, pg.field("title_id"))
        pg.flash(pg.w.message(d), "info" if d.allowed else "error")
    raise pg.redirect("/my/cart")


@page("patron")
async def cart_confirm(pg: Page):
    """【予約する】: the titles ticked, the pickup branch and contact method, for a last look."""
    p = await queries.patron(pg.circ, pg.card)
    chosen = pg.fields("title_id")
    items = [i for i in await cart.items(pg.circ, pg.card) if i.title_id in chosen]
    if not items:
        pg.flash(pg.w("select_some"), "error")
        raise pg.redirect("/my/cart")
    pickup, contact = pg.field("pickup_branch"), pg.field("contact_method")
    return pg.render("my/cart_confirm.html", items=items, pickup=pickup, contact=contact,
                     pickup_name=pg.circ.branch_name(pickup) or "", me=p, memo=pg.field("memo"))


@page("patron")
async def cart_checkout(pg: Page):
    """【予約完了】: every ticked title placed in its own unit of work; the refused stay in
    the cart with the policy's reason."""
    res = await cart.checkout(pg.circ, card=pg.card, pickup_branch=pg.field("pickup_branch") or None,
                              contact_method=pg.field("contact_method") or None, memo=pg.field("memo"),
                              title_ids=pg.fields("title_id") or None, channel="web", role="patron",
                              actor=pg.card)
    if not res.decision.allowed:
        pg.flash(pg.w.message(res.decision), "error")
        raise pg.redirect("/my/cart")
    views = {r["request_id"]: r for r in await lists.patron_requests(pg.circ, pg.card)}
    return pg.render("my/cart_done.html", placed=res.placed, refused=res.refused, views=views,
                     pickup_name=pg.circ.branch_name(res.pickup_branch) or "",
                     contact=res.contact_method)


# --------------------------------------------------------------------------- My本棚

@page("patron")
async def bookshelf_page(pg: Page):
    shelf = pg.query("shelf", "want")
    if shelf not in SHELF_TABS:
        shelf = "want"
    p = await queries.patron(pg.circ, pg.card)
    return pg.render("my/bookshelf.html", shelf=shelf, tabs=SHELF_TABS, me=p,
                     entries=await bookshelf.list_shelf(pg.circ, pg.card, shelf))


@page("patron")
async def bookshelf_add(pg: Page):
    shelf = pg.field("shelf")
    if shelf not in bookshelf.PATRON_SHELVES:
        raise Refused(400, pg.w("bad_input"))
    d = await bookshelf.add_to_shelf(pg.circ, pg.card, shelf, pg.field("title_id"), title=pg.field("title"))
    pg.flash(pg.w.message(d), "info" if d.allowed else "error")
    raise pg.redirect(pg.field("back") if pg.field("back") in ("/my/loans", "/my/bookshelf") else "/my/bookshelf",
                      **({"shelf": shelf} if pg.field("back") != "/my/loans" else {}))


@page("patron")
async def bookshelf_remove(pg: Page):
    entry, shelf = pg.int_field("entry_id"), pg.field("shelf")
    d = await bookshelf.remove_entry(pg.circ, pg.card, entry)
    pg.flash(pg.w.message(d), "info" if d.allowed else "error")
    raise pg.redirect("/my/bookshelf", shelf=shelf if shelf in SHELF_TABS else "want")


@page("patron")
async def history_action(pg: Page):
    action = pg.field("action")
    if action == "start":
        if pg.field("agree") != "yes":
            pg.flash(pg.w("must_agree"), "error")
            raise pg.redirect("/my/bookshelf", shelf="history")
        d = await bookshelf.set_history_opt_in(pg.circ, pg.card, True)
    elif action == "stop":
        d = await bookshelf.set_history_opt_in(pg.circ, pg.card, False)
    elif action == "delete":
        d = await bookshelf.delete_history(pg.circ, pg.card)
    else:
        raise Refused(400, pg.w("bad_input"))
    pg.flash(pg.w.message(d))
    raise pg.redirect("/my/bookshelf", shelf="history")


# --------------------------------------------------------------------------- 読書マラソン

@page("patron")
async def marathon_page(pg: Page):
    now = pg.circ.now()
    y = pg.query("year")
    year = int(y) if y.isdigit() and 1000 <= int(y) <= 2999 else now.year
    prog = await bookshelf.reading_progress(pg.circ, pg.card, year)
    top = max([*prog["by_month"], 1])
    return pg.render("my/marathon.html", prog=prog, top=top, year=year)


@page("patron")
async def marathon_goal(pg: Page):
    raw = pg.field("goal")
    goal = int(raw) if raw.isdigit() and len(raw) < 7 else (None if raw == "" else -1)
    d = await bookshelf.set_reading_goal(pg.circ, pg.card, goal)
    pg.flash(pg.w.message(d), "info" if d.allowed else "error")
    raise pg.redirect("/my/marathon")


# --------------------------------------------------------------------------- カレンダー

@page("patron")
async def calendar_page(pg: Page):
    now = pg.circ.now().date()
    month = pg.query("month")
    try:
        first = date.fromisoformat(f"{month}-01") if month else now.replace(day=1)
    except ValueError:
        first = now.replace(day=1)
    if not 1000 < first.year < 2999:
        first = now.replace(day=1)
    cal = await bookshelf.patron_calendar(pg.circ, pg.card, first)
    p = await queries.patron(pg.circ, pg.card)
    branch = pg.query("branch") or p.default_pickup_branch or next(iter(cal["branches"]), "")
    if branch not in cal["branches"]:
        branch = next(iter(cal["branches"]), "")
    closed = set(cal["branches"].get(branch, {}).get("closed_days", []))
    events: dict = {}
    for e in cal["events"]:
        if e["branch"] == branch:
            events.setdefault(e["day"], []).append(e["title"])
    titles = {x["loan_id"]: x["title"] or x["title_id"] for x in await loans.patron_loans(pg.circ, pg.card)}
    dues: dict = {}
    for d in cal["due_dates"]:
        dues.setdefault(d["day"], []).append({**d, "title": titles.get(d["loan_id"], d["title_id"])})
    weeks = _calendar.Calendar(firstweekday=6).monthdatescalendar(first.year, first.month)
    prev = (first - timedelta(days=1)).replace(day=1)
    nxt = (first.replace(day=28) + timedelta(days=5)).replace(day=1)
    return pg.render("my/calendar.html", first=first, weeks=weeks, closed=closed, events=events, dues=dues,
                     branch=branch, branches=cal["branches"], prev=f"{prev:%Y-%m}", next=f"{nxt:%Y-%m}",
                     today=now)


# --------------------------------------------------------------------------- 利用者情報変更

@page("patron")
async def settings_page(pg: Page):
    p = await queries.patron(pg.circ, pg.card)
    prof = pg.circ.profiles.get(p.library)
    reg = None
    if prof is not None and prof.delivery is not None and prof.delivery.enabled:
        reg = await delivery.registration(pg.circ, pg.card)
    return pg.render("my/settings.html", me=p, pickups=_pickups(pg, p.library), contacts=_contacts(pg, p.library),
                     delivery=reg)


@page("patron")
async def settings_save(pg: Page):
    what = pg.field("what")
    if what == "prefs":
        d = await bookshelf.update_settings(
            pg.circ, card=pg.card, default_pickup_branch=pg.field("default_pickup_branch") or None,
            default_contact_method=pg.field("default_contact_method") or None,
            update_live_holds=pg.field("update_existing") == "yes")
    elif what == "email":
        new = "" if pg.field("delete") == "yes" else pg.field("email")
        if not new and pg.field("delete") != "yes":
            raise Refused(422, pg.w.message(reasons.decide("email_invalid")))
        d = await bookshelf.update_settings(pg.circ, card=pg.card, email=new)
    elif what == "locale":
        d = await bookshelf.update_settings(pg.circ, card=pg.card, locale=pg.field("locale"))
        if d.allowed:
            pg.set_lang(pg.field("locale"))
            pg.cookie("unioncat_lang", pg.field("locale"), max_age=365 * 86400)
    elif what == "password":
        if pg.field("new_password") != pg.field("new_password_again"):
            pg.flash(pg.w("pw_mismatch"), "error")
            raise pg.redirect("/my/settings")
        d = await auth.set_password(pg.circ, card=pg.card, new_password=pg.field("new_password"),
                                    old_password=pg.field("old_password"), role="patron", actor=pg.card,
                                    keep_session=pg.token)
    elif what == "test_mail":
        sent = await queries.queue_test_mail(pg.circ, pg.card)
        d = reasons.decide("email_missing") if sent.email is None else reasons.decide("ok")
        text = pg.w.message(d) if sent.email is None else pg.w.pick(
            "テストメールを送信しました。" if sent.queued else "テストメールは1分に1回まで送信できます。",
            "A test mail is on its way." if sent.queued else "One test mail per minute: it is already on its way.")
        pg.flash(text, "info" if sent.email else "error")
        raise pg.redirect("/my/settings")
    else:
        raise Refused(400, pg.w("bad_input"))
    if d.allowed and d.code == "email_domain_warning":
        pg.flash(pg.w.message(d), "warning")
    else:
        pg.flash(pg.w.message(d) if not d.allowed or d.code != "ok" else pg.w("settings_done"),
                 "info" if d.allowed else "error")
    raise pg.redirect("/my/settings")


def routes() -> list[tuple[str, str, object]]:
    return [
        ("GET", "/", home),
        ("GET", "/login", login_form), ("POST", "/login", login),
        ("POST", "/logout", logout),
        ("GET", "/password-registration", registration_form), ("POST", "/password-registration", register),
        ("GET", "/my", portal),
        ("GET", "/my/loans", loans_page), ("POST", "/my/loans/renew", renew),
        ("GET", "/my/holds", holds_page), ("POST", "/my/holds", hold_action),
        ("GET", "/my/holds/cancelled", cancelled_page),
        ("GET", "/my/cart", cart_page), ("POST", "/my/cart/add", cart_add), ("POST", "/my/cart/remove", cart_remove),
        ("POST", "/my/cart/confirm", cart_confirm), ("POST", "/my/cart/checkout", cart_checkout),
        ("GET", "/my/bookshelf", bookshelf_page), ("POST", "/my/bookshelf/add", bookshelf_add),
        ("POST", "/my/bookshelf/remove", bookshelf_remove), ("POST", "/my/bookshelf/history", history_action),
        ("GET", "/my/marathon", marathon_page), ("POST", "/my/marathon", marathon_goal),
        ("GET", "/my/calendar", calendar_page),
        ("GET", "/my/settings", settings_page), ("POST", "/my/settings", settings_save),
    ]
