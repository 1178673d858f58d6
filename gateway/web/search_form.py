"""The OPAC's search form as data: what a search page's URL says (:class:`SearchForm`,
read by :func:`parse`), the query in the one query model it stands for (:func:`to_query`),
and the URLs of the same search with one thing changed (:func:`url`: a facet, the sort,
the page, the result mode). Pure functions: no catalog, no request.

The query is built directly in the query model (no CQL text is assembled, so nothing a
patron types can change the query's shape); every part is ANDed:

==================  ========================================================================
form field          clause
==================  ========================================================================
``q`` (one box)     ``cql.serverChoice all <words>`` (title, creator, subject, publisher,
                    notes; kana, kanji and romanized forms as the search semantics define
                    them); a term that looks like an ISBN or ISSN also finds the record by
                    ``dc.identifier``; ``"a quoted phrase"`` is ``cql.serverChoice adj``
                    (its words in that order); an unbalanced ``"`` is ignored, and said so
``title`` ...       ``dc.title all`` · ``dc.creator all`` · ``dc.subject all`` ·
                    ``dc.publisher all`` (every word, anywhere in the field)
``isbn``            ``dc.identifier = <ISBN or ISSN>`` (hyphens optional, ISBN-10 = ISBN-13)
``year_from/to``    ``dc.date >= <from>`` and ``dc.date <= <to>`` (one range)
``library``         ``bath.possessingInstitution == <library code>``
``branch``          ``bath.possessingInstitution == <branch as the holdings name it>``
``material``        ``local.material == <book, serial, ...>``
``language``        ``dc.language == <MARC code>``
``available``       ``local.available = <branch>`` (「貸出可能な資料のみ」); ``all:<system>``,
                    a whole library system: ``local.available any "<each of its branches>"``
``new`` + ``days``  ``local.added >= "<library> <today - days>"`` (新着資料)
``f`` (facets)      ``<the facet's index> == <value>``, one per chosen facet value
==================  ========================================================================

Masking: ``*`` typed at the end or start of a word stays a truncation mark; ``?`` and
``\\`` are taken literally (escaped).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from urllib.parse import urlencode

from indexers.query_model import Boolean, Clause, Node, Query, SortKey

MAX_TEXT = 200                  # characters of one text field
MAX_FILTERS = 10
PER_PAGE = (20, 50, 100)
MAX_PAGE = 500                  # pages a patron may go through (deep paging is for SRU)
DAYS = (7, 14, 30, 90)
SORTS = ("relevance", "newest", "oldest", "title", "author")
MODES = ("card", "list")
MATERIALS = ("book", "serial", "score", "map", "video", "audio", "music", "image", "computer", "kit", "mixed",
             "object")
TEXT_FIELDS = {"title": "dc.title", "author": "dc.creator", "subject": "dc.subject", "publisher": "dc.publisher"}
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LANG = re.compile(r"[a-z]{3}")
ALL_OF = "all:"                 # available=all:<system>: every branch of a library system
_PLACE = re.compile(r"(?:all:)?[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_YEAR = re.compile(r"\d{1,4}")
_IDENT = re.compile(r"(?:[0-9][0-9 -]{6,15}[0-9Xx])")
_CTRL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True)
class SearchForm:
    q: str = ""
    title: str = ""
    author: str = ""
    subject: str = ""
    publisher: str = ""
    isbn: str = ""
    year_from: str = ""
    year_to: str = ""
    library: str = ""
    branch: str = ""
    material: str = ""
    language: str = ""
    available: str = ""
    new: str = ""
    days: int = 30
    f: tuple[tuple[str, str], ...] = ()
    sort: str = "relevance"
    mode: str = "card"
    page: int = 1
    per: int = 20
    advanced: bool = False                    # the advanced form was used (shown open again)
    facets: bool = False                      # count the facets of a large result too (facets=1)
    problems: tuple[str, ...] = field(default=(), compare=False)   # fields whose value was dropped

    @property
    def empty(self) -> bool:
        """Nothing to search for (only the page's settings)."""
        return not any((self.q, self.title, self.author, self.subject, self.publisher, self.isbn,
                        self.year_from, self.year_to, self.library, self.branch, self.material,
                        self.language, self.available, self.new, self.f))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per


def _text(v: str) -> str:
    v = _CTRL.sub(" ", v or "")
    return " ".join(v.split())[:MAX_TEXT]


def parse(params: Mapping, facet_names: tuple[str, ...] = ()) -> SearchForm:
    """The form of a search URL's parameters (a MultiDict or a dict). Values that are not
    allowed are dropped and named in ``problems`` (never an error page)."""
    get = params.get
    getall = getattr(params, "getall", None)
    problems: list[str] = []

    def choice(name: str, allowed, default):
        v = get(name, "")
        if v in ("", None):
            return default
        if v not in allowed:
            problems.append(name)
            return default
        return v

    def code(name: str, pattern=_CODE) -> str:
        v = (get(name, "") or "").strip()
        if v and not pattern.fullmatch(v):
            problems.append(name)
            return ""
        return v

    def number(name: str, allowed, default: int) -> int:
        v = (get(name, "") or "").strip()
        if not v:
            return default
        if not v.isdigit() or int(v) not in allowed:
            problems.append(name)
            return default
        return int(v)

    def year(name: str) -> str:
        v = (get(name, "") or "").strip()
        if v and not _YEAR.fullmatch(v):
            problems.append(name)
            return ""
        return v

    page_raw = (get("p", "") or "").strip()
    page = int(page_raw) if page_raw.isdigit() and 1 <= int(page_raw) <= MAX_PAGE else 1
    if page_raw and page == 1 and page_raw != "1":
        problems.append("p")
    filters: list[tuple[str, str]] = []
    for raw in (getall("f", []) if getall else ([get("f")] if get("f") else [])):
        name, sep, value = (raw or "").partition(":")
        value = _text(value)
        if not sep or name not in facet_names or not value or len(filters) >= MAX_FILTERS:
            problems.append("f")
            continue
        if (name, value) not in filters:
            filters.append((name, value))
    q = _text(get("q", ""))
    if q.count('"') % 2:                       # an unbalanced quote: searched without quotes, and said so
        problems.append("quotes")
        q = " ".join(q.replace('"', " ").split())
    return SearchForm(
        q=q, title=_text(get("title", "")), author=_text(get("author", "")),
        subject=_text(get("subject", "")), publisher=_text(get("publisher", "")), isbn=_text(get("isbn", ""))[:40],
        year_from=year("year_from"), year_to=year("year_to"), library=code("library"),
        branch=_text(get("branch", ""))[:80], material=choice("material", MATERIALS, ""),
        language=code("language", _LANG), available=code("available", _PLACE), new=code("new"),
        days=number("days", DAYS, 30), f=tuple(filters), sort=choice("sort", SORTS, "relevance"),
        mode=choice("mode", MODES, "card"), page=page, per=number("per", PER_PAGE, 20),
        advanced=get("adv", "") == "1", facets=get("facets", "") == "1", problems=tuple(problems))


# --------------------------------------------------------------------------- the query

def term(text: str) -> str:
    """A typed text as a term of the query model: ``\\`` and ``?`` literal, ``*`` kept as
    truncation at a word's start or end (inside a word it is literal too)."""
    out = []
    for word in text.split():
        w = word.replace("\\", "\\\\").replace("?", "\\?").replace('"', '\\"')
        core = w.strip("*")
        if "*" in core:
            core = core.replace("*", "\\*")
        lead = "*" if w.startswith("*") and core else ""
        tail = "*" if w.endswith("*") and core else ""
        if core:
            out.append(lead + core + tail)
    return " ".join(out)


def looks_like_identifier(text: str) -> bool:
    """An ISBN (10 or 13 digits) or ISSN (8), hyphens and spaces allowed."""
    t = text.strip()
    digits = re.sub(r"[ -]", "", t)
    return bool(_IDENT.fullmatch(t)) and len(digits) in (8, 10, 13) and digits[:-1].isdigit()


def _and(nodes: list[Node]) -> Node | None:
    root: Node | None = None
    for n in nodes:
        root = n if root is None else Boolean("and", root, n)
    return root


def sort_keys(sort: str) -> tuple[SortKey, ...]:
    return {"newest": (SortKey("date", False, "lowValue"), SortKey("title", True)),
            "oldest": (SortKey("date", True, "highValue"), SortKey("title", True)),
            "title": (SortKey("title", True),),
            "author": (SortKey("creator", True), SortKey("title", True))}.get(sort, ())


def to_query(form: SearchForm, facet_indexes: Mapping[str, str], today: date,
             systems: Mapping[str, Sequence[str]] | None = None) -> Query | None:
    """The query the form stands for (None: nothing to search). ``facet_indexes``: facet
    name -> its canonical index (config/indexes.toml [facet]); ``systems``: library system
    code -> its branch codes, so that 「貸出可能な資料のみ」 of a whole system names every
    branch (a system's code can also be one of its branches', e.g. iizuka)."""
    parts: list[Node] = []
    box_parts: list[Node] = []
    for i, piece in enumerate(form.q.split('"')):     # "a quoted phrase": its words next to each other
        words = term(piece)
        if words:
            rel = "adj" if i % 2 and len(words.split()) > 1 else "all"
            box_parts.append(Clause("cql.serverChoice", rel, words))
    if box_parts:
        box = _and(box_parts)
        assert box is not None
        if looks_like_identifier(form.q):
            box = Boolean("or", box, Clause("dc.identifier", "=", re.sub(r"[ -]", "", form.q)))
        parts.append(box)
    for name, index in TEXT_FIELDS.items():
        value = term(getattr(form, name))
        if value:
            parts.append(Clause(index, "all", value))
    if form.isbn:
        ident = re.sub(r"[^0-9Xx]", "", form.isbn)
        parts.append(Clause("dc.identifier", "=", ident or term(form.isbn) or "-"))
    if form.year_from:
        parts.append(Clause("dc.date", ">=", form.year_from))
    if form.year_to:
        parts.append(Clause("dc.date", "<=", form.year_to))
    if form.library:
        parts.append(Clause("bath.possessingInstitution", "==", form.library))
    if form.branch:
        parts.append(Clause("bath.possessingInstitution", "==", form.branch.replace("\\", "\\\\")
                            .replace("*", "\\*").replace("?", "\\?")))
    if form.material:
        parts.append(Clause("local.material", "==", form.material))
    if form.language:
        parts.append(Clause("dc.language", "==", form.language))
    if form.available:
        system = form.available[len(ALL_OF):] if form.available.startswith(ALL_OF) else ""
        branches = (systems or {}).get(system)
        if branches:
            parts.append(Clause("local.available", "any", " ".join(branches)))
        else:
            parts.append(Clause("local.available", "=", form.available))
    if form.new:
        since = today - timedelta(days=form.days)
        parts.append(Clause("local.added", ">=", f"{form.new} {since.isoformat()}"))
    for name, value in form.f:
        index = facet_indexes.get(name)
        if index is None:
            continue
        rel = "=" if index == "dc.date" else "=="
        parts.append(Clause(index, rel, value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")))
    root = _and(parts)
    if root is None:
        return None
    return Query(root, sort_keys(form.sort), ranked=True)


# --------------------------------------------------------------------------- links

_URL_FIELDS = ("q", "title", "author", "subject", "publisher", "isbn", "year_from", "year_to", "library", "branch",
               "material", "language", "available", "new")


def params(form: SearchForm) -> list[tuple[str, str]]:
    """The URL parameters of a form (defaults left out)."""
    out: list[tuple[str, str]] = [(n, getattr(form, n)) for n in _URL_FIELDS if getattr(form, n)]
    if form.new and form.days != 30:
        out.append(("days", str(form.days)))
    out += [("f", f"{n}:{v}") for n, v in form.f]
    defaults = SearchForm()
    for n, key in (("sort", "sort"), ("mode", "mode"), ("per", "per")):
        if getattr(form, n) != getattr(defaults, n):
            out.append((key, str(getattr(form, n))))
    if form.advanced:
        out.append(("adv", "1"))
    if form.facets:
        out.append(("facets", "1"))
    if form.page != 1:
        out.append(("p", str(form.page)))
    return out


def url(form: SearchForm, path: str = "/search", **changes) -> str:
    """``/search?...`` for the form with ``changes`` (any field; ``add_f=(name, value)``
    and ``drop_f=(name, value)`` for a facet). Changing anything but the page goes back
    to page 1."""
    add_f = changes.pop("add_f", None)
    drop_f = changes.pop("drop_f", None)
    f = list(form.f)
    if add_f is not None and tuple(add_f) not in f:
        f.append(tuple(add_f))
    if drop_f is not None:
        f = [x for x in f if x != tuple(drop_f)]
    if "page" not in changes:
        changes["page"] = 1
    known = {fl.name for fl in fields(SearchForm)}
    new = replace(form, f=tuple(f), **{k: v for k, v in changes.items() if k in known})
    return path + "?" + urlencode(params(new))
