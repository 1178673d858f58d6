"""The OPAC's search pages: one box and the advanced search, facets, sort, paging, the two
result modes of Iizuka's guide (カード表示: a cover placeholder and each branch's live
status; 簡易表示: one line a title), 予約ランキング and new arrivals (新着資料) per library;
and what a patron does with titles chosen in a result list (the 予約カート, セット予約,
グループ予約).

Every search goes through the one search route SRU and Z39.50 use (search/route.py):
the form becomes a query in the query model (:mod:`.search_form`), the route runs it
(databases, the limits 「貸出可能な資料のみ」 and new arrivals, result sets, the time
budget), pages and facets come from the kept result set, records from ``route.fetch``,
and the card mode's live status from the circulation database in one read per page
(gateway/availability.py over circulation/availability_view.py). No SQL here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from circulation import cart, holds, lists, queries
from indexers.backend import BackendUnavailable
from indexers.holdings import load_libraries
from indexers.query_model import QueryError
from search.databases import DEFAULT
from search.route import Search

from ..availability import holdings_of_page
from . import record_view as rv
from . import search_form as sf
from .core import Page, Redirect, Refused, page

log = logging.getLogger("unioncat.web")

MAX_SETS = 2000                   # the OPAC's result sets kept (least recently used go first)
SET_TTL = 600                     # seconds a result set lives idle (paging reuses it)
FACET_LIMIT = 8                   # values shown per facet
FACET_INLINE = 1000               # hits up to which the facets are counted with the page; a larger
                                  # result counts them when asked (facets=1; site.js asks at once)
LIBRARY_FACET_ASK = 200           # values of the library facet asked for (branch names left out)
FACETS = ("library", "material", "language", "date", "subject")
MAX_SELECTED = 20                 # titles chosen at once in a result list


class SearchUnavailable(Exception):
    """The catalog (or the route) cannot answer now."""


@dataclass
class Results:
    form: sf.SearchForm
    total: int = 0
    records: list = field(default_factory=list)              # RecordView
    summaries: dict = field(default_factory=dict)            # record id -> (branch summaries, unknown, reservations)
    facets: dict = field(default_factory=dict)               # facet name -> [FacetValue]
    error: str = ""                                          # the query's problem in words
    facets_deferred: bool = False                            # a large result: facets counted when asked

    @property
    def pages(self) -> int:
        return min(sf.MAX_PAGE, (self.total + self.form.per - 1) // self.form.per)


def route_of(pg: Page):
    if pg.st.route is None:
        raise Refused(503, pg.w("search_unavailable"))
    return pg.st.route


def facet_indexes(route) -> dict[str, str]:
    return {name: fd.index for name, fd in route.config.facets.items()}


def today(pg: Page) -> date:
    return pg.circ.now().date()


async def run(pg: Page, form: sf.SearchForm) -> Results:
    """The search of a form through the route, a page of it, its facets, and (card mode)
    the live status of the page's records."""
    route = route_of(pg)
    res = Results(form)
    systems = {code: tuple(prof.branches) for code, prof in pg.circ.profiles.items()}
    query = sf.to_query(form, facet_indexes(route), today(pg), systems)
    if query is None:
        return res
    try:
        async with route.request():
            rs = await route.search(Search(query, pg.st.result_sets, databases=(DEFAULT,), ttl=SET_TTL,
                                           reuse=True))
            res.total = rs.result.total
            ids = await route.page(rs, form.offset, form.per) if res.total > form.offset else []
            records = await route.fetch(ids)
            if form.mode == "card" and records:
                page_h = await route.call(holdings_of_page(route.availability, records))
                for r in records:
                    statuses = page_h.get(r.id, [])
                    summary, unknown = rv.branch_summary(statuses, pg.lang)
                    res.summaries[r.id] = (summary, unknown, rv.reservations_text(statuses, pg.lang))
            res.records = [rv.view(r) for r in records]
            if res.total > FACET_INLINE and not form.facets:
                res.facets_deferred = True
            elif res.total:
                names = [n for n in FACETS if n in route.config.facets and n != "library"]
                res.facets = await route.facets(rs, names, FACET_LIMIT)
                if "library" in route.config.facets:
                    res.facets = {"library": await library_facet(route, rs), **res.facets}
    except QueryError as e:
        res.error = pg.w("query_problem", details=e.message)
        res.total = 0
    except BackendUnavailable as e:
        log.warning("the OPAC could not search: %s", e)
        raise SearchUnavailable(str(e)) from None
    return res


async def library_facet(route, rs) -> list:
    """所蔵館: the member libraries holding hits. The index also holds the branch names of
    the holdings (the same name, e.g. 中央図書館, in several libraries), which the advanced
    search's branch field offers instead; so the values are asked for generously and only
    the library codes kept."""
    codes = {c.lower() for c in route.databases.names() if c != DEFAULT}
    values = (await route.facets(rs, ["library"], LIBRARY_FACET_ASK)).get("library", [])
    return [v for v in values if v.display.lower() in codes or v.value.lower() in codes][:FACET_LIMIT]


def libraries(route) -> list[tuple[str, str]]:
    """(code, name) of the member libraries: those configured and those holding records."""
    out = []
    for code in route.databases.names():
        if code == DEFAULT:
            continue
        out.append((code, rv.library_name(code)))
    return sorted(out, key=lambda x: x[0])


def available_places(pg: Page) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The places 「貸出可能な資料のみ」 can name: (system code, its name, its branches)."""
    out = []
    for code, prof in pg.circ.profiles.items():
        out.append((code, prof.name, [(b, bc.branch.name) for b, bc in prof.branches.items()]))
    return out


async def branches(pg: Page, route) -> list[tuple[str, str]]:
    """The branch names the catalog's holdings record (bath.possessingInstitution values
    that are not library codes): (value as the query takes it, as catalogued)."""
    codes = {c.lower() for c in route.databases.names()}
    try:
        async with route.request():
            terms = await route.scan("bath.possessingInstitution", "", 1, 300)
    except (QueryError, BackendUnavailable):
        return []
    return [(t.display, t.display) for t in terms if (t.display or "").lower() not in codes and t.display]


def facet_label(pg: Page, name: str, display: str) -> str:
    if name == "library":         # a code as catalogued (hiroshima-u) or as the index keeps it (hiroshima u)
        known = {c.lower().replace("-", " "): c for c in load_libraries().names()}
        code = known.get(display.lower().replace("-", " "))
        return rv.library_name(code) if code else display
    if name == "material":
        return pg.w.pick(*MATERIAL_LABELS.get(display, (display, display)))
    if name == "language":
        return language_name(pg, display)
    return display


MATERIAL_LABELS = {
    "book": ("図書", "Books"), "serial": ("雑誌・新聞", "Journals and newspapers"), "score": ("楽譜", "Scores"),
    "map": ("地図", "Maps"), "video": ("映像資料", "Video"), "audio": ("録音資料", "Sound recordings"),
    "music": ("音楽録音資料", "Music recordings"), "image": ("画像資料", "Pictures"),
    "computer": ("電子資料", "Electronic resources"), "kit": ("キット", "Kits"),
    "mixed": ("複合資料", "Mixed materials"),
    "object": ("立体資料", "Objects"),
}
LANGUAGES = {
    "jpn": ("日本語", "Japanese"), "eng": ("英語", "English"), "chi": ("中国語", "Chinese"),
    "kor": ("韓国語", "Korean"), "ger": ("ドイツ語", "German"), "fre": ("フランス語", "French"),
    "spa": ("スペイン語", "Spanish"), "ita": ("イタリア語", "Italian"), "rus": ("ロシア語", "Russian"),
    "lat": ("ラテン語", "Latin"), "por": ("ポルトガル語", "Portuguese"), "dut": ("オランダ語", "Dutch"),
}


def language_name(pg: Page, code: str) -> str:
    pair = LANGUAGES.get(code)
    return pg.w.pick(*pair) if pair else code


_FIELD_NAMES = {"library": ("所蔵館", "library"), "branch": ("所蔵場所", "branch"),
                "material": ("資料種別", "material"), "language": ("言語", "language"),
                "available": ("貸出可能な資料のみ", "available only"),
                "new": ("新着資料", "new arrivals"), "days": ("期間", "period")}
_PROBLEM_WORDS = {"p": "bad_p", "sort": "bad_sort", "mode": "bad_mode", "per": "bad_per", "quotes": "bad_quotes",
                  "year_from": "bad_year", "year_to": "bad_year", "f": "bad_f"}


def problem_messages(pg: Page, form: sf.SearchForm) -> list[str]:
    """What was wrong with each value of the URL left out, in the page's language (once each)."""
    out: list[str] = []
    others = []
    for name in form.problems:
        key = _PROBLEM_WORDS.get(name)
        if key is None:
            others.append(pg.w.pick(*_FIELD_NAMES.get(name, (name, name))))
            continue
        text = pg.w(key, max=sf.MAX_PAGE)
        if text not in out:
            out.append(text)
    if others:
        out.append(pg.w("bad_field", names="・".join(dict.fromkeys(others))))
    return out


def context(pg: Page, res: Results, route) -> dict:
    form = res.form
    chosen = [(n, v, facet_label(pg, n, v)) for n, v in form.f]
    return {"form": form, "res": res, "sf": sf, "chosen": chosen, "problems": problem_messages(pg, form),
            "facet_label": facet_label,
            "material_labels": MATERIAL_LABELS, "languages": LANGUAGES, "language_name": language_name,
            "sorts": sf.SORTS, "libraries": libraries(route), "places": available_places(pg),
            "new_library_name": rv.library_name(form.new) if form.new else ""}


# --------------------------------------------------------------------------- pages

@page()
async def search_page(pg: Page):
    route = route_of(pg)
    form = sf.parse(pg.request.query, tuple(route.config.facets))
    try:
        res = await run(pg, form)
    except SearchUnavailable:
        raise Refused(503, pg.w("search_unavailable")) from None
    ctx = context(pg, res, route)
    if form.advanced or form.empty:
        ctx["branches"] = await branches(pg, route)
    else:
        ctx["branches"] = []
    if res.total and form.page > res.pages:
        raise Redirect(sf.url(form, page=res.pages))
    return pg.render("search/results.html", status=422 if res.error else 200, **ctx)


@page()
async def advanced_page(pg: Page):
    route = route_of(pg)
    form = sf.parse(pg.request.query, tuple(route.config.facets))
    ctx = context(pg, Results(form), route)
    ctx["branches"] = await branches(pg, route)
    return pg.render("search/advanced.html", **ctx)


@page()
async def new_arrivals(pg: Page):
    """新着資料: a library's titles added in the last days (a search with local.added)."""
    route = route_of(pg)
    lib = pg.query("library")
    days = pg.query("days", "30")
    if lib:
        known = dict(libraries(route))
        if lib not in known:
            raise Refused(404, pg.w("not_found"))
        d = int(days) if days.isdigit() and int(days) in sf.DAYS else 30
        raise pg.redirect("/search", new=lib, days=str(d), sort="newest")
    return pg.render("search/new.html", libraries=libraries(route), days=sf.DAYS)


@page()
async def ranking_page(pg: Page):
    """予約ランキング of every library system: the titles with the most live reservations."""
    rankings = []
    for code, prof in pg.circ.profiles.items():
        rankings.append({"library": code, "name": prof.name,
                         "titles": await lists.reservation_ranking(pg.circ, code, 20)})
    return pg.render("search/ranking.html", rankings=rankings)


# --------------------------------------------------------------------------- titles chosen in a list

async def chosen_records(pg: Page) -> list:
    """The union records a result list's form names (``rid``), in the order given."""
    raw = pg.fields("rid")
    if not raw or len(raw) > MAX_SELECTED or not all(r.isdigit() and len(r) < 13 for r in raw):
        pg.flash(pg.w("select_titles", n=MAX_SELECTED), "error")
        raise pg.redirect(_back(pg))
    ids = list(dict.fromkeys(int(r) for r in raw))
    route = route_of(pg)
    try:
        async with route.request():
            records = await route.fetch(ids)
    except BackendUnavailable:
        raise Refused(503, pg.w("search_unavailable")) from None
    return [rv.view(r) for r in records]


def _back(pg: Page) -> str:
    back = pg.field("back")
    return back if back.startswith("/search?") and len(back) < 2000 else "/search"


def pickups(pg: Page, library: str) -> list[tuple[str, str]]:
    prof = pg.circ.profiles.get(library)
    return [(c, bc.branch.name) for c, bc in prof.branches.items() if bc.branch.pickup] if prof else []


def contacts(pg: Page, library: str) -> list[str]:
    prof = pg.circ.profiles.get(library)
    return sorted(prof.placing.contact_methods) if prof else []


@page("patron")
async def chosen_action(pg: Page):
    """A result list's 【予約カートに入れる】, 【セット予約】 or 【グループ予約】 for the titles ticked."""
    action = pg.field("action")
    if action not in ("cart", "set", "group"):
        raise Refused(400, pg.w("bad_input"))
    titles = await chosen_records(pg)
    if action == "cart":
        for t in titles:
            d = await cart.add(pg.circ, pg.card, t.title_id, t.display_title)
            pg.flash(f"{t.display_title}: {pg.w.message(d)}", "info" if d.allowed else "error")
        raise pg.redirect("/my/cart")
    if len(titles) < 2:
        pg.flash(pg.w("select_two"), "error")
        raise pg.redirect(_back(pg))
    return await _many_form(pg, action, titles)


async def _many_form(pg: Page, mode: str, titles: list, status: int = 200, error: str = ""):
    me = await queries.patron(pg.circ, pg.card)
    return pg.render("search/reserve_many.html", status=status, mode=mode, titles=titles, me=me, error=error,
                     pickups=pickups(pg, me.library), contacts=contacts(pg, me.library), back=_back(pg),
                     pickup=pg.field("pickup_branch") or me.default_pickup_branch or "",
                     contact=pg.field("contact_method") or me.default_contact_method or "",
                     memo=pg.field("memo"))


@page("patron")
async def place_many(pg: Page):
    """セット予約 (in the order shown) or グループ予約 (any one of them): all or nothing; a
    refusal names the title and the engine's reason."""
    mode = pg.field("mode")
    if mode not in ("set", "group"):
        raise Refused(400, pg.w("bad_input"))
    titles = await chosen_records(pg)
    if len(titles) < 2:
        pg.flash(pg.w("select_two"), "error")
        raise pg.redirect(_back(pg))
    ids = [t.title_id for t in titles]
    if len(set(ids)) != len(ids):
        raise Refused(422, pg.w("duplicate_titles"))
    fn = holds.place_set if mode == "set" else holds.place_group
    res = await fn(pg.circ, card=pg.card, title_ids=ids, titles={t.title_id: t.display_title for t in titles},
                   pickup_branch=pg.field("pickup_branch"), channel="web", role="patron", actor=pg.card,
                   contact_method=pg.field("contact_method") or None, memo=pg.field("memo")[:200])
    if not res.request_ids:
        d = res.decision
        which = d.details.get("title_id") if d.details else None
        name = next((t.display_title for t in titles if t.title_id == which), "")
        text = (f"{name}: " if name else "") + pg.w.message(d)
        return await _many_form(pg, mode, titles, status=409, error=text)
    pg.flash(pg.w("set_placed" if mode == "set" else "group_placed", n=len(res.request_ids)))
    raise pg.redirect("/my/holds")


def routes() -> list[tuple[str, str, object]]:
    return [
        ("GET", "/search", search_page),
        ("GET", "/search/advanced", advanced_page),
        ("GET", "/new", new_arrivals),
        ("GET", "/ranking", ranking_page),
        ("POST", "/search/chosen", chosen_action),
        ("POST", "/search/chosen/place", place_many),
    ]

