"""The circulation service: the :mod:`lifecycle` table and policies applied to a
database (SQLite by default, PostgreSQL in production), with an audit trail of
every transition and a transactional outbox for notices.

| module | holds |
|---|---|
| `schema.py` | the tables (SQLAlchemy Core), the invariants the database enforces, lock order |
| `store.py` | `Database` (engine, transactions, retries), row locks, the audited `transition()`, rows → lifecycle records |
| `service.py` | `Circulation`: database + profiles + clock + branch calendars, shared by every operation |
| `holds.py` | placing, sets, groups, cancelling, suspending, trapping, transits, hold shelf, expiry, request review |
| `loans.py` | check-out, renewal, check-in (returns, return points, drop points), overdue marking |
| `notices.py` | the outbox: queueing notices in the caller's transaction, templates, suppression, dispatch |
| `jobs.py` | the scheduled jobs as a table (shelf expiry, overdue, purge, lapsed requests, notices), `run_job`, `Scheduler` |
| `auth.py` | passwords (Argon2id), patron and staff login, lockout, sessions, roles |
| `bookshelf.py` | My bookshelf, borrowing history (opt-in), reading goal, patron settings and calendar |
| `cart.py` | the reservation cart (予約カート) and its checkout |
| `loaders.py` | CSV loaders for patrons, items, staff and calendars |

The HTTP API over these is the package `gateway/api/` (its reads are `queries.py`); SMTP is
`connectors/smtp.py`.
"""
