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
"""
