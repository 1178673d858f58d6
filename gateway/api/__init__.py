"""The patron and staff JSON API of the circulation service, under ``/api/v1/``.

A sub-application (:func:`make_api`) that :func:`gateway.app.make_app` mounts when it is
given a :class:`~circulation.service.Circulation`. The paths, parameters, bodies and
responses are documented in ``gateway/openapi/circulation.json`` (OpenAPI 3.1, served
at ``/api/v1/openapi.json``), and the input is checked against that document itself;
docs/lifecycle.md has the overview.

=================  ===========================================================
module             holds
=================  ===========================================================
``app``            :data:`ROUTES` (every route as data), :func:`make_api`, jobs
``session``        sessions (bearer or cookie), CSRF checks, the route wrapper
``validation``     input against the OpenAPI document's schemas
``scope``          staff keep to their own library system
``errors``         the API's refusal messages, HTTP statuses, the error middleware
``encoding``       JSON in and out (dates, times in the service's zone)
``patron``         login, the patron's ``/me`` pages, the public ranking
``staff``          the counter, a branch's lists, the review, jobs
=================  ===========================================================

The handlers run no SQL: they call the circulation functions (reads the API needs are
in :mod:`circulation.queries`).

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
* Dates are ``YYYY-MM-DD``; times ISO 8601 with the offset of the service's time zone
  (its profiles' ``timezone``; ``+09:00`` for Asia/Tokyo). Input times with an offset
  are converted to it; input times without one are read as its local time.

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
from .app import ROUTES, is_loopback, job_intervals, make_api
from .session import API, COOKIE, STATE, Route

__all__ = ["API", "COOKIE", "ROUTES", "STATE", "Route", "is_loopback", "job_intervals", "make_api"]
