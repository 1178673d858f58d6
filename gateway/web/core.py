"""What every page goes through: the session, the language, the CSRF token, the
security headers, the errors; and rendering with Jinja2 (aiohttp-jinja2).

Sessions are the circulation service's (:mod:`circulation.auth`): the page login makes
one with ``auth.patron_login`` / ``auth.staff_login`` and keeps its token in the cookie
the JSON API reads, ``unioncat_session``, here with ``Path=/`` so that one session serves
the pages and ``/api/v1`` alike (``HttpOnly``, ``SameSite=Lax`` so that a link from a
mail opens the page logged in; ``Secure`` as the API's cookie). Logging out ends the
session in the database.

CSRF: a synchronizer token tied to the session, ``HMAC-SHA256(secret, "s:" + session
token)`` (before login, of a random pre-session cookie ``unioncat_pre``), in a hidden
field of every form and checked on every POST; a POST whose ``Origin`` names another
host, or that says ``Sec-Fetch-Site: cross-site``, is refused too. The secret is made at
start (or given): a token from before a restart is refused with "this page has expired".

Headers of every page: a Content-Security-Policy without inline script or style
(scripts and styles are files under ``/static/``), ``frame-ancestors 'none'`` and
``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin`` (no-referrer would make Chromium
send ``Origin: null`` with forms), ``nosniff``, and
``Cache-Control: no-store`` (pages show personal data). Nothing personal goes into a URL:
forms that name a card, a loan or a request POST it.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from circulation import auth
from circulation.availability import unavailable
from circulation.service import Circulation
from circulation.store import NotFound
from config import locate, search_path

from ..api.errors import ApiError
from ..api.session import COOKIE, TOKEN
from .i18n import DEFAULT, Words, lang_of

log = logging.getLogger("unioncat.web")

LANG_COOKIE = "unioncat_lang"
PRE_COOKIE = "unioncat_pre"
CSRF_FIELD = "csrf_token"
MAX_FORM = 64 * 1024                       # bytes of a form body
FLASH_KEEP = 2000                          # sessions whose next page has a message waiting
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
           "Permissions-Policy": "camera=(), microphone=(), geolocation=()"}
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png",
                ".ico": "image/x-icon"}


@dataclass
class WebState:
    circ: Circulation
    ill: Any = None
    api: Any = None                       # the JSON API's state (its jobs scheduler and mailer)
    cookie_secure: bool = True
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    flashes: OrderedDict = field(default_factory=OrderedDict)   # session key -> [(kind, text)]
    static: dict = field(default_factory=dict)                   # name -> (bytes, content type)
    route: Any = None                     # the search route (search/route.py) the OPAC pages search through
    result_sets: Any = None               # the OPAC's own result sets (search.result_sets.ResultSets)

    def sign(self, what: str) -> str:
        return hmac.new(self.secret, what.encode(), hashlib.sha256).hexdigest()


WEB = web.AppKey("web_portal", WebState)


class Redirect(Exception):
    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


class Refused(Exception):
    """A page answers with a message and a status (the form is shown again by the caller
    where it can)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Page:
    """One request to a page: who is logged in, the language, the form, the words."""

    def __init__(self, request: web.Request, st: WebState):
        self.request, self.st = request, st
        self.principal: auth.Principal | None = None
        self.token: str | None = None
        self.form: MultiDictProxy | dict = {}
        self.cookies: list[tuple] = []          # (name, value, options) to set on the answer
        self.lang = DEFAULT
        self.w = Words(DEFAULT)
        self.pre: str | None = None

    @property
    def circ(self) -> Circulation:
        return self.st.circ

    @property
    def card(self) -> str:
        assert self.principal is not None and self.principal.kind == "patron"
        return self.principal.login

    @property
    def patron(self) -> bool:
        return self.principal is not None and self.principal.kind == "patron"

    @property
    def staff(self) -> bool:
        return self.principal is not None and self.principal.kind == "staff"

    @property
    def services_offered(self) -> bool:
        """Whether the staff member's system offers one of Hiroshima's services (the
        workbench links them)."""
        prof = self.circ.profiles.get(self.principal.library) if self.principal is not None else None
        return prof is not None and ((prof.delivery is not None and prof.delivery.enabled)
                                     or prof.proxy.loans != "not_offered" or bool(prof.cards)
                                     or prof.mobile is not None)

    # ----------------------------------------------------------------- session, language

    async def load(self) -> None:
        token = self.request.cookies.get(COOKIE)
        if token and TOKEN.fullmatch(token):
            self.principal = await auth.session_of(self.circ, token)
            if self.principal is not None:
                self.token = token
        pre = self.request.cookies.get(PRE_COOKIE)
        self.pre = pre if pre and TOKEN.fullmatch(pre) else None
        chosen = lang_of(self.request.cookies.get(LANG_COOKIE))
        self.set_lang(chosen or DEFAULT)

    def set_lang(self, lang: str) -> None:
        self.lang = lang
        self.w = Words(lang)

    def cookie(self, name: str, value: str, *, max_age: int | None = None, httponly: bool = True) -> None:
        self.cookies.append((name, value, {"max_age": max_age, "path": "/", "httponly": httponly, "samesite": "Lax",
                                               "secure": self.st.cookie_secure}))

    def start_session(self, token: str, principal: auth.Principal, max_age) -> None:
        self.token, self.principal = token, principal
        self.cookie(COOKIE, token, max_age=int(max_age.total_seconds()))

    def end_session(self) -> None:
        self.token, self.principal = None, None
        self.cookies.append((COOKIE, "", {"max_age": 0, "path": "/", "httponly": True, "samesite": "Lax",
                                              "secure": self.st.cookie_secure}))

    # ----------------------------------------------------------------- CSRF

    @property
    def csrf(self) -> str:
        if self.token is not None:
            return self.st.sign("s:" + self.token)
        if self.pre is None:
            self.pre = secrets.token_urlsafe(24)
            self.cookie(PRE_COOKIE, self.pre)
        return self.st.sign("p:" + self.pre)

    def csrf_ok(self, given: str) -> bool:
        if not given:
            return False
        expected = []
        if self.token is not None:
            expected.append(self.st.sign("s:" + self.token))
        if self.pre is not None:
            expected.append(self.st.sign("p:" + self.pre))
        return any(hmac.compare_digest(given, e) for e in expected)

    def origin_ok(self) -> bool:
        h = self.request.headers
        if h.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return False
        origin = h.get("Origin")
        if origin is None:
            return True
        try:
            return origin != "null" and urlsplit(origin).netloc.lower() == (self.request.host or "").lower()
        except ValueError:
            return False

    # ----------------------------------------------------------------- messages across a redirect

    def _flash_key(self) -> str | None:
        if self.token is not None:
            return self.st.sign("f:" + self.token)
        if self.pre is not None:
            return self.st.sign("f:" + self.pre)
        return None

    def flash(self, text: str, kind: str = "info") -> None:
        if self.token is None and self.pre is None:
            self.pre = secrets.token_urlsafe(24)
            self.cookie(PRE_COOKIE, self.pre)
        key = self._flash_key()
        self.st.flashes.setdefault(key, []).append((kind, text))
        self.st.flashes.move_to_end(key)
        while len(self.st.flashes) > FLASH_KEEP:
            self.st.flashes.popitem(last=False)

    def flashed(self) -> list[tuple[str, str]]:
        key = self._flash_key()
        return self.st.flashes.pop(key, []) if key is not None else []

    # ----------------------------------------------------------------- input

    def field(self, name: str, default: str = "") -> str:
        v = self.form.get(name, default)
        return v.strip() if isinstance(v, str) else default

    def fields(self, name: str) -> list[str]:
        getall = getattr(self.form, "getall", None)
        return [v.strip() for v in getall(name, []) if isinstance(v, str)] if getall else []

    def int_field(self, name: str) -> int:
        v = self.field(name)
        if not v.isdigit() or len(v) > 18:
            raise Refused(400, self.w("bad_input"))
        return int(v)

    def query(self, name: str, default: str = "") -> str:
        return self.request.query.get(name, default)

    # ----------------------------------------------------------------- answers

    def render(self, template: str, status: int = 200, **context) -> web.Response:
        ctx = {"pg": self, "w": self.w, "lang": self.lang, "principal": self.principal,
               "messages": self.flashed(), **context}
        return aiohttp_jinja2.render_template(template, self.request, ctx, status=status)

    def lang_url(self, lang: str) -> str:
        """This page in another language (the switch: ``?lang=``, which sets the cookie)."""
        rest = [(k, v) for k, v in self.request.query.items() if k != "lang"]
        return self.request.path + "?" + urlencode([*rest, ("lang", lang)])

    def redirect(self, path: str, **params) -> Redirect:
        return Redirect(path + ("?" + urlencode(params) if params else ""))


Handler = Callable[[Page], Awaitable[web.StreamResponse]]


def page(who: str | None = None, roles: tuple[str, ...] = ()) -> Callable[[Handler], Callable]:
    """Wrap a page handler: ``who`` None (anyone), "patron" or "staff" (with every one
    of ``roles``). Not logged in: to the login page. POST: the form is read and its CSRF
    token and origin checked first."""

    def wrap(fn: Handler):
        async def handler(request: web.Request) -> web.StreamResponse:
            st: WebState = request.app[WEB]
            pg = Page(request, st)
            try:
                resp = await _run(pg, fn, who, roles)
            except Redirect as r:
                resp = web.Response(status=303, headers={"Location": r.location})
            except Refused as r:
                resp = error_page(pg, r.status, r.message)
            except NotFound:
                resp = error_page(pg, 404, pg.w("not_found"))
            except ApiError as e:                     # the API's scope check, reused
                resp = error_page(pg, e.status, pg.w.message({"message_ja": e.message_ja,
                                                              "message_en": e.message_en}))
            except web.HTTPException:
                raise
            except Exception as e:
                if unavailable(e):
                    log.warning("a page could not reach the circulation database: %s", type(e).__name__)
                    resp = error_page(pg, 503, pg.w("unavailable"))
                    resp.headers["Retry-After"] = "5"
                else:
                    log.exception("page %s %s failed", request.method, request.path)
                    resp = error_page(pg, 500, pg.w("server_error"))
            return finish(pg, resp)

        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler

    return wrap


async def _run(pg: Page, fn: Handler, who: str | None, roles: tuple[str, ...]) -> web.StreamResponse:
    request = pg.request
    await pg.load()
    if request.method == "GET" and "lang" in request.query:
        lang = lang_of(request.query["lang"])
        if lang is not None:
            pg.set_lang(lang)
            pg.cookie(LANG_COOKIE, lang, max_age=365 * 86400)
        rest = [(k, v) for k, v in request.query.items() if k != "lang"]
        raise Redirect(request.path + ("?" + urlencode(rest) if rest else ""))
    if request.cookies.get(LANG_COOKIE) is None and pg.patron:
        info_lang = await _patron_lang(pg)
        if info_lang:
            pg.set_lang(info_lang)
    if request.method == "POST":
        if request.content_length is not None and request.content_length > MAX_FORM:
            raise Refused(413, pg.w("bad_input"))
        try:
            pg.form = await request.post()
        except Exception:  # noqa: BLE001 - an unreadable form is the client's
            raise Refused(400, pg.w("bad_input")) from None
        if not pg.origin_ok() or not pg.csrf_ok(pg.field(CSRF_FIELD)):
            raise Refused(403, pg.w("csrf"))
    if who == "patron" and not pg.patron:
        if pg.staff:
            raise Refused(403, pg.w("forbidden"))
        raise pg.redirect("/login")
    if who == "staff":
        if not pg.staff:
            if pg.patron:
                raise Refused(403, pg.w("forbidden"))
            raise pg.redirect("/staff/login")
        for role in roles:
            if not auth.require_role(pg.principal, role).allowed:
                raise Refused(403, pg.w("forbidden"))
    return await fn(pg)


async def _patron_lang(pg: Page) -> str | None:
    from circulation import queries

    try:
        return lang_of((await queries.patron(pg.circ, pg.card)).locale)
    except NotFound:
        return None


def error_page(pg: Page, status: int, message: str) -> web.Response:
    try:
        return pg.render("error.html", status=status, message=message)
    except Exception:
        log.exception("the error page could not be rendered")
        return web.Response(status=status, text=message, content_type="text/plain", charset="utf-8")


def finish(pg: Page, resp: web.StreamResponse) -> web.StreamResponse:
    for name, value, opts in pg.cookies:
        if opts.get("max_age") == 0:
            resp.del_cookie(name, path="/", secure=opts["secure"], httponly=True, samesite="Lax")
        else:
            resp.set_cookie(name, value, **{k: v for k, v in opts.items() if v is not None})
    for k, v in HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp


# --------------------------------------------------------------------------- templates, static

def template_dirs() -> list[str]:
    """Where templates are looked up, file by file: ``web/templates`` of every
    configuration directory (``UNIONCAT_CONFIG_DIR`` first), then the shipped one."""
    out = []
    for base in search_path():
        d = base / "web" / "templates"
        if d.is_dir():
            out.append(str(d))
    if not out:
        out.append(str(locate("web/templates")))
    return out


def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(template_dirs()),
                         autoescape=jinja2.select_autoescape(default=True),
                         undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def load_static() -> dict[str, tuple[bytes, str]]:
    """The static files (``web/static``, found by config.locate), read once."""
    out = {}
    for base in reversed(search_path()):
        d = base / "web" / "static"
        if not d.is_dir():
            continue
        for f in d.iterdir():
            if f.is_file() and f.suffix in STATIC_TYPES:
                out[f.name] = (f.read_bytes(), STATIC_TYPES[f.suffix])
    return out


async def static(request: web.Request) -> web.StreamResponse:
    st: WebState = request.app[WEB]
    name = request.match_info["name"]
    found = st.static.get(name)
    if found is None:
        raise web.HTTPNotFound()
    body, ctype = found
    resp = web.Response(body=body, content_type=ctype, charset="utf-8" if ctype.startswith("text") else None)
    resp.headers["Cache-Control"] = "public, max-age=3600"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = CSP
    return resp
