"""The circulation service: the :mod:`lifecycle` tables and policies applied to a
database (SQLite by default, PostgreSQL in production), with an audit trail of
every transition and a transactional outbox for notices.

| module | holds |
|---|---|
| `schema.py` | the tables (SQLAlchemy Core), the invariants the database enforces, lock order |
| `store.py` | `Database` (engine, transactions, retries), row locks, the audited write paths (`transition()` for requests, `open_loan()`/`loan_transition()` for loans, `item_transition()` for copies), rows → lifecycle records |
| `reads.py` | what operations decide on, read under their locks: the patron's snapshot; on PostgreSQL a check-out's and a placement's reads in one statement each |
| `service.py` | `Circulation`: database + profiles + clock + branch calendars, shared by every operation |
| `holds.py` | placing (one title, sets, groups), cancelling, suspending, changing, the review of リクエスト |
| `routing.py` | copy routing: trap, transits, arrivals, the hold shelf; the `Leg` registry other libraries' copies plug into |
| `partners.py` | 連携貸出 (university partners): the counter's request, the partner's side, the return leg; a routing `Leg` |
| `loans.py` | check-out, renewal, check-in (returns, return points, drop points), lost, the loans page |
| `lists.py` | what patrons and staff see of holds: 予約一覧, cancelled list, hold shelf, pull list, transits, review queue, history, ranking |
| `labels.py` | the Japanese (and the mails' English) labels of states, channels, contact methods |
| `notices.py` | the outbox: queueing notices in the caller's transaction, templates, suppression, dispatch |
| `jobs.py` | the scheduled jobs as a table and their work (shelf expiry, overdue, purge, lapsed requests, notices), `run_job`, `Scheduler` |
| `mobile.py`, `groups.py`, `delivery.py`, `proxy.py` | the mobile library's schedule; group cards and reading-group sets; home delivery; proxy consents |
| `auth.py` | passwords (Argon2id), patron and staff login, lockout, sessions, roles |
| `bookshelf.py` | My bookshelf, borrowing history (opt-in), reading goal, patron settings and calendar |
| `cart.py` | the reservation cart (予約カート) and its checkout |
| `loaders.py` | CSV loaders for patrons, items, staff and calendars |
| `ill/` | inter-library loan over ISO 18626 in both roles: requester legs and the rota, supplier legs, the reconciler, the outbox, the endpoint's node, staff queues (docs/ill.md) |
| `ncip.py` | the NCIP 2.02 responder's services on this database (docs/ncip.md) |

Imports go one way: ``holds``, ``loans``, ``jobs`` and ``lists`` use ``routing``;
``partners`` uses ``holds`` and ``routing`` and plugs into routing as a leg; nothing
imports ``partners`` but this package, which imports it below so that its leg is
registered whenever the service is used. ISO 18626 (``ill/``) and NCIP (``ncip.py``) drive
partner requests through the same leg: their requests are of kind ``partner``; they do
not import ``partners`` either.

The HTTP API over these is the package `gateway/api/` (its reads are `queries.py`); SMTP is
`connectors/smtp.py`.
"""
from . import partners as _partners  # noqa: F401  (registers the 連携貸出 leg with circulation.routing)
