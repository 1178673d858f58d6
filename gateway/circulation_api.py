"""The patron and staff JSON API of the circulation service, under ``/api/v1/``.

A sub-application (:func:`make_api`) that :func:`gateway.app.make_app` mounts when it is
given a :class:`~circulation.service.Circulation`. The handlers are thin: they check
the input, call the circulation functions and turn the answers into JSON. The paths,
parameters, bodies and responses are documented in ``gateway/openapi/circulation.json``
(OpenAPI 3.1, served at ``/api/v1/openapi.json``); docs/lifecycle.md has the overview.

Answers
-------
* Success: 200 (201 when something was created), a JSON object.
* A refusal of the service (a :class:`~lifecycle.model.Decision` that is not allowed):
  ``{"error": code, "message_ja", "message_en", "details"}`` with 409 (the request
  is well formed but the rules say no: the renewal limit, a secured hold ...), 422
  (a value the rules do not accept: a pickup branch that is not a service point, a
  password of the wrong length ...), 401 (wrong card or password), 403 (wrong phone
  or old password), 429 (account locked, with ``details.until`` and ``Retry-After``).
* Bad input (not JSON, not an object, unknown field, wrong type, missing field,
  unknown query parameter): 400 ``invalid_input`` / ``bad_json``; a body that is not
  ``application/json``: 415. Never a traceback: anything unexpected is logged and
  answered 500 ``internal_error``.
* Not logged in: 401; logged in as the wrong kind of user or without the staff role:
  403. Somebody else's loan, request, set or bookshelf entry does not exist for a
  patron: 404, the same answer as an id that does not exist at all.
* Dates are ``YYYY-MM-DD``; times ISO 8601 with the service's offset (``+09:00``:
  the service keeps naive Japan local time). Input times without an offset are
  read as Japan time.

Sessions and CSRF
-----------------
``POST /api/v1/login`` (patrons: card number + password) and ``POST
/api/v1/staff/login`` (username + password) answer the session token in the body and
set it as the cookie ``unioncat_session`` (``HttpOnly``, ``SameSite=Strict``, ``Path=/api/v1``,
``Secure`` unless configured off; the default is on except when the service listens
on a loopback address, where plain http is the norm). Clients use either the cookie
(browsers) or ``Authorization: Bearer <token>`` (apps, scripts); when the header is
present the cookie is ignored. Expiry is the circulation service's (patrons: 30 min
idle, 8 h at most; staff: 8 h).

CSRF defence, for requests that change something (POST, PUT, PATCH, DELETE):

1. a request authenticated by the cookie must carry the header ``X-Requested-With``
   (any non-empty value, e.g. ``XMLHttpRequest``). A cross-site page cannot add a
   custom header without a CORS preflight, and this service answers no preflight,
   so the browser never sends such a request; SameSite=Strict already keeps the
   cookie off cross-site requests in current browsers, this covers the rest;
2. on every state-changing request (login included, against login CSRF), an
   ``Origin`` header that names another host than the request's ``Host``, or
   ``Sec-Fetch-Site: cross-site``, is refused;
3. bodies must be ``application/json`` (an HTML form cannot send that).

Bearer requests skip (1): a browser never adds that header by itself.
Refusals: 403 ``csrf_check_failed``.

Notices
-------
Placing, cancelling, renewing, check-in ... queue notices in the outbox. When the
service runs the ``notices`` job (an SMTP host is configured), every successful
state-changing request also wakes that job, so mails go out within seconds instead
of at the next minute.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from circulation import auth, bookshelf, cart, holds, jobs, labels, lists, loans, notices, routing
from circulation import schema as s
from circulation.service import Circulation
from circulation.store import NotFound
from config import locate
from lifecycle import reasons
from lifecycle.model import RETURN_POINT_KINDS, Decision

log = logging.getLogger("unioncat.circulation.api")

API = "/api/v1"
COOKIE = "unioncat_session"
CSRF_HEADER = "X-Requested-With"
JST = ZoneInfo("Asia/Tokyo")
OPENAPI_FILE = locate("gateway/openapi/circulation.json")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY = 256 * 1024
MAX_ID = 999_999_999                       # path ids are \d{1,9}: never overflow an int4
ID = r"{%s:\d{1,9}}"

STATE = web.AppKey("circulation_api", object)

# --------------------------------------------------------------------------- errors

API_REASONS: dict[str, tuple[str, str]] = {
    "bad_json": ("送信された内容をJSONとして読めません。", "The request body is not valid JSON."),
    "invalid_input": ("入力内容に誤りがあります。", "The request is invalid."),
    "unsupported_media_type": ("送信形式は application/json にしてください。",
                               "Send the body as application/json."),
    "not_found": ("見つかりません。", "Not found."),
    "method_not_allowed": ("この操作はできません。", "This method is not allowed here."),
    "body_too_large": ("送信された内容が大きすぎます。", "The request body is too large."),
    "internal_error": ("システムエラーが発生しました。しばらくしてからもう一度お試しください。",
                       "Something went wrong on our side; please try again later."),
    "not_logged_in": reasons.REASONS["not_logged_in"],
    "invalid_authorization": ("認証情報の形式が正しくありません。",
                              "The Authorization header must be 'Bearer <token>'."),
    "csrf_check_failed": ("不正な要求の可能性があるため受け付けませんでした。ページを開き直してください。",
                          "Refused as a possible cross-site request; reload the page and try again."),
    "patron_only": ("利用者としてログインしてください。", "This is for library users: log in with your card."),
    "branch_required": ("館を指定してください。", "Give the branch."),
    "branch_not_yours": ("他の図書館の館では操作できません。", "That branch belongs to another library."),
    "library_not_yours": ("他の図書館の情報は見られません。", "That is another library's data."),
    "item_not_on_shelf": ("この資料は書架にありません（貸出中・確保済みなど）。",
                          "This copy is not on the shelf (on loan, secured ...)."),
    "unknown_job": ("そのジョブはありません。", "There is no such job."),
    "no_mailer": ("メール送信が設定されていません（--smtp-host）。",
                  "Mail is not configured (--smtp-host), so notices cannot be sent."),
    "job_failed": ("ジョブが失敗しました。", "The job failed; see the service log."),
    "dropped_at_in_future": ("返却日時が未来になっています。", "dropped_at is in the future."),
    "test_mail_queued": ("テストメールを送信しました。", "A test mail is on its way."),
    "test_mail_recent": ("テストメールは1分に1回まで送信できます。", "One test mail per minute: it is already on its way."),
    "logged_out": ("ログアウトしました。", "Logged out."),
}

# Decision codes that mean "this value is not acceptable" (422) rather than "the rules
# say no in this situation" (409).
UNPROCESSABLE = frozenset({
    "password_length", "password_charset", "password_too_long", "staff_password_weak",
    "email_invalid", "locale_invalid", "goal_invalid", "unknown_shelf", "title_missing",
    "title_id_too_long", "empty_titles", "duplicate_titles", "set_mismatch",
    "pickup_not_service_point", "pickup_required", "contact_method_not_offered",
    "email_missing", "phone_missing", "fax_missing", "email_needed_for_contact",
    "not_in_cart", "dropped_at_in_future",
})
STATUS_OF = {"login_failed": 401, "staff_login_failed": 401, "not_logged_in": 401,
             "locked_out": 429, "password_change_failed": 403, "registration_failed": 403,
             "role_required": 403, "unknown_card": 404, "entry_not_found": 404}


class ApiError(Exception):
    """Answered as ``{"error", "message_ja", "message_en", "details"}`` with ``status``."""

    def __init__(self, status: int, code: str, message_ja: str | None = None,
                 message_en: str | None = None, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(code)
        ja, en = API_REASONS.get(code, ("エラーが発生しました。", "Error."))
        self.status, self.code = status, code
        self.message_ja = message_ja if message_ja is not None else ja
        self.message_en = message_en if message_en is not None else en
        self.details = details or {}
        self.headers = headers or {}

    def response(self) -> web.Response:
        return json_response({"error": self.code, "message_ja": self.message_ja,
                              "message_en": self.message_en, "details": self.details},
                             self.status, headers=self.headers)


def invalid(field_name: str, problem: str, **extra) -> ApiError:
    return ApiError(400, "invalid_input", message_en=f"The request is invalid: {field_name}: {problem}.",
                    details={"field": field_name, "problem": problem, **extra})


def refusal(d: Decision, status: int | None = None, now: datetime | None = None) -> ApiError:
    """The error answer for a refused Decision."""
    if status is None:
        status = STATUS_OF.get(d.code) or (422 if d.code in UNPROCESSABLE else 409)
    headers = {}
    if d.code == "locked_out" and isinstance(d.details.get("until"), datetime) and now is not None:
        headers["Retry-After"] = str(max(1, int((d.details["until"] - now).total_seconds())))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="unioncat"'
    return ApiError(status, d.code, d.message_ja, d.message_en, jsonable(d.details), headers)


def message(d: Decision) -> dict:
    return {"code": d.code, "message_ja": d.message_ja, "message_en": d.message_en}


# --------------------------------------------------------------------------- JSON

def jsonable(o: Any) -> Any:
    """Plain JSON values: dates ISO, times ISO with the Japan offset, dataclasses as objects."""
    if isinstance(o, datetime):
        o = o.replace(tzinfo=JST) if o.tzinfo is None else o.astimezone(JST)
        return o.isoformat()
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, Decision):
        return {"allowed": o.allowed, **message(o), "details": jsonable(o.details)}
    if is_dataclass(o) and not isinstance(o, type):
        return jsonable(asdict(o))
    if isinstance(o, Mapping):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in o]
    return o


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    body = json.dumps(jsonable(payload), ensure_ascii=False, separators=(",", ":"))
    return web.Response(text=body, status=status, content_type="application/json", charset="utf-8",
                        headers=headers)


def local_time(v: datetime) -> datetime:
    """An input time as the service's naive Japan local time."""
    return v.astimezone(JST).replace(tzinfo=None) if v.tzinfo is not None else v


# --------------------------------------------------------------------------- input

@dataclass(frozen=True)
class F:
    """One input field: ``kind`` str, int, bool, date, datetime, month, list, object_list."""
    kind: str
    required: bool = False
    nullable: bool = False
    choices: tuple | None = None
    max_len: int | None = None
    min: int | None = None
    max: int | None = None
    item: "F | None" = None                  # list items
    fields: "dict[str, F] | None" = None     # object_list items
    max_items: int = 100


def _check(name: str, f: F, v: Any) -> Any:
    if v is None:
        if f.nullable:
            return None
        raise invalid(name, "must not be null")
    k = f.kind
    if k == "str":
        if not isinstance(v, str):
            raise invalid(name, "expected a string")
        if f.max_len is not None and len(v) > f.max_len:
            raise invalid(name, f"longer than {f.max_len} characters")
        if f.choices is not None and v not in f.choices:
            raise invalid(name, "not one of the allowed values", allowed=list(f.choices))
        return v
    if k == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise invalid(name, "expected an integer")
        if (f.min is not None and v < f.min) or (f.max is not None and v > f.max):
            raise invalid(name, f"out of range ({f.min}..{f.max})")
        return v
    if k == "bool":
        if not isinstance(v, bool):
            raise invalid(name, "expected true or false")
        return v
    if k in ("date", "datetime"):
        if not isinstance(v, str):
            raise invalid(name, f"expected an ISO 8601 {k} string")
        try:
            return date.fromisoformat(v) if k == "date" else local_time(datetime.fromisoformat(v))
        except ValueError:
            raise invalid(name, f"expected an ISO 8601 {k}") from None
    if k == "list":
        if not isinstance(v, list):
            raise invalid(name, "expected an array")
        if len(v) > f.max_items:
            raise invalid(name, f"more than {f.max_items} items")
        return [_check(f"{name}[{i}]", f.item, x) for i, x in enumerate(v)]
    if k == "object_list":
        if not isinstance(v, list):
            raise invalid(name, "expected an array")
        if len(v) > f.max_items:
            raise invalid(name, f"more than {f.max_items} items")
        return [_fields(x, f.fields, f"{name}[{i}]") for i, x in enumerate(v)]
    raise AssertionError(k)


def _fields(data: Any, spec: dict[str, F], where: str = "body") -> dict:
    if not isinstance(data, dict):
        raise invalid(where, "expected a JSON object")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise invalid(f"{where}.{unknown[0]}" if where != "body" else unknown[0], "unknown field",
                      unknown=unknown)
    out = {}
    for name, f in spec.items():
        shown = name if where == "body" else f"{where}.{name}"
        if name not in data:
            if f.required:
                raise invalid(shown, "required")
            continue
        out[name] = _check(shown, f, data[name])
    return out


async def body(request: web.Request, spec: dict[str, F]) -> dict:
    """The JSON object body, checked against ``spec`` (unknown fields refused). An empty
    body counts as ``{}`` (then only a spec without required fields passes)."""
    if (request.content_length or 0) > MAX_BODY:
        raise ApiError(413, "body_too_large", details={"max_bytes": MAX_BODY})
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "body_too_large", details={"max_bytes": MAX_BODY})
    if not raw.strip():
        return _fields({}, spec)
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", details={"content_type": request.content_type})
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, "bad_json", details={"problem": str(e)[:200]}) from None
    return _fields(data, spec)


def query(request: web.Request, spec: dict[str, F]) -> dict:
    """Query parameters, checked like a body (all values arrive as strings)."""
    raw: dict[str, Any] = {}
    for k, v in request.query.items():
        if k in raw:
            raise invalid(k, "given more than once")
        raw[k] = v
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        raise invalid(unknown[0], "unknown query parameter", unknown=unknown)
    out = {}
    for name, f in spec.items():
        if name not in raw:
            if f.required:
                raise invalid(name, "required")
            continue
        v = raw[name]
        if f.kind == "int":
            try:
                v = int(v) if v.strip().lstrip("-").isdigit() else v
            except ValueError:
                pass
        elif f.kind == "month":
            try:
                v = date.fromisoformat(f"{v}-01") if len(v) == 7 else None
            except ValueError:
                v = None
            if v is None:
                raise invalid(name, "expected YYYY-MM")
            out[name] = v
            continue
        out[name] = _check(name, f, v)
    return out


def path_id(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


# --------------------------------------------------------------------------- state

@dataclass
class ApiState:
    circ: Circulation
    mailer: Any = None
    job_intervals: dict | None = None        # the scheduler's jobs (None: none)
    cookie_secure: bool = True
    scheduler: Any = None
    openapi: bytes = b""
    _kick_task: asyncio.Task | None = None
    _kick_again: bool = False
    tasks: set = field(default_factory=set)

    def kick_notices(self) -> None:
        """Wake the notices job (when the service runs it): one run at a time, and
        one more if new notices were queued while it ran."""
        sch = self.scheduler
        if sch is None or "notices" not in sch.intervals:
            return
        if self._kick_task is not None and not self._kick_task.done():
            self._kick_again = True
            return

        async def run():
            while True:
                self._kick_again = False
                await sch.run_now("notices")
                if not self._kick_again:
                    return

        self._kick_task = asyncio.create_task(run(), name="api:notices-kick")


@dataclass
class Ctx:
    request: web.Request
    st: ApiState
    principal: auth.Principal | None = None
    token: str | None = None
    via_cookie: bool = False

    @property
    def circ(self) -> Circulation:
        return self.st.circ

    @property
    def card(self) -> str:
        assert self.principal is not None and self.principal.kind == "patron"
        return self.principal.login

    @property
    def actor(self) -> str:
        return self.principal.login if self.principal is not None else ""


def _origin_ok(request: web.Request) -> bool:
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return netloc.lower() == (request.host or "").lower()


async def _authenticate(ctx: Ctx) -> None:
    """Find the session (bearer header first, else the cookie); sets ``ctx.principal``."""
    request = ctx.request
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "invalid_authorization", headers={"WWW-Authenticate": 'Bearer realm="unioncat"'})
        ctx.token, ctx.via_cookie = token.strip(), False
    else:
        ctx.token, ctx.via_cookie = request.cookies.get(COOKIE) or None, True
    if ctx.token is None:
        return
    if ctx.via_cookie and request.method in UNSAFE and not request.headers.get(CSRF_HEADER, "").strip():
        raise ApiError(403, "csrf_check_failed", details={"missing_header": CSRF_HEADER})
    ctx.principal = await auth.session_of(ctx.circ, ctx.token)


Handler = Callable[[Ctx], Awaitable[Any]]


def _endpoint(handler: Handler, who: str | None, role: str | None):
    """Wrap a handler: CSRF checks, authentication (``who``: None, "any", "patron",
    "staff" + ``role``), JSON answer, and a notices kick after a successful change."""
    async def h(request: web.Request) -> web.StreamResponse:
        st: ApiState = request.app[STATE]
        ctx = Ctx(request, st)
        if request.method in UNSAFE and not _origin_ok(request):
            raise ApiError(403, "csrf_check_failed", details={"origin": request.headers.get("Origin")})
        if who is not None:
            await _authenticate(ctx)
            if who != "any":
                if ctx.principal is None:
                    raise ApiError(401, "not_logged_in", headers={"WWW-Authenticate": 'Bearer realm="unioncat"'})
                if who == "patron" and ctx.principal.kind != "patron":
                    raise ApiError(403, "patron_only")
                if who == "staff":
                    d = auth.require_role(ctx.principal, role or "circulation")
                    if not d.allowed:
                        raise refusal(d)
        result = await handler(ctx)
        if isinstance(result, web.StreamResponse):
            resp = result
        else:
            status, payload = result if isinstance(result, tuple) else (200, result)
            resp = json_response(payload, status)
        if request.method in UNSAFE and resp.status < 400:
            st.kick_notices()
        return resp

    return h


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    """Every failure under /api/v1 as a JSON error, never a traceback."""
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except NotFound as e:
        log.debug("not found: %s", e)
        return ApiError(404, "not_found").response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(e.status)
        headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        if code is None:
            return ApiError(e.status, "invalid_input", message_en=e.reason, headers=headers).response()
        return ApiError(e.status, code, headers=headers).response()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return ApiError(500, "internal_error").response()


# --------------------------------------------------------------------------- small reads

async def _patron_row(circ: Circulation, card: str):
    async with circ.db.read() as conn:
        row = (await conn.execute(select(s.patrons).where(s.patrons.c.card_number == card))).first()
    if row is None:
        raise NotFound(card)
    return row


async def _request_row(circ: Circulation, request_id: int):
    async with circ.db.read() as conn:
        row = (await conn.execute(select(s.requests).where(s.requests.c.id == request_id))).first()
    if row is None:
        raise NotFound(f"request {request_id}")
    return row


def _branches(circ: Circulation, library: str, *, pickup_only: bool = False) -> list[dict]:
    prof = circ.profiles.get(library)
    if prof is None:
        return []
    return [{"code": c, "name": bc.branch.name} for c, bc in prof.branches.items()
            if bc.branch.pickup or not pickup_only]


def _branch_name(circ: Circulation, code: str | None) -> str | None:
    if not code:
        return None
    for p in circ.profiles.values():
        b = p.branch(code)
        if b is not None:
            return b.name
    return code


def _settings(circ: Circulation, row) -> dict:
    return {"email": row.email, "locale": row.locale,
            "default_pickup_branch": row.default_pickup_branch,
            "default_pickup_name": _branch_name(circ, row.default_pickup_branch),
            "default_contact_method": row.default_contact_method,
            "contact_ja": labels.CONTACT_JA.get(row.default_contact_method, ""),
            "new_book_alerts": bool(row.new_book_alerts), "history_opt_in": bool(row.history_opt_in)}


def _choices(circ: Circulation, row) -> dict:
    prof = circ.profiles.get(row.library)
    return {"pickup_branches": _branches(circ, row.library, pickup_only=True),
            "contact_methods": sorted(prof.placing.contact_methods) if prof else [],
            "locales": list(bookshelf.LOCALES)}


async def _request_view(ctx: Ctx, request_id: int) -> dict | None:
    for r in await lists.patron_requests(ctx.circ, ctx.card):
        if r["request_id"] == request_id:
            return r
    return None


async def _loan_view(ctx: Ctx, loan_id: int) -> dict | None:
    for r in await loans.patron_loans(ctx.circ, ctx.card):
        if r["loan_id"] == loan_id:
            return r
    return None


# --------------------------------------------------------------------------- public

CARD = F("str", required=True, max_len=32)
PASSWORD = F("str", required=True, max_len=1024)


def _session_cookie(resp: web.Response, st: ApiState, token: str, max_age: timedelta) -> None:
    resp.set_cookie(COOKIE, token, max_age=int(max_age.total_seconds()), path=API, httponly=True,
                    samesite="Strict", secure=st.cookie_secure)


async def login(ctx: Ctx):
    b = await body(ctx.request, {"card_number": CARD, "password": PASSWORD})
    res = await auth.patron_login(ctx.circ, card=b["card_number"], password=b["password"])
    if res.session_token is None:
        raise refusal(res.decision, now=ctx.circ.now())
    p = res.principal
    row = await _patron_row(ctx.circ, p.login)
    resp = json_response({"token": res.session_token, "kind": "patron", "card_number": p.login,
                          "name": p.name, "library": p.library, **message(res.decision),
                          "settings": _settings(ctx.circ, row)})
    _session_cookie(resp, ctx.st, res.session_token, auth.PATRON_MAX)
    return resp


def _staff_view(p: auth.Principal) -> dict:
    return {"username": p.login, "name": p.name, "library": p.library, "branch": p.branch,
            "roles": sorted(p.roles)}


async def staff_login(ctx: Ctx):
    b = await body(ctx.request, {"username": F("str", required=True, max_len=64), "password": PASSWORD})
    res = await auth.staff_login(ctx.circ, username=b["username"], password=b["password"])
    if res.session_token is None:
        raise refusal(res.decision, now=ctx.circ.now())
    resp = json_response({"token": res.session_token, "kind": "staff", **message(res.decision),
                          "staff": _staff_view(res.principal)})
    _session_cookie(resp, ctx.st, res.session_token, auth.STAFF_SESSION)
    return resp


async def logout(ctx: Ctx):
    await body(ctx.request, {})
    done = await auth.logout(ctx.circ, ctx.token) if ctx.token else False
    ja, en = API_REASONS["logged_out"]
    resp = json_response({"logged_out": done, "message_ja": ja, "message_en": en})
    resp.del_cookie(COOKIE, path=API, secure=ctx.st.cookie_secure, httponly=True, samesite="Strict")
    return resp


async def password_registration(ctx: Ctx):
    b = await body(ctx.request, {"card_number": CARD, "phone": F("str", required=True, max_len=32),
                                 "new_password": PASSWORD})
    d = await auth.set_password(ctx.circ, card=b["card_number"], new_password=b["new_password"],
                                role="patron", actor=b["card_number"], registered_phone=b["phone"])
    if not d.allowed:
        raise refusal(d, now=ctx.circ.now())
    return message(d)


async def openapi(ctx: Ctx):
    return web.Response(body=ctx.st.openapi, content_type="application/json", charset="utf-8")


# --------------------------------------------------------------------------- patron: me, loans

async def me(ctx: Ctx):
    row = await _patron_row(ctx.circ, ctx.card)
    lib = ctx.circ.profiles.get(row.library)
    return {"card_number": row.card_number, "name": row.name, "library": row.library,
            "library_name": lib.name if lib else row.library, "phone": row.phone,
            "reading_goal": row.reading_goal, "settings": _settings(ctx.circ, row)}


async def my_loans(ctx: Ctx):
    query(ctx.request, {})
    return {"loans": await loans.patron_loans(ctx.circ, ctx.card)}


async def renew(ctx: Ctx):
    await body(ctx.request, {})
    loan_id = path_id(ctx.request, "loan_id")
    res = await loans.renew(ctx.circ, loan_id=loan_id, role="patron", actor=ctx.card, channel="web",
                            card=ctx.card)
    if not res.decision.allowed:
        raise refusal(res.decision)
    return {"loan_id": loan_id, "due": res.due, "renewals": res.renewals, **message(res.decision),
            "loan": await _loan_view(ctx, loan_id)}


# --------------------------------------------------------------------------- patron: requests

TITLE_ID = F("str", required=True, max_len=cart.TITLE_ID_MAX)
TITLE = F("str", max_len=cart.TITLE_MAX)
BRANCH = F("str", max_len=64)
CONTACT = F("str", max_len=16)
MEMO = F("str", max_len=1000)
TITLES = F("object_list", fields={"title_id": TITLE_ID, "title": TITLE}, max_items=50)
PLACE_FIELDS = {"title_id": F("str", max_len=cart.TITLE_ID_MAX), "title": TITLE, "titles": TITLES,
                "mode": F("str", choices=("set", "group")), "pickup_branch": BRANCH,
                "contact_method": CONTACT, "memo": MEMO, "material_type": F("str", max_len=32),
                "publication_date": F("date")}


async def _place(ctx: Ctx, b: dict, *, card: str, channel: str, role: str, actor: str,
                 submitted_at_branch: str | None, default_pickup: str | None):
    if ("title_id" in b) == ("titles" in b):
        raise invalid("title_id", "give either title_id or titles")
    if "titles" in b and "mode" not in b:
        raise invalid("mode", "required with titles")
    if "title_id" in b and "mode" in b:
        raise invalid("mode", "only with titles")
    if "title_id" in b and not b["title_id"].strip():
        raise refusal(reasons.decide("title_missing"))
    pickup = b.get("pickup_branch") or default_pickup
    if not pickup:
        prow = await _patron_row(ctx.circ, card)
        raise refusal(reasons.decide("pickup_required",
                                  choices=[x["code"] for x in _branches(ctx.circ, prow.library, pickup_only=True)]))
    common = dict(card=card, pickup_branch=pickup, channel=channel, role=role, actor=actor,
                  contact_method=b.get("contact_method"), memo=b.get("memo", ""),
                  material_type=b.get("material_type"), publication_date=b.get("publication_date"),
                  submitted_at_branch=submitted_at_branch)
    if "title_id" in b:
        res = await holds.place(ctx.circ, title_id=b["title_id"], title=b.get("title", ""), **common)
        if res.request_id is None:
            raise refusal(res.decision)
        return res.request_id, res.position, None, [res.request_id]
    titles = {t["title_id"]: t.get("title", "") for t in b["titles"]}
    ids = [t["title_id"] for t in b["titles"]]
    fn = holds.place_set if b["mode"] == "set" else holds.place_group
    res = await fn(ctx.circ, title_ids=ids, titles=titles, **common)
    if not res.request_ids:
        raise refusal(res.decision)
    link = res.set_id if b["mode"] == "set" else res.group_id
    return None, None, link, res.request_ids


async def place_request(ctx: Ctx):
    b = await body(ctx.request, PLACE_FIELDS)
    row = await _patron_row(ctx.circ, ctx.card)
    rid, pos, link, ids = await _place(ctx, b, card=ctx.card, channel="web", role="patron",
                                       actor=ctx.card, submitted_at_branch=None,
                                       default_pickup=row.default_pickup_branch)
    views = {r["request_id"]: r for r in await lists.patron_requests(ctx.circ, ctx.card)}
    return 201, _placed(b, rid, pos, link, ids, views)


def _placed(b: dict, rid, pos, link, ids, views: dict) -> dict:
    mode = b.get("mode", "single")
    return {"mode": mode, "request_id": rid, "position": pos,
            "set_id": link if mode == "set" else None, "group_id": link if mode == "group" else None,
            "request_ids": ids, "requests": [views[i] for i in ids if i in views]}


async def my_requests(ctx: Ctx):
    query(ctx.request, {})
    return {"requests": await lists.patron_requests(ctx.circ, ctx.card)}


async def my_cancelled(ctx: Ctx):
    query(ctx.request, {})
    return {"requests": await lists.cancelled_requests(ctx.circ, ctx.card)}


async def change_request(ctx: Ctx):
    b = await body(ctx.request, {"pickup_branch": BRANCH, "contact_method": CONTACT})
    if not b:
        raise invalid("body", "give pickup_branch and/or contact_method")
    rid = path_id(ctx.request, "request_id")
    d = await holds.change(ctx.circ, request_id=rid, card=ctx.card, pickup_branch=b.get("pickup_branch"),
                           contact_method=b.get("contact_method"), role="patron", actor=ctx.card)
    if not d.allowed:
        raise refusal(d)
    return {"request": await _request_view(ctx, rid), **message(d)}


async def cancel_request(ctx: Ctx):
    await body(ctx.request, {})
    rid = path_id(ctx.request, "request_id")
    d = await holds.cancel(ctx.circ, request_id=rid, role="patron", actor=ctx.card, channel="web",
                           card=ctx.card)
    if not d.allowed:
        raise refusal(d)
    row = await _request_row(ctx.circ, rid)
    cancelled = next((r for r in await lists.cancelled_requests(ctx.circ, ctx.card)
                      if r["request_id"] == rid), None)
    return {"request_id": rid, "state": row.state, **message(d), "cancelled": cancelled}


async def _suspend_or_resume(ctx: Ctx, fn):
    await body(ctx.request, {})
    rid = path_id(ctx.request, "request_id")
    d = await fn(ctx.circ, request_id=rid, role="patron", actor=ctx.card, card=ctx.card, channel="web")
    if not d.allowed:
        raise refusal(d)
    return {"request": await _request_view(ctx, rid), **message(d)}


async def suspend_request(ctx: Ctx):
    return await _suspend_or_resume(ctx, holds.suspend)


async def resume_request(ctx: Ctx):
    return await _suspend_or_resume(ctx, holds.resume)


async def reorder_set(ctx: Ctx):
    b = await body(ctx.request, {"request_ids": F("list", required=True, item=F("int", min=1, max=MAX_ID),
                                                  max_items=50)})
    set_id = ctx.request.match_info["set_id"]
    d = await holds.reorder_set(ctx.circ, card=ctx.card, set_id=set_id, request_ids=b["request_ids"],
                                role="patron", actor=ctx.card)
    if not d.allowed:
        raise refusal(d)
    members = [r for r in await lists.patron_requests(ctx.circ, ctx.card) if r["set_id"] == set_id]
    members.sort(key=lambda r: r["set_position"])
    return {"set_id": set_id, "requests": members, **message(d)}


# --------------------------------------------------------------------------- patron: cart

def _cart_view(its: list) -> dict:
    return {"items": [{"title_id": i.title_id, "title": i.title, "added_at": i.added_at} for i in its],
            "count": len(its), "max": cart.CART_MAX}


async def get_cart(ctx: Ctx):
    query(ctx.request, {})
    return _cart_view(await cart.items(ctx.circ, ctx.card))


async def add_to_cart(ctx: Ctx):
    b = await body(ctx.request, {"title_id": TITLE_ID, "title": TITLE})
    d = await cart.add(ctx.circ, ctx.card, b["title_id"], b.get("title", ""))
    if not d.allowed:
        raise refusal(d)
    view = _cart_view(await cart.items(ctx.circ, ctx.card))
    return (201 if d.code == "added" else 200), {"added": d.code == "added", **message(d), "cart": view}


async def remove_from_cart(ctx: Ctx):
    q = query(ctx.request, {"title_id": F("str", max_len=cart.TITLE_ID_MAX)})
    if "title_id" in q:
        d = await cart.remove(ctx.circ, ctx.card, q["title_id"])
        if not d.allowed:
            raise refusal(d, status=404)
        removed = 1
    else:
        removed = await cart.clear(ctx.circ, ctx.card)
    return {"removed": removed, "cart": _cart_view(await cart.items(ctx.circ, ctx.card))}


async def checkout_cart(ctx: Ctx):
    b = await body(ctx.request, {"pickup_branch": BRANCH, "contact_method": CONTACT, "memo": MEMO,
                                 "title_ids": F("list", item=F("str", max_len=cart.TITLE_ID_MAX),
                                                max_items=cart.CART_MAX)})
    res = await cart.checkout(ctx.circ, card=ctx.card, pickup_branch=b.get("pickup_branch"),
                              contact_method=b.get("contact_method"), memo=b.get("memo", ""),
                              title_ids=b.get("title_ids"), channel="web", role="patron", actor=ctx.card)
    if not res.decision.allowed:
        raise refusal(res.decision)
    views = {r["request_id"]: r for r in await lists.patron_requests(ctx.circ, ctx.card)}
    return {**message(res.decision), "pickup_branch": res.pickup_branch,
            "contact_method": res.contact_method,
            "placed": [{"title_id": p.title_id, "title": p.title, "request_id": p.request_id,
                        "position": p.position, "request": views.get(p.request_id)} for p in res.placed],
            "refused": [{"title_id": r.title_id, "title": r.title, "error": r.decision.code,
                         "message_ja": r.decision.message_ja, "message_en": r.decision.message_en,
                         "details": jsonable(r.decision.details)} for r in res.refused],
            "cart": _cart_view(await cart.items(ctx.circ, ctx.card))}


# --------------------------------------------------------------------------- patron: bookshelf

def _shelf(ctx: Ctx) -> str:
    shelf = ctx.request.match_info["shelf"]
    if shelf not in bookshelf.SHELVES:
        raise ApiError(404, "not_found", details={"shelves": list(bookshelf.SHELVES)})
    return shelf


def _entry(e: bookshelf.ShelfEntry) -> dict:
    return {"entry_id": e.id, "shelf": e.shelf, "title_id": e.title_id, "title": e.title,
            "added_at": e.added_at, "note": e.note, "loan_id": e.loan_id}


async def get_shelf(ctx: Ctx):
    query(ctx.request, {})
    shelf = _shelf(ctx)
    return {"shelf": shelf, "entries": [_entry(e) for e in await bookshelf.list_shelf(ctx.circ, ctx.card, shelf)]}


async def add_to_shelf(ctx: Ctx):
    shelf = _shelf(ctx)
    b = await body(ctx.request, {"title_id": TITLE_ID, "title": TITLE,
                                 "note": F("str", max_len=bookshelf.NOTE_MAX)})
    d = await bookshelf.add_to_shelf(ctx.circ, ctx.card, shelf, b["title_id"], title=b.get("title", ""),
                                     note=b.get("note", ""))
    if not d.allowed:
        raise refusal(d)
    return (201 if d.code == "added" else 200), {"entry_id": d.details["id"], "added": d.code == "added",
                                                 **message(d)}


async def remove_from_shelf(ctx: Ctx):
    await body(ctx.request, {})
    shelf = _shelf(ctx)
    entry_id = path_id(ctx.request, "entry_id")
    if not any(e.id == entry_id for e in await bookshelf.list_shelf(ctx.circ, ctx.card, shelf)):
        raise ApiError(404, "not_found")
    d = await bookshelf.remove_entry(ctx.circ, ctx.card, entry_id)
    if not d.allowed:
        raise refusal(d)
    return {"removed": True, **message(d)}


async def history_opt_in(ctx: Ctx):
    b = await body(ctx.request, {"enabled": F("bool", required=True)})
    d = await bookshelf.set_history_opt_in(ctx.circ, ctx.card, b["enabled"])
    return {"history_opt_in": b["enabled"], **message(d)}


async def delete_history(ctx: Ctx):
    await body(ctx.request, {})
    d = await bookshelf.delete_history(ctx.circ, ctx.card)
    return {"deleted": d.details.get("deleted", 0), **message(d)}


async def get_goal(ctx: Ctx):
    query(ctx.request, {})
    row = await _patron_row(ctx.circ, ctx.card)
    return {"goal": row.reading_goal}


async def put_goal(ctx: Ctx):
    b = await body(ctx.request, {"goal": F("int", required=True, nullable=True)})
    d = await bookshelf.set_reading_goal(ctx.circ, ctx.card, b["goal"])
    if not d.allowed:
        raise refusal(d)
    return {"goal": b["goal"], **message(d)}


async def reading_progress(ctx: Ctx):
    q = query(ctx.request, {"year": F("int", min=1900, max=2999)})
    return await bookshelf.reading_progress(ctx.circ, ctx.card, q.get("year", ctx.circ.now().year))


async def ranking(ctx: Ctx):
    q = query(ctx.request, {"library": F("str", required=True, max_len=64),
                            "limit": F("int", min=1, max=100)})
    titles = await lists.reservation_ranking(ctx.circ, q["library"], q.get("limit", 20))
    return {"library": q["library"], "titles": titles}


async def my_calendar(ctx: Ctx):
    q = query(ctx.request, {"month": F("month")})
    return await bookshelf.patron_calendar(ctx.circ, ctx.card, q.get("month", ctx.circ.now().date()))


# --------------------------------------------------------------------------- patron: settings

async def get_settings(ctx: Ctx):
    query(ctx.request, {})
    row = await _patron_row(ctx.circ, ctx.card)
    return {"settings": _settings(ctx.circ, row), "choices": _choices(ctx.circ, row)}


async def patch_settings(ctx: Ctx):
    b = await body(ctx.request, {"email": F("str", max_len=254), "locale": F("str", max_len=8),
                                 "default_pickup_branch": BRANCH, "default_contact_method": CONTACT,
                                 "new_book_alerts": F("bool"), "update_existing_requests": F("bool")})
    d = await bookshelf.update_settings(
        ctx.circ, card=ctx.card, email=b.get("email"), locale=b.get("locale"),
        default_pickup_branch=b.get("default_pickup_branch"),
        default_contact_method=b.get("default_contact_method"), new_book_alerts=b.get("new_book_alerts"),
        update_live_holds=b.get("update_existing_requests", False))
    if not d.allowed:
        raise refusal(d)
    row = await _patron_row(ctx.circ, ctx.card)
    warning = message(d) if d.code == "email_domain_warning" else None
    return {"settings": _settings(ctx.circ, row), "changed": d.details.get("changed", []),
            "requests_updated": d.details.get("holds_updated", 0), "warning": warning, **message(d)}


async def change_password(ctx: Ctx):
    b = await body(ctx.request, {"old_password": PASSWORD, "new_password": PASSWORD})
    d = await auth.set_password(ctx.circ, card=ctx.card, new_password=b["new_password"],
                                old_password=b["old_password"], role="patron", actor=ctx.card,
                                keep_session=ctx.token)
    if not d.allowed:
        raise refusal(d, now=ctx.circ.now())
    return message(d)


async def test_mail(ctx: Ctx):
    await body(ctx.request, {})
    row = await _patron_row(ctx.circ, ctx.card)
    if not row.email:
        raise refusal(reasons.decide("email_missing"), status=409)
    now = ctx.circ.now()
    key = f"test_mail:{row.id}:{now:%Y%m%dT%H%M}"
    async with ctx.circ.db.transaction() as conn:
        before = (await conn.execute(select(s.notices.c.id).where(s.notices.c.dedupe_key == key))).first()
        await notices.enqueue(conn, kind="test_mail", patron_id=row.id, dedupe_key=key, at=now)
    code = "test_mail_recent" if before is not None else "test_mail_queued"
    ja, en = API_REASONS[code]
    return 202, {"queued": before is None, "email": row.email, "code": code, "message_ja": ja,
                 "message_en": en}


# --------------------------------------------------------------------------- staff

def _staff_branch(ctx: Ctx, branch: str | None) -> str:
    """The branch a staff request acts at (the staff member's own by default), which
    must belong to the staff member's library."""
    branch = branch or ctx.principal.branch
    if not branch:
        raise refusal(Decision(False, "branch_required", *API_REASONS["branch_required"]), status=422)
    prof = ctx.circ.profile_of_branch(branch)            # NotFound → 404
    if prof.system != ctx.principal.library:
        raise ApiError(403, "branch_not_yours", details={"branch": branch, "library": prof.system})
    return branch


async def _own_request(ctx: Ctx, request_id: int):
    row = await _request_row(ctx.circ, request_id)
    if row.library != ctx.principal.library:
        raise NotFound(f"request {request_id}")
    return row


async def staff_me(ctx: Ctx):
    query(ctx.request, {})
    return {"staff": _staff_view(ctx.principal)}


async def staff_checkout(ctx: Ctx):
    b = await body(ctx.request, {"barcode": F("str", required=True, max_len=64), "card_number": CARD,
                                 "branch": BRANCH, "channel": F("str", choices=("counter", "kiosk"))})
    branch = _staff_branch(ctx, b.get("branch"))
    res = await loans.check_out(ctx.circ, barcode=b["barcode"], card=b["card_number"], branch=branch,
                                role="staff", actor=ctx.actor, channel=b.get("channel", "counter"))
    if not res.decision.allowed:
        raise refusal(res.decision)
    return 201, {"loan_id": res.loan_id, "due": res.due, "request_id": res.request_id,
                 "barcode": b["barcode"], "card_number": b["card_number"], "branch": branch,
                 **message(res.decision)}


def _routing(r: routing.Routing | None) -> dict | None:
    if r is None:
        return None
    return {"kind": r.kind, "request_id": r.request_id, "to_branch": r.to_branch}


async def staff_checkin(ctx: Ctx):
    b = await body(ctx.request, {"barcode": F("str", required=True, max_len=64), "branch": BRANCH,
                                 "return_kind": F("str", choices=tuple(sorted(RETURN_POINT_KINDS))),
                                 "walk_in": F("bool"), "dropped_at": F("datetime")})
    branch = _staff_branch(ctx, b.get("branch"))
    dropped = b.get("dropped_at")
    if dropped is not None and dropped > ctx.circ.now():
        raise refusal(Decision(False, "dropped_at_in_future", *API_REASONS["dropped_at_in_future"]))
    res = await loans.check_in(ctx.circ, barcode=b["barcode"], branch=branch, role="staff",
                               actor=ctx.actor, return_kind=b.get("return_kind", "counter"),
                               dropped_at=dropped, walk_in=b.get("walk_in", False))
    d = res.decision
    if not d.allowed and d.code != "not_on_loan":
        raise refusal(d)
    return {"returned": res.returned_at is not None, "loan_id": res.loan_id,
            "returned_at": res.returned_at, "overdue_days": res.overdue_days,
            "routing": _routing(res.routing), **message(d), "details": jsonable(d.details)}


async def staff_trap(ctx: Ctx):
    b = await body(ctx.request, {"barcode": F("str", required=True, max_len=64), "branch": BRANCH,
                                 "walk_in": F("bool")})
    branch = _staff_branch(ctx, b.get("branch"))
    r = await routing.trap_from_shelf(ctx.circ, barcode=b["barcode"], branch=branch, role="staff",
                                    actor=ctx.actor, walk_in=b.get("walk_in", False))
    if r.kind == routing.NOT_AVAILABLE:
        raise ApiError(409, "item_not_on_shelf", details={"barcode": b["barcode"]})
    return {"routing": _routing(r)}


async def staff_shelf(ctx: Ctx):
    branch = _staff_branch(ctx, query(ctx.request, {"branch": BRANCH}).get("branch"))
    return {"branch": branch, "holds": await lists.shelf_list(ctx.circ, branch)}


async def staff_pull_list(ctx: Ctx):
    branch = _staff_branch(ctx, query(ctx.request, {"branch": BRANCH}).get("branch"))
    return {"branch": branch, "items": await lists.pull_list(ctx.circ, branch)}


async def staff_transits(ctx: Ctx):
    q = query(ctx.request, {"branch": BRANCH, "direction": F("str", choices=("out", "in"))})
    branch = _staff_branch(ctx, q.get("branch"))
    direction = q.get("direction", "out")
    return {"branch": branch, "direction": direction,
            "transits": await lists.transit_list(ctx.circ, branch, direction)}


async def staff_call_list(ctx: Ctx):
    branch = _staff_branch(ctx, query(ctx.request, {"branch": BRANCH}).get("branch"))
    return {"branch": branch, "entries": await notices.call_list(ctx.circ, branch)}


async def staff_cancel(ctx: Ctx):
    b = await body(ctx.request, {"reason": F("str", max_len=500), "branch": BRANCH})
    rid = path_id(ctx.request, "request_id")
    await _own_request(ctx, rid)
    branch = _staff_branch(ctx, b.get("branch"))
    d = await holds.cancel(ctx.circ, request_id=rid, role="staff", actor=ctx.actor, channel="counter",
                           reason=b.get("reason", ""), branch=branch)
    if not d.allowed:
        raise refusal(d)
    row = await _request_row(ctx.circ, rid)
    return {"request_id": rid, "state": row.state, "cancel_reason": row.cancel_reason, **message(d)}


async def staff_history(ctx: Ctx):
    query(ctx.request, {})
    rid = path_id(ctx.request, "request_id")
    row = await _own_request(ctx, rid)
    return {"request_id": rid, "state": row.state, "title_id": row.title_id, "title": row.title,
            "events": await lists.request_history(ctx.circ, rid)}


async def staff_review_list(ctx: Ctx):
    q = query(ctx.request, {"library": F("str", max_len=64)})
    library = q.get("library", ctx.principal.library)
    if library != ctx.principal.library:
        raise ApiError(403, "library_not_yours", details={"library": library})
    return {"library": library, "requests": await lists.review_queue(ctx.circ, library)}


async def staff_review(ctx: Ctx):
    b = await body(ctx.request, {"decision": F("str", required=True, choices=("purchase", "ill", "refuse")),
                                 "reason": F("str", max_len=500)})
    rid = path_id(ctx.request, "request_id")
    await _own_request(ctx, rid)
    d = await holds.review(ctx.circ, request_id=rid, decision=b["decision"], reason=b.get("reason", ""),
                           role="staff", actor=ctx.actor)
    if not d.allowed:
        raise refusal(d)
    row = await _request_row(ctx.circ, rid)
    return {"request_id": rid, "state": row.state, "status_ja": labels.STATUS_JA.get(row.state, ""),
            **message(d)}


async def staff_run_job(ctx: Ctx):
    await body(ctx.request, {})
    name = ctx.request.match_info["name"]
    if name not in jobs.JOBS:
        raise ApiError(404, "unknown_job", details={"jobs": list(jobs.JOBS)})
    st = ctx.st
    if name == "notices" and st.mailer is None:
        raise ApiError(409, "no_mailer")
    sch = st.scheduler
    if sch is not None and name in sch.intervals:
        failures = sch.failures[name]
        changed = await sch.run_now(name)            # never overlaps the scheduled run
        if sch.failures[name] != failures:
            raise ApiError(500, "job_failed", details={"job": name})
    else:
        try:
            changed = await jobs.run_job(ctx.circ, name, st.mailer)
        except Exception:
            log.exception("job %s failed (run from the API)", name)
            raise ApiError(500, "job_failed", details={"job": name}) from None
    return {"job": name, "changed": changed}


async def staff_place(ctx: Ctx):
    fields = {**PLACE_FIELDS, "card_number": CARD, "branch": BRANCH,
              "channel": F("str", choices=("counter", "phone", "fax", "form"))}
    b = await body(ctx.request, fields)
    branch = _staff_branch(ctx, b.get("branch"))
    async with ctx.circ.db.read() as conn:
        prow = (await conn.execute(select(s.patrons).where(s.patrons.c.card_number == b["card_number"]))).first()
    if prow is None or prow.library != ctx.principal.library:
        raise NotFound(b["card_number"])
    rid, pos, link, ids = await _place(ctx, b, card=prow.card_number, channel=b.get("channel", "counter"),
                                       role="staff", actor=ctx.actor, submitted_at_branch=branch,
                                       default_pickup=prow.default_pickup_branch or branch)
    views = {r["request_id"]: r for r in await lists.patron_requests(ctx.circ, prow.card_number)}
    return 201, _placed(b, rid, pos, link, ids, views)


# --------------------------------------------------------------------------- routes

# (method, path under /api/v1, handler, who, role). Every route is documented in
# gateway/openapi/circulation.json (a test checks both ways).
ROUTES: list[tuple[str, str, Handler, str | None, str | None]] = [
    ("GET", "/openapi.json", openapi, None, None),
    ("POST", "/login", login, None, None),
    ("POST", "/staff/login", staff_login, None, None),
    ("POST", "/logout", logout, "any", None),
    ("POST", "/password-registration", password_registration, None, None),
    ("GET", "/ranking", ranking, None, None),

    ("GET", "/me", me, "patron", None),
    ("GET", "/me/loans", my_loans, "patron", None),
    ("POST", f"/me/loans/{ID % 'loan_id'}/renew", renew, "patron", None),
    ("GET", "/me/requests", my_requests, "patron", None),
    ("POST", "/me/requests", place_request, "patron", None),
    ("GET", "/me/requests/cancelled", my_cancelled, "patron", None),
    ("PATCH", f"/me/requests/{ID % 'request_id'}", change_request, "patron", None),
    ("POST", f"/me/requests/{ID % 'request_id'}/cancel", cancel_request, "patron", None),
    ("POST", f"/me/requests/{ID % 'request_id'}/suspend", suspend_request, "patron", None),
    ("POST", f"/me/requests/{ID % 'request_id'}/resume", resume_request, "patron", None),
    ("PUT", "/me/requests/sets/{set_id}/order", reorder_set, "patron", None),
    ("GET", "/me/cart", get_cart, "patron", None),
    ("POST", "/me/cart", add_to_cart, "patron", None),
    ("DELETE", "/me/cart", remove_from_cart, "patron", None),
    ("POST", "/me/cart/checkout", checkout_cart, "patron", None),
    ("GET", "/me/bookshelf/{shelf}", get_shelf, "patron", None),
    ("POST", "/me/bookshelf/{shelf}", add_to_shelf, "patron", None),
    ("DELETE", f"/me/bookshelf/{{shelf}}/{ID % 'entry_id'}", remove_from_shelf, "patron", None),
    ("PUT", "/me/history-opt-in", history_opt_in, "patron", None),
    ("DELETE", "/me/history", delete_history, "patron", None),
    ("GET", "/me/reading-goal", get_goal, "patron", None),
    ("PUT", "/me/reading-goal", put_goal, "patron", None),
    ("GET", "/me/reading-progress", reading_progress, "patron", None),
    ("GET", "/me/calendar", my_calendar, "patron", None),
    ("GET", "/me/settings", get_settings, "patron", None),
    ("PATCH", "/me/settings", patch_settings, "patron", None),
    ("PUT", "/me/password", change_password, "patron", None),
    ("POST", "/me/test-mail", test_mail, "patron", None),

    ("GET", "/staff/me", staff_me, "staff", "circulation"),
    ("POST", "/staff/checkout", staff_checkout, "staff", "circulation"),
    ("POST", "/staff/checkin", staff_checkin, "staff", "circulation"),
    ("POST", "/staff/trap", staff_trap, "staff", "circulation"),
    ("GET", "/staff/shelf", staff_shelf, "staff", "circulation"),
    ("GET", "/staff/pull-list", staff_pull_list, "staff", "circulation"),
    ("GET", "/staff/transits", staff_transits, "staff", "circulation"),
    ("GET", "/staff/call-list", staff_call_list, "staff", "circulation"),
    ("POST", "/staff/requests", staff_place, "staff", "circulation"),
    ("POST", f"/staff/requests/{ID % 'request_id'}/cancel", staff_cancel, "staff", "circulation"),
    ("GET", f"/staff/requests/{ID % 'request_id'}/history", staff_history, "staff", "circulation"),
    ("GET", "/staff/review", staff_review_list, "staff", "requests"),
    ("POST", f"/staff/review/{ID % 'request_id'}", staff_review, "staff", "requests"),
    ("POST", "/staff/jobs/{name}", staff_run_job, "staff", "admin"),
]


def is_loopback(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def job_intervals(spec: Mapping[str, float | timedelta] | None, mailer) -> dict:
    """The scheduled jobs: ``spec`` as given, or every job at its default interval
    (the notices job only with a mailer)."""
    if spec is not None:
        return dict(spec)
    out = {name: j.interval for name, j in jobs.JOBS.items()}
    if mailer is None:
        out.pop("notices")
    return out


def make_api(circ: Circulation, *, mailer=None, jobs_spec: Mapping | None = None,
             cookie_secure: bool = True) -> web.Application:
    """The ``/api/v1`` sub-application: routes, the error middleware, and on startup
    the jobs :class:`~circulation.jobs.Scheduler` (``jobs_spec``: job → interval; None
    = every job at its default interval, the notices job only with a ``mailer``; {} =
    no scheduler)."""
    intervals = job_intervals(jobs_spec, mailer)
    st = ApiState(circ, mailer, intervals, cookie_secure, openapi=OPENAPI_FILE.read_bytes())
    api = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    api[STATE] = st
    for method, path, handler, who, role in ROUTES:
        api.router.add_route(method, path, _endpoint(handler, who, role))

    async def startup(_app):
        try:
            async with circ.db.read() as conn:
                await conn.execute(select(s.libraries.c.code).limit(1))
                await conn.execute(select(s.cart_items.c.title_id).limit(1))
        except Exception as e:  # noqa: BLE001 - said in one line, the service does not start
            raise SystemExit(f"unioncat: the circulation database {circ.db.url.render_as_string(hide_password=True)} "
                             f"is not usable ({type(e).__name__}); run `unioncat circ init` first") from None
        if mailer is None and jobs_spec is None:
            log.info("no SMTP host (--smtp-host): the notices job is not scheduled; "
                     "notices stay queued in the outbox")
        if intervals:
            from circulation.jobs import Scheduler

            st.scheduler = Scheduler(circ, mailer, intervals)
            st.scheduler.start()
            log.info("circulation jobs scheduled: %s", ", ".join(
                f"{n} every {_shown_interval(v)}" for n, v in intervals.items()))

    async def cleanup(_app):
        if st._kick_task is not None and not st._kick_task.done():
            st._kick_task.cancel()
            await asyncio.gather(st._kick_task, return_exceptions=True)
        if st.scheduler is not None:
            await st.scheduler.stop(timeout=10)
        await circ.db.dispose()

    api.on_startup.append(startup)
    api.on_cleanup.append(cleanup)
    return api


def _shown_interval(v) -> str:
    secs = v.total_seconds() if isinstance(v, timedelta) else float(v)
    if secs % 3600 == 0:
        return f"{int(secs // 3600)} h"
    if secs % 60 == 0:
        return f"{int(secs // 60)} min"
    return f"{secs:g} s"
