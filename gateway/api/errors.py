"""Error answers of the API: its own refusal codes (registered in the one catalogue of
reasons, :mod:`lifecycle.reasons`), the HTTP status of every refusal code, and the
middleware that turns every failure into the one JSON error shape ``{"error",
"message_ja", "message_en", "details"}`` (never a traceback to the client; a traceback in
the log only for a fault of ours).

Refusals decided by the circulation service arrive as :class:`~lifecycle.model.Decision`
with their own code and messages; the API's own refusals (bad input, sessions, CSRF,
scope ...) and its few answers that are not refusals (logged out, test mail queued) are
codes of the same catalogue, added here with :func:`lifecycle.reasons.register`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from aiohttp import web

from circulation.availability import unavailable
from circulation.store import Clock, NotFound
from lifecycle import reasons
from lifecycle.model import Decision

from .encoding import json_response

log = logging.getLogger("unioncat.circulation.api")

# The API's own codes, in the one catalogue (a code already there is an error: codes are
# unique; ``not_logged_in`` is the login rules' own and is used as it is).
reasons.register({
    "bad_json": ("送信された内容をJSONとして読めません。", "The request body is not valid JSON."),
    "invalid_input": ("入力内容に誤りがあります。", "The request is invalid."),
    "unsupported_media_type": ("送信形式は application/json にしてください。",
                               "Send the body as application/json."),
    "not_found": ("見つかりません。", "Not found."),
    "method_not_allowed": ("この操作はできません。", "This method is not allowed here."),
    "body_too_large": ("送信された内容が大きすぎます。", "The request body is too large."),
    "header_too_large": ("要求ヘッダーが大きすぎます。", "A request header is too large."),
    "uri_too_long": ("URLが長すぎます。", "The URL is too long."),
    "service_unavailable": ("ただいまシステムを利用できません。しばらくしてからもう一度お試しください。",
                            "The service is unavailable at the moment; please try again shortly."),
    "internal_error": ("システムエラーが発生しました。しばらくしてからもう一度お試しください。",
                       "Something went wrong on our side; please try again later."),
    "invalid_authorization": ("認証情報の形式が正しくありません。",
                              "The Authorization header must be 'Bearer <token>'."),
    "csrf_check_failed": ("不正な要求の可能性があるため受け付けませんでした。ページを開き直してください。",
                          "Refused as a possible cross-site request; reload the page and try again."),
    "patron_only": ("利用者としてログインしてください。", "This is for library users: log in with your card."),
    "branch_required": ("館を指定してください。", "Give the branch."),
    "branch_not_yours": ("他の図書館の館では操作できません。", "That branch belongs to another library."),
    "item_not_yours": ("他の図書館の資料は扱えません。", "That copy belongs to another library."),
    "library_not_yours": ("他の図書館の情報は見られません。", "That is another library's data."),
    "item_not_on_shelf": ("この資料は書架にありません（貸出中・確保済みなど）。",
                          "This copy is not on the shelf (on loan, secured ...)."),
    "unknown_job": ("そのジョブはありません。", "There is no such job."),
    "no_mailer": ("メール送信が設定されていません（--smtp-host）。",
                  "Mail is not configured (--smtp-host), so notices cannot be sent."),
    "job_failed": ("ジョブが失敗しました。", "The job failed; see the service log."),
    "dropped_at_in_future": ("返却日時が未来になっています。", "dropped_at is in the future."),
    "dropped_at_implausible": ("返却日時が古すぎます。", "dropped_at is too long ago for a return recorded now."),
    "test_mail_queued": ("テストメールを送信しました。", "A test mail is on its way."),
    "test_mail_recent": ("テストメールは1分に1回まで送信できます。",
                         "One test mail per minute: it is already on its way."),
    "logged_out": ("ログアウトしました。", "Logged out."),
}, allowed={"test_mail_queued", "test_mail_recent", "logged_out"})


def texts(code: str) -> dict[str, str]:
    """The two messages of a code of the catalogue, as the answers carry them."""
    ja, en = reasons.REASONS[code]
    return {"message_ja": ja, "message_en": en}


# Decision codes that mean "this value is not acceptable" (422) rather than "the rules
# say no in this situation" (409).
UNPROCESSABLE = frozenset({
    "password_length", "password_charset", "password_too_long", "staff_password_weak",
    "email_invalid", "locale_invalid", "goal_invalid", "unknown_shelf", "title_missing",
    "title_id_too_long", "empty_titles", "duplicate_titles", "set_mismatch",
    "pickup_not_service_point", "pickup_required", "contact_method_not_offered",
    "email_missing", "phone_missing", "fax_missing", "email_needed_for_contact",
    "not_in_cart", "dropped_at_in_future", "dropped_at_implausible", "branch_required",
})
STATUS_OF = {"login_failed": 401, "staff_login_failed": 401, "not_logged_in": 401,
             "locked_out": 429, "password_change_failed": 403, "registration_failed": 403,
             "role_required": 403, "unknown_card": 404, "entry_not_found": 404}

RETRY_AFTER_SECONDS = 5               # told to clients while the database is unavailable
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="unioncat"'}


class ApiError(Exception):
    """Answered as ``{"error", "message_ja", "message_en", "details"}`` with ``status``."""

    def __init__(self, status: int, code: str, message_ja: str | None = None,
                 message_en: str | None = None, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(code)
        known_ja, known_en = reasons.REASONS.get(code, ("エラーが発生しました。", "Error."))
        self.status, self.code = status, code
        self.message_ja = message_ja if message_ja is not None else known_ja
        self.message_en = message_en if message_en is not None else known_en
        self.details = details or {}
        self.headers = headers or {}

    def response(self, clock: Clock) -> web.Response:
        return json_response({"error": self.code, "message_ja": self.message_ja,
                              "message_en": self.message_en, "details": self.details},
                             self.status, headers=self.headers, clock=clock)


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
        headers.update(BEARER_CHALLENGE)
    return ApiError(status, d.code, d.message_ja, d.message_en, dict(d.details), headers)


# --------------------------------------------------------------------------- database outage

class Outage:
    """The database's availability as the API sees it: the first failure is logged (one
    line, no traceback), the requests refused meanwhile are counted, and the first
    working connection afterwards logs the recovery with that count."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.since: float | None = None
        self.refused = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, e: BaseException) -> None:
        self.refused += 1
        if self.since is None:
            self.since = self.clock()
            log.warning("the circulation database is unavailable (%s); answering 503 until it is back",
                        _one_line(e))

    def working(self) -> None:
        if self.since is None:
            return
        took, refused = self.clock() - self.since, self.refused
        self.since, self.refused = None, 0
        log.warning("the circulation database is available again after %.1f s (%d request%s answered 503)",
                    took, refused, "" if refused == 1 else "s")


def _one_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    text = " ".join(str(orig).split())[:300]
    return f"{type(orig).__name__}: {text}" if text else type(orig).__name__


OUTAGE = web.AppKey("circulation_api_outage", Outage)
CLOCK = web.AppKey("circulation_api_clock", Clock)      # the service's clock: times in answers


# --------------------------------------------------------------------------- middleware

MAX_HEADER_BYTES = 8190               # per header line, as aiohttp's own default
MAX_URL_BYTES = 8190                  # the path and query


def _check_size(request: web.Request) -> None:
    """Too long a URL or header line: the API's own JSON answer (the HTTP layer lets
    up to gateway.http_shell.MAX_FIELD through for this)."""
    if len(request.raw_path) > MAX_URL_BYTES:
        raise ApiError(414, "uri_too_long", details={"max_bytes": MAX_URL_BYTES})
    for name, value in request.raw_headers:
        if len(name) + len(value) + 2 > MAX_HEADER_BYTES:
            raise ApiError(431, "header_too_large",
                           details={"header": name.decode("latin-1"), "max_bytes": MAX_HEADER_BYTES})


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    """Every failure under /api/v1 as a JSON error, never a traceback to the client."""
    clock = request.app[CLOCK]
    try:
        _check_size(request)
        return await handler(request)
    except ApiError as e:
        return e.response(clock)
    except NotFound as e:
        log.debug("not found: %s", e)
        return ApiError(404, "not_found").response(clock)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(e.status)
        headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        if code is None:
            return ApiError(e.status, "invalid_input", message_en=e.reason, headers=headers).response(clock)
        return ApiError(e.status, code, headers=headers).response(clock)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        if unavailable(e):
            outage = request.app.get(OUTAGE)
            if outage is not None:
                outage.failed(e)
            return ApiError(503, "service_unavailable", details={"retry_after": RETRY_AFTER_SECONDS},
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)}).response(clock)
        log.exception("unexpected error in %s %s", request.method, request.path)
        return ApiError(500, "internal_error").response(clock)
