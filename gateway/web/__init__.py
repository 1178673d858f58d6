"""The web pages of the circulation service: the patron's 利用者ポータル (My page) and the
staff workbench, server-rendered with Jinja2 (aiohttp-jinja2), served by ``unioncat
serve`` at ``/`` when a circulation database is served (SRU stays at ``/sru``, the JSON
API at ``/api/v1``). docs/web.md has the overview.

=================  ==========================================================
module             holds
=================  ==========================================================
``core``           the session (shared with the API), CSRF tokens, language,
                   security headers, errors, rendering, static files
``i18n``           the words of the pages (Japanese, English)
``patron``         log in, 新規パスワード登録, the portal and its pages
``staff``          the workbench: counter, lists, review, patron lookup, jobs
``staff_ill``      the ILL queues of both roles and their staff actions
``hiroshima``      home delivery, proxy consents, group and school cards,
                   reading-group sets, the mobile library (staff pages)
``search``         the OPAC: search (one box, advanced), facets, sort, paging,
                   the two result modes, 予約ランキング, new arrivals
``search_form``    the search form as data and the query it stands for (pure)
``title``          the title page: the record, holdings with live status, and the
                   patron's actions (reserve, cart, set and group, partner loan)
``record_view``    a union record and its holdings as the pages show them (pure)
=================  ==========================================================

Templates and static files are configuration data (``config/web/templates``,
``config/web/static``, shipped in the wheel and found through :mod:`config`): a
deployment may replace any one of them from ``UNIONCAT_CONFIG_DIR``.

The pages run no SQL: they call the circulation functions the JSON API calls.
"""
from __future__ import annotations

from aiohttp import web

from circulation.service import Circulation
from search.result_sets import ResultSets

from . import hiroshima, patron, search, staff, staff_ill, title
from .core import WEB, WebState, load_static, setup_templates, static

__all__ = ["WEB", "WebState", "mount"]


def mount(app: web.Application, circ: Circulation, *, ill=None, cookie_secure: bool = True,
          secret: bytes | None = None, route=None) -> WebState:
    """Add the pages to ``app`` (the service's main application, whose ``/api/v1``
    sub-application is already mounted: the jobs page uses its scheduler). ``route``:
    the search route SRU and Z39.50 use (search/route.py), which the OPAC's pages
    search through; without one they say the catalog is unavailable."""
    st = WebState(circ, ill=ill, cookie_secure=cookie_secure, route=route,
                  result_sets=ResultSets(search.MAX_SETS))
    if secret is not None:
        st.secret = secret
    st.static = load_static()
    st.api = _api_state(app)
    app[WEB] = st
    setup_templates(app)
    for method, path, handler in (*patron.routes(), *search.routes(), *title.routes(), *staff.routes(),
                                  *staff_ill.routes(), *hiroshima.routes()):
        app.router.add_route(method, path, handler)
    app.router.add_get("/static/{name}", static)
    return st


def _api_state(app: web.Application):
    from ..api import API, STATE

    for r in app.router.resources():
        info = r.get_info()
        if info.get("prefix") == API:
            return info["app"][STATE]
    return None
