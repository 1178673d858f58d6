"""Database access for the circulation service: the engine (SQLite or PostgreSQL,
both through SQLAlchemy's asyncio layer), transactions, row locks, the write paths
of the three tables of :mod:`lifecycle` and conversions from rows to the frozen
records the pure :mod:`lifecycle` policies read.

Write paths
-----------
A request's state changes only through :func:`transition`, a loan's only through
:func:`open_loan` (CHECK_OUT creates it) and :func:`loan_transition`, a copy's
``items.status`` only through :func:`item_transition`. Each asks its table's
``apply()`` first (an illegal event raises ``IllegalTransition``), updates
conditionally on the state it read (a lost race raises :class:`ConcurrentChange`, and
:meth:`Database.run` retries the unit of work), and the request and loan paths write
the audit row (``events``). A copy's status change is logged by the operation that
moves it, in the same transaction.

Transactions
------------
``async with db.transaction() as conn:`` is one unit of work. On SQLite it starts
with ``BEGIN IMMEDIATE`` (the writer lock is taken at once, so two writers never
deadlock upgrading a read lock); on PostgreSQL it is READ COMMITTED and the code
takes row locks with :func:`lock_one` / :func:`lock_rows` (``SELECT ... FOR UPDATE``)
in the order documented in :mod:`circulation.schema`. ``db.read()`` is a plain
(deferred) read transaction. :meth:`Database.run` retries a whole unit of work on
the errors a concurrent writer can cause (deadlock, serialization failure, SQLite
busy, a lost conditional update).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Column, bindparam, cast, event, insert, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from lifecycle import item_table as it
from lifecycle import loan_table as lnt
from lifecycle import table as lt
from lifecycle.model import Item, Loan, Patron, Request
from lifecycle.policies import LIVE_REQUEST_STATES as LIVE
from lifecycle.profiles import Profile

from . import connections, prepared
from . import schema as s
from .prepared import Prepared
from .prepared import execute as run_prepared

log = logging.getLogger("unioncat.circulation")
T = TypeVar("T")

DEFAULT_URL = "sqlite+aiosqlite:///circulation.db"
IDLE_PING_S = 2.0        # PostgreSQL: a pooled connection idle longer is pinged before use


class ConcurrentChange(Exception):
    """A row changed under us between read and conditional update; the unit of work
    is retried by :meth:`Database.run`."""


class NotFound(LookupError):
    """No such patron, item, request, loan or branch."""


# --------------------------------------------------------------------------- engine

class Database:
    def __init__(self, url: str = DEFAULT_URL, *, echo: bool = False, pool_size: int | None = None,
                 pool_share: int = 1):
        """``pool_size`` (PostgreSQL): connections kept, and as many more under a burst;
        None: ``[pool]`` of ``circulation.toml`` (:func:`connections.pool_config`), of which
        this process takes its part when ``pool_share`` processes serve the API together."""
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        self.pool: connections.PoolConfig | None = None
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            self.pool = (connections.pool_config().shared(pool_share) if pool_size is None
                         else connections.PoolConfig(size=pool_size, overflow=pool_size))
            kwargs.update(pool_size=self.pool.size, max_overflow=self.pool.overflow)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            connections.sqlite_hooks(self.engine.sync_engine)
        else:
            self._ping_idle_connections()
            if self.url.get_driver_name() == "asyncpg":
                connections.warm_type_codecs(self.engine.sync_engine)
                prepared.prepare_on_checkout(self.engine.sync_engine)

    def _ping_idle_connections(self) -> None:
        """The pool's pre-ping, for connections idle longer than :data:`IDLE_PING_S` only:
        one that has just been used (as every connection is under load) is not pinged,
        which saves a round trip per unit of work; one idle longer (the server may have
        restarted meanwhile) is pinged at checkout and, when dead, replaced by a new
        one (``DisconnectionError`` makes the pool connect anew), as ``pool_pre_ping``
        would."""
        sync_engine = self.engine.sync_engine
        dialect = sync_engine.dialect

        @event.listens_for(sync_engine, "connect")
        def _connect(_dbapi_conn, record):
            record.info["circ_used"] = _time.monotonic()

        @event.listens_for(sync_engine, "checkin")
        def _checkin(_dbapi_conn, record):
            if record is not None:
                record.info["circ_used"] = _time.monotonic()

        @event.listens_for(sync_engine, "checkout")
        def _checkout(dbapi_conn, record, _proxy):
            used = record.info.get("circ_used")
            if used is not None and _time.monotonic() - used < IDLE_PING_S:
                return
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as e:
                raise DisconnectionError(f"idle connection failed its ping: {type(e).__name__}") from e
            record.info["circ_used"] = _time.monotonic()

    async def create_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(s.metadata.create_all)

    async def drop_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(s.metadata.drop_all)

    async def dispose(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(circulation_read=True)
            async with conn.begin():
                yield conn

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]], *,
                  attempts: int = 8) -> T:
        """Run ``work(conn)`` in one transaction; retry it on the errors concurrent
        writers cause. Anything else propagates (and rolls back)."""
        for attempt in range(1, attempts + 1):
            try:
                async with self.transaction() as conn:
                    return await work(conn)
            except ConcurrentChange:
                if attempt == attempts:
                    raise
            except (OperationalError, DBAPIError) as e:
                if attempt == attempts or not _retryable(e):
                    raise
                log.info("retrying a unit of work after %s", type(e.orig).__name__ if e.orig else e)
        raise AssertionError("unreachable")


def _retryable(e: DBAPIError) -> bool:
    text = f"{type(e.orig).__name__} {e.orig}".lower()
    code = getattr(e.orig, "sqlstate", None) or getattr(e.orig, "pgcode", None)
    if code in ("40001", "40P01", "55P03"):
        return True
    return any(w in text for w in ("deadlock", "serialization", "database is locked", "busy",
                                   "could not serialize"))


def is_unique_violation(e: IntegrityError) -> bool:
    text = str(e.orig).lower()
    return "unique" in text or "duplicate key" in text


# --------------------------------------------------------------------------- locks

async def lock_one(conn: AsyncConnection, table, *where) -> Any:
    """The one row matching ``where``, locked FOR UPDATE on PostgreSQL (SQLite's
    writer lock is already held), or None."""
    by = _by_column(table, where, True)
    if by is not None:
        return (await run_prepared(conn, by[0], {"w_value": by[1]})).first()
    return (await conn.execute(select(table).where(*where).with_for_update())).first()


_BY_COLUMN: dict[tuple[str, str, bool], Prepared] = {}


def _by_column(table, where: tuple, lock: bool) -> tuple[Prepared, Any] | None:
    """For the common ``where`` of one ``column == value`` of ``table``: the statement
    ``SELECT table WHERE column = :w_value [FOR UPDATE]``, built once per column (so the
    hot lookups by id, barcode and card number are compiled once and, on PostgreSQL, run
    by the driver), and the value. None for any other ``where``."""
    if len(where) != 1:
        return None
    w = where[0]
    if not (isinstance(w, BinaryExpression) and w.operator is operators.eq
            and isinstance(w.left, Column) and w.left.table is table
            and isinstance(w.right, BindParameter) and not w.right.expanding):
        return None
    key = (table.name, w.left.key, lock)
    st = _BY_COLUMN.get(key)
    if st is None:
        q = select(table).where(w.left == bindparam("w_value"))
        st = _BY_COLUMN[key] = Prepared(q.with_for_update() if lock else q)
    return st, w.right.effective_value


async def lock_rows(conn: AsyncConnection, table, *where, order_by=None) -> list:
    q = select(table).where(*where)
    if order_by is not None:
        q = q.order_by(*order_by) if isinstance(order_by, (list, tuple)) else q.order_by(order_by)
    return list((await conn.execute(q.with_for_update())).all())


def insert_or_nothing(conn: AsyncConnection, table):
    """``INSERT ... ON CONFLICT DO NOTHING`` of the connection's dialect (a row that would
    violate a unique index is not inserted, and nothing is raised)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


async def lock_title_queue(conn: AsyncConnection, title_id: str, title: str = ""):
    """Serialize placing and trapping for one title (creates its row on first use).
    Returns the queue's row (its display ``title``), locked."""
    row = (await run_prepared(conn, _LOCK_QUEUE, {"w_title_id": title_id})).first()
    if row is not None:
        return row
    # created by a concurrent transaction meanwhile: nothing inserted; lock it then
    await run_prepared(conn, _NEW_QUEUE[conn.dialect.name == "postgresql"], {"title_id": title_id, "title": title})
    return (await run_prepared(conn, _LOCK_QUEUE, {"w_title_id": title_id})).first()


_LOCK_QUEUE = Prepared(select(s.title_queues).where(s.title_queues.c.title_id == bindparam("w_title_id"))
                       .with_for_update())
# INSERT ... ON CONFLICT DO NOTHING of a title queue row: [SQLite, PostgreSQL]
_NEW_QUEUE = (Prepared(sqlite.insert(s.title_queues).on_conflict_do_nothing()),
              Prepared(postgresql.insert(s.title_queues).on_conflict_do_nothing()))


# --------------------------------------------------------------------------- audit

async def record_event(conn: AsyncConnection, *, at: datetime, event: str, actor_role: str,
                       actor: str = "", request_id: int | None = None, loan_id: int | None = None,
                       item_id: int | None = None, from_state: str | None = None,
                       to_state: str | None = None, channel: str | None = None,
                       branch: str | None = None, reason: str = "",
                       patron_id: int | None = None, staff_id: int | None = None) -> None:
    """One audit row. ``patron_id`` / ``staff_id`` name the account an account event
    (password, lockout, registration) is about."""
    await run_prepared(conn, _INSERT_EVENT, dict(
        at=at, event=event, actor_role=actor_role, actor=actor, request_id=request_id,
        loan_id=loan_id, item_id=item_id, from_state=from_state, to_state=to_state,
        channel=channel, branch=branch, reason=reason, patron_id=patron_id, staff_id=staff_id))


def _known(table, changes: dict) -> None:
    """Every key of ``changes`` is a column of ``table`` (a prebuilt UPDATE would ignore
    the others silently)."""
    unknown = changes.keys() - table.c.keys()
    if unknown:
        raise TypeError(f"{table.name} has no column {', '.join(sorted(unknown))}")


# The write paths' statements, built once (SQLAlchemy then compiles each once and finds
# it by a cache key it also keeps): their values come as parameters, the SET clause of
# an UPDATE from the parameters' column names, the conditions from the w_ parameters.
# On PostgreSQL the driver runs them (circulation/prepared.py).
_INSERT_EVENT = Prepared(insert(s.events))
_UPDATE_REQUEST = Prepared(update(s.requests).where(s.requests.c.id == bindparam("w_id"),
                                                    s.requests.c.state == bindparam("w_state")))
_UPDATE_LOAN = Prepared(update(s.loans).where(s.loans.c.id == bindparam("w_id"),
                                              s.loans.c.state == bindparam("w_state")))
_UPDATE_ITEM = Prepared(update(s.items).where(s.items.c.id == bindparam("w_id"),
                                              s.items.c.status == bindparam("w_status"))
                        .returning(*s.items.c))
# a new loan, INSERT ... ON CONFLICT DO NOTHING RETURNING id: [SQLite, PostgreSQL]
_NEW_LOAN = tuple(Prepared(d.insert(s.loans).on_conflict_do_nothing().returning(s.loans.c.id))
                  for d in (sqlite, postgresql))


def _request_event(request_id, item_id, old: lt.State, new: lt.State, ev: lt.Event, role: lt.Role, *,
                   actor: str, at: datetime, channel: str | None, branch: str | None, reason: str) -> dict:
    """The audit row of one request transition (the columns of :func:`record_event`),
    as :func:`transition`, :func:`transitions` and :func:`new_request` write it."""
    return dict(at=at, event=ev.value, actor_role=role.value, actor=actor, request_id=request_id,
                item_id=item_id, from_state=old.value, to_state=new.value, channel=channel,
                branch=branch, reason=reason)


def _step_event(st: "Step", request_id, item_id, old: lt.State, new: lt.State, ev: lt.Event,
                role: lt.Role) -> dict:
    return _request_event(request_id, item_id, old, new, ev, role, actor=st.actor, at=st.at,
                          channel=st.channel, branch=st.branch, reason=st.reason)


async def _logged_if_moved(conn: AsyncConnection, res, log_it: dict) -> bool:
    """The statement-by-statement path (SQLite, or an update with extra clauses): the
    conditional update's result ``res`` moved the row -> its audit row is written.
    Whether it moved."""
    if res.rowcount != 1:
        return False
    await record_event(conn, **log_it)
    return True


async def transition(conn: AsyncConnection, request_row, event: lt.Event | str, *,
                     role: lt.Role | str, actor: str, at: datetime, channel: str | None = None,
                     branch: str | None = None, reason: str = "", **changes) -> lt.State:
    """Move one request by the table (``lifecycle.table.apply``, which checks that the
    event is legal from the current state and that ``role`` may trigger it), write the
    new state and ``changes`` with a conditional update on the state we read, and log
    the transition. Raises ``IllegalTransition`` or :class:`ConcurrentChange`.

    On PostgreSQL the update and its audit row are one statement (:func:`_moved_and_logged`)."""
    ev = lt.Event(event)
    role = lt.Role(role)
    old = lt.State(request_row.state)
    new = lt.apply(old, ev, role)
    _known(s.requests, changes)
    values = {"state": new.value, "updated_at": at, **changes}
    log_it = _request_event(request_row.id, changes.get("item_id", request_row.item_id), old, new, ev, role,
                            actor=actor, at=at, channel=channel, branch=branch, reason=reason)
    if conn.dialect.name == "postgresql":
        moved = await _moved_and_logged(conn, s.requests, "request_id", request_row.id, old.value, values, log_it)
    else:
        moved = await _logged_if_moved(conn, await run_prepared(
            conn, _UPDATE_REQUEST, {"w_id": request_row.id, "w_state": old.value, **values}), log_it)
    if not moved:
        raise ConcurrentChange(f"request {request_row.id} is no longer {old.value}")
    return new


@dataclass(frozen=True)
class Step:
    """One transition of :func:`transitions`: the arguments of :func:`transition`."""
    event: lt.Event | str
    role: lt.Role | str
    actor: str
    at: datetime
    channel: str | None = None
    branch: str | None = None
    reason: str = ""
    changes: dict = dataclasses.field(default_factory=dict)


async def transitions(conn: AsyncConnection, request_row, *steps: Step) -> lt.State:
    """:func:`transition` of ``request_row`` by each step in turn (each asked of the table
    from the state the one before left: ``IllegalTransition`` before anything is written),
    one audit row per step, exactly as the calls one after the other would write them.
    On PostgreSQL the row's final values and every audit row are one statement; the
    conditional update is on the state read before the first step (a lost race:
    :class:`ConcurrentChange`, nothing written)."""
    if conn.dialect.name != "postgresql" or len(steps) == 1:
        row, new = request_row, None
        for st in steps:
            new = await transition(conn, row, st.event, role=st.role, actor=st.actor, at=st.at, channel=st.channel,
                                   branch=st.branch, reason=st.reason, **st.changes)
            row = written(row, new, st.at, **st.changes)
        assert new is not None, "transitions() needs a step"
        return new
    old = state = lt.State(request_row.state)
    item_id = request_row.item_id
    values: dict = {}
    params: dict = {}
    for i, st in enumerate(steps):
        ev, role = lt.Event(st.event), lt.Role(st.role)
        new = lt.apply(state, ev, role)
        _known(s.requests, st.changes)
        item_id = st.changes.get("item_id", item_id)
        values.update({"state": new.value, "updated_at": st.at, **st.changes})
        log_it = _step_event(st, request_row.id, item_id, state, new, ev, role)
        params.update({f"s{i}_{k}": v for k, v in _e(log_it, "request_id").items()})
        state = new
    key = (frozenset(values), len(steps))
    stmt = _LOGGED_MOVES.get(key)
    if stmt is None:
        moved = (update(s.requests).where(s.requests.c.id == bindparam("w_id"),
                                          s.requests.c.state == bindparam("w_state"))
                 .values({k: _value_of(s.requests, k) for k in sorted(values)}).returning(s.requests.c.id)
                 .cte("moved"))
        rows = [select(*(moved.c.id.label("request_id") if c.key == "request_id"
                         else bindparam(f"s{i}_e_{c.key}", type_=c.type) for c in _EVENT_COLUMNS))
                for i in range(len(steps))]
        stmt = _LOGGED_MOVES[key] = Prepared(insert(s.events).from_select(
            [c.key for c in _EVENT_COLUMNS], union_all(*rows)))
    res = await run_prepared(conn, stmt, {"w_id": request_row.id, "w_state": old.value, **_v(values), **params})
    if res.rowcount != len(steps):
        raise ConcurrentChange(f"request {request_row.id} is no longer {old.value}")
    return state


async def open_loan(conn: AsyncConnection, *, item_id: int, patron_id: int, branch: str, channel: str,
                    at: datetime, due: date, role: lt.Role | str, actor: str, reason: str,
                    request_id: int | None = None, **values) -> int | None:
    """Create a loan (CHECK_OUT → ``loan_table.INITIAL``, if ``role`` may lend) and log
    it. Returns the loan id, or None when the copy already has an open loan (the
    database's ``ux_loans_open_item``: a concurrent check-out came first; nothing is
    written). ``values``: more columns (proxy, stop). On PostgreSQL the loan and its
    audit row are one statement."""
    role = lt.Role(role)
    state = lnt.apply(None, lnt.CREATED_BY, role)
    _known(s.loans, values)
    row = dict(item_id=item_id, patron_id=patron_id, request_id=request_id, branch=branch,
               channel=channel, lent_at=at, due=due, renewals=0, state=state.value, **values)
    log_it = dict(at=at, event=lnt.CREATED_BY.value, actor_role=role.value, actor=actor,
                  item_id=item_id, to_state=state.value, channel=channel, branch=branch, reason=reason)
    if conn.dialect.name == "postgresql":
        # ux_loans_open_item is the only unique index a new loan can violate
        st = _LOGGED_NEW_LOAN.get(frozenset(row))
        if st is None:
            made = (postgresql.insert(s.loans).values({k: _value_of(s.loans, k) for k in sorted(row)})
                    .on_conflict_do_nothing().returning(s.loans.c.id).cte("made"))
            st = _LOGGED_NEW_LOAN[frozenset(row)] = Prepared(
                _logged(made, "loan_id").returning(s.events.c.loan_id))
        return (await run_prepared(conn, st, {**_v(row), **_e(log_it, "loan_id")})).scalar()
    loan_id = (await run_prepared(conn, _NEW_LOAN[0], row)).scalar()
    if loan_id is None:
        return None
    await record_event(conn, loan_id=loan_id, **log_it)
    return loan_id


async def loan_transition(conn: AsyncConnection, loan_row, event: lnt.LoanEvent | str, *,
                          role: lt.Role | str, actor: str, at: datetime, channel: str | None = None,
                          branch: str | None = None, reason: str = "", where=(), if_open: bool = False,
                          if_renewals: int | None = None, notice: dict | None = None,
                          **changes) -> lnt.LoanState:
    """Move one loan by the loan table (``lifecycle.loan_table.apply``: legal from its
    state, and ``role`` may trigger it), write the new state and ``changes`` with a
    conditional update on the state we read (and on more conditions: ``if_open``, still
    not returned; ``if_renewals``, renewed that many times so far; ``where``, any other
    clauses), and log it. Raises ``IllegalTransition`` or :class:`ConcurrentChange`.
    ``notice``: an outbox row (``notices.pending``) queued with the move (not when its
    dedupe key exists), as ``notices.enqueue`` after it would.
    On PostgreSQL (without ``where``) the update, its audit row and the notice are one
    statement."""
    ev = lnt.LoanEvent(event)
    role = lt.Role(role)
    old = lnt.LoanState(loan_row.state)
    new = lnt.apply(old, ev, role)
    _known(s.loans, changes)
    values = {"state": new.value, **changes}
    log_it = dict(at=at, event=ev.value, actor_role=role.value, actor=actor, loan_id=loan_row.id,
                  item_id=loan_row.item_id, from_state=old.value, to_state=new.value, channel=channel,
                  branch=branch, reason=reason)
    conds = (("open",) if if_open else ()) + (("renewals",) if if_renewals is not None else ())
    if conn.dialect.name == "postgresql" and not where:
        moved = await _moved_and_logged(conn, s.loans, "loan_id", loan_row.id, old.value, values, log_it,
                                        conds, {"w_renewals": if_renewals} if if_renewals is not None else {},
                                        notice=notice)
    else:
        more = [*where, *([s.loans.c.returned_at.is_(None)] if if_open else []),
                *([s.loans.c.renewals == if_renewals] if if_renewals is not None else [])]
        if more:
            res = await conn.execute(update(s.loans).where(s.loans.c.id == loan_row.id,
                                                           s.loans.c.state == old.value, *more).values(**values))
        else:
            res = await run_prepared(conn, _UPDATE_LOAN, {"w_id": loan_row.id, "w_state": old.value, **values})
        moved = await _logged_if_moved(conn, res, log_it)
        if moved and notice is not None:
            await run_prepared(conn, INSERT_NOTICE[conn.dialect.name == "postgresql"], notice)
    if not moved:
        raise ConcurrentChange(f"loan {loan_row.id} is no longer {old.value}")
    return new


async def insert_logged(conn: AsyncConnection, table, own: str, row: dict, log_it: dict):
    """Insert ``row`` into ``table`` and its audit row (``log_it``: the columns of
    :func:`record_event`; ``own``: the audit column that gets the new row's id, e.g.
    ``request_id``); returns the new row (``RETURNING``). On PostgreSQL one statement."""
    _known(table, row)
    if conn.dialect.name != "postgresql":
        st = _INSERT_RETURNING.get(table.name)
        if st is None:
            st = _INSERT_RETURNING[table.name] = Prepared(insert(table).returning(*table.c))
        new = (await run_prepared(conn, st, row)).one()
        await record_event(conn, **{own: new.id}, **log_it)
        return new
    key = (table.name, own, frozenset(row))
    st = _LOGGED_INSERT.get(key)
    if st is None:
        made = (insert(table).values({k: _value_of(table, k) for k in sorted(row)})
                .returning(*table.c).cte("made"))
        st = _LOGGED_INSERT[key] = Prepared(
            select(made).where(made.c.id.in_(select(_logged(made, own).returning(s.events.c[own]).cte("logged")))))
    return (await run_prepared(conn, st, {**_v(row), **_e(log_it, own)})).one()


async def new_request(conn: AsyncConnection, row: dict, log_it: dict, *steps: Step, notice: dict | None = None):
    """Insert the request ``row`` (state ``NEW``) and its audit row ``log_it`` (PLACE),
    then move it by ``steps`` (each asked of the table in turn, as :func:`transitions`
    does), and queue ``notice`` about it (an outbox row, ``notices.pending``, whose
    ``dedupe_key`` is completed with the new request's id, and whose ``request_id`` is
    that id; not inserted when the key exists); returns the request as written. The rows
    written are exactly those of :func:`insert_logged`, :func:`transitions` and
    ``notices.enqueue`` one after the other: on PostgreSQL, when no step changes more
    than the state, they are written by one statement (the request in the state the
    last step leaves, PLACE's and each step's audit row in order, the notice); otherwise
    (SQLite) by those calls."""
    if conn.dialect.name != "postgresql" or not steps or any(st.changes for st in steps):
        new = await insert_logged(conn, s.requests, "request_id", row, log_it)
        if steps:
            new = written(new, await transitions(conn, new, *steps), steps[-1].at)
        if notice is not None:
            await run_prepared(conn, INSERT_NOTICE[conn.dialect.name == "postgresql"],
                               {**notice, "dedupe_key": f"{notice['dedupe_key']}{new.id}", "request_id": new.id})
        return new
    _known(s.requests, row)
    state = lt.State(row["state"])
    values = dict(row)
    logs = [log_it]
    for st in steps:
        ev, role = lt.Event(st.event), lt.Role(st.role)
        nxt = lt.apply(state, ev, role)                 # IllegalTransition: nothing written
        logs.append(_step_event(st, None, row.get("item_id"), state, nxt, ev, role))
        values.update(state=nxt.value, updated_at=st.at)
        state = nxt
    notice_keys = frozenset(notice) - {"request_id"} if notice is not None else None
    key = (frozenset(values), len(logs), notice_keys)
    stmt = _NEW_REQUESTS.get(key)
    if stmt is None:
        made = (insert(s.requests).values({k: _value_of(s.requests, k) for k in sorted(values)})
                .returning(*s.requests.c).cte("made"))
        rows = [select(*(made.c.id.label("request_id") if c.key == "request_id"
                         else bindparam(f"s{i}_e_{c.key}", type_=c.type) for c in _EVENT_COLUMNS))
                for i in range(len(logs))]
        logged = (insert(s.events).from_select([c.key for c in _EVENT_COLUMNS], union_all(*rows))
                  .returning(s.events.c.request_id).cte("logged"))
        q = select(made).where(made.c.id.in_(select(logged)))
        if notice_keys is not None:
            n = s.notices.c
            cols = sorted(notice_keys | {"request_id"})
            src = select(*(made.c.id if k == "request_id"
                           else bindparam("n_dedupe_key", type_=n.dedupe_key.type) + cast(made.c.id, n.dedupe_key.type)
                           if k == "dedupe_key" else bindparam(f"n_{k}", type_=n[k].type) for k in cols))
            q = q.add_cte(postgresql.insert(s.notices).from_select(cols, src)
                          .on_conflict_do_nothing(index_elements=["dedupe_key"]).cte("noticed"))
        stmt = _NEW_REQUESTS[key] = Prepared(q)
    params = {f"s{i}_{k}": v for i, lg in enumerate(logs) for k, v in _e(lg, "request_id").items()}
    if notice is not None:
        params.update({f"n_{k}": v for k, v in notice.items() if k != "request_id"})
    return (await run_prepared(conn, stmt, {**_v(values), **params})).one()


# ---- PostgreSQL: a row's change and its audit row in one statement (data-modifying CTE)

_EVENT_COLUMNS = tuple(c for c in s.events.c if c.key != "id")
_LOGGED_MOVE: dict[tuple, Prepared] = {}
_LOGGED_MOVES: dict[tuple, Prepared] = {}        # transitions(): by values and steps
_LOGGED_NEW_LOAN: dict[frozenset, Prepared] = {}
_LOGGED_INSERT: dict[tuple, Prepared] = {}
_NEW_REQUESTS: dict[tuple, Prepared] = {}        # new_request(): by values, audit rows and notice
# the outbox's INSERT ... ON CONFLICT (dedupe_key) DO NOTHING (notices.enqueue's): [SQLite, PostgreSQL]
INSERT_NOTICE = tuple(Prepared(d.insert(s.notices).on_conflict_do_nothing(index_elements=["dedupe_key"]))
                       for d in (sqlite, postgresql))
_INSERT_RETURNING: dict[str, Prepared] = {}     # by table: INSERT ... RETURNING * (SQLite)
# the extra conditions of a conditional update, by name (loan_transition's if_open, if_renewals)
_CONDITIONS = {"open": lambda t: t.c.returned_at.is_(None),
               "renewals": lambda t: t.c.renewals == bindparam("w_renewals")}


def _value_of(table, key: str):
    return bindparam(f"v_{key}", type_=table.c[key].type)


def _v(values: dict) -> dict:
    return {f"v_{k}": v for k, v in values.items()}


def _e(log_it: dict, own: str) -> dict:
    """The audit row's parameters (every column of ``events``: a missing one is NULL, as
    :func:`record_event` writes it; ``reason`` and ``actor`` are never NULL), but
    ``own``, the id of the row written, which comes from the CTE."""
    return {f"e_{c.key}": log_it.get(c.key, "" if c.key in ("reason", "actor") else None)
            for c in _EVENT_COLUMNS if c.key != own}


def _logged(cte, own: str):
    """INSERT INTO events SELECT <the audit row's parameters>, <cte.id as own> FROM cte:
    one audit row per row the CTE wrote (none when it wrote none)."""
    cols = [cte.c.id.label(own) if c.key == own else bindparam(f"e_{c.key}", type_=c.type)
            for c in _EVENT_COLUMNS]
    return insert(s.events).from_select([c.key for c in _EVENT_COLUMNS], select(*cols))


async def _moved_and_logged(conn: AsyncConnection, table, own: str, row_id: int, old_state: str,
                            values: dict, log_it: dict, conds: tuple = (), cond_params: dict | None = None,
                            notice: dict | None = None) -> bool:
    """``UPDATE table SET values WHERE id = row_id AND state = old_state [AND conds]`` and
    its audit row (and the outbox row ``notice``, ON CONFLICT (dedupe_key) DO NOTHING),
    in one statement; whether the row was moved (its audit row written)."""
    key = (table.name, frozenset(values), conds, frozenset(notice) if notice is not None else None)
    st = _LOGGED_MOVE.get(key)
    if st is None:
        moved = (update(table).where(table.c.id == bindparam("w_id"), table.c.state == bindparam("w_state"),
                                     *(_CONDITIONS[c](table) for c in conds))
                 .values({k: _value_of(table, k) for k in sorted(values)}).returning(table.c.id).cte("moved"))
        q = _logged(moved, own)
        if notice is not None:           # only when the row moved: selected from the CTE
            n = s.notices.c
            cols = sorted(notice)
            q = q.add_cte(postgresql.insert(s.notices).from_select(
                cols, select(*(bindparam(f"n_{k}", type_=n[k].type) for k in cols)).select_from(moved))
                .on_conflict_do_nothing(index_elements=["dedupe_key"]).cte("noticed"))
        st = _LOGGED_MOVE[key] = Prepared(q)
    res = await run_prepared(conn, st, {"w_id": row_id, "w_state": old_state, **(cond_params or {}),
                                        **_v(values), **_e(log_it, own),
                                        **({f"n_{k}": v for k, v in notice.items()} if notice else {})})
    return res.rowcount == 1


async def item_transition(conn: AsyncConnection, item_row, event: it.ItemEvent | str, *, at: datetime,
                          **changes) -> it.ItemStatus:
    """Change one copy's status by the item table (``lifecycle.item_table.apply``) with
    a conditional update on the status we read; ``changes``: more columns (the branch
    it is at). The copy's row is locked by the caller, so a lost update means the
    caller read it before changing it itself: :class:`ConcurrentChange`.

    No audit row of its own: the operation that moves the copy logs it (CHECK_OUT,
    CHECK_IN, TRANSIT_SENT, a request's TRAP_AT_PICKUP ...), in the same transaction."""
    return it.ItemStatus((await item_moved(conn, item_row, event, at=at, **changes)).status)


async def item_moved(conn: AsyncConnection, item_row, event: it.ItemEvent | str, *, at: datetime,
                     **changes):
    """:func:`item_transition` that returns the copy's row as it is now (``RETURNING``;
    the caller need not read it again)."""
    old = it.ItemStatus(item_row.status)
    new = it.apply(old, it.ItemEvent(event))
    _known(s.items, changes)
    stored, before = old.value, {}
    if isinstance(item_row, PendingItem):     # its move and this one: one write
        stored, before = item_row.take()
    row = (await run_prepared(conn, _UPDATE_ITEM, {"w_id": item_row.id, "w_status": stored, "status": new.value,
                                             "updated_at": at, **before, **changes})).first()
    if row is None:
        raise ConcurrentChange(f"item {item_row.id} is no longer {stored}")
    return row


class PendingItem:
    """A copy's move asked of the item table (``it.apply``) but not written yet: the
    copy as it will be, for a caller that moves it again in the same unit of work (a
    check-in, then the routing's RESHELVE / SEND / PUT_ON_HOLD_SHELF). The next
    :func:`item_moved` on it writes both moves in one conditional UPDATE (on the status
    stored); :func:`item_written` writes it alone if nothing did. Attribute access like
    a result row. The copy's row must be locked by the caller; item moves write no
    audit rows, so the audit trail is the same as with two writes."""

    __slots__ = ("_mapping", "_stored", "_changes", "_written")

    def __init__(self, item_row, event: it.ItemEvent | str, *, at: datetime, **changes):
        new = it.apply(it.ItemStatus(item_row.status), it.ItemEvent(event))
        _known(s.items, changes)
        self._mapping = {**item_row._mapping, **changes, "status": new.value, "updated_at": at}
        self._stored = item_row.status
        self._changes = {**changes, "updated_at": at}
        self._written = False

    def __getattr__(self, name: str):
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None

    def take(self) -> tuple[str, dict]:
        """The status stored and this move's columns, for the one write (once)."""
        if self._written:
            raise RuntimeError(f"item {self._mapping['id']}: a pending move written twice")
        self._written = True
        return self._stored, dict(self._changes)


async def item_written(conn: AsyncConnection, item_row):
    """The copy's row as stored now: a :class:`PendingItem` nobody wrote is written
    (its own move alone); any other row is returned as it is."""
    if not isinstance(item_row, PendingItem) or item_row._written:
        return item_row
    stored, changes = item_row.take()
    row = (await run_prepared(conn, _UPDATE_ITEM, {"w_id": item_row.id, "w_status": stored,
                                                   "status": item_row.status, **changes})).first()
    if row is None:
        raise ConcurrentChange(f"item {item_row.id} is no longer {stored}")
    return row


class Written:
    """A row as this transaction just wrote it: the row read before, with the values
    the conditional update set (so the caller need not read it again). Attribute access
    like a result row."""

    __slots__ = ("_mapping",)

    def __init__(self, row, **values):
        object.__setattr__(self, "_mapping", {**row._mapping, **values})

    def __getattr__(self, name: str):
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("a written row is read-only")


def written(row, new_state, at: datetime, **changes) -> Written:
    """Request ``row`` after :func:`transition` moved it to ``new_state`` at ``at`` with
    ``changes``: what the update wrote, without reading the row again."""
    return Written(row, state=lt.State(new_state).value, updated_at=at, **changes)


async def serving_system(conn: AsyncConnection, profiles: dict[str, Profile], item_row) -> str:
    """The member system whose patrons and queues a copy serves: its owner; a university
    partner's copy (連携貸出), the city it partners with; another library's copy borrowed
    for a request (ILL, NCIP), the system of that request; otherwise the system of its
    owning branch (its own library code when no profile has the branch)."""
    if item_row.library in profiles:
        return item_row.library
    for p in profiles.values():
        if item_row.library in p.partners:
            return p.system
    if item_row.partner or item_row.ill:
        asked = (await conn.execute(select(s.requests.c.library).where(s.requests.c.item_id == item_row.id)
                                    .order_by(s.requests.c.id.desc()).limit(1))).scalar()
        if asked:
            return asked
    for p in profiles.values():
        if item_row.owning_branch in p.branches:
            return p.system
    return item_row.library


# --------------------------------------------------------------------------- rows → records

def request_record(row, card_number: str) -> Request:
    return Request(
        id=str(row.id), patron_card=card_number, title_id=row.title_id, kind=row.kind,
        material_type=row.material_type, pickup_branch=row.pickup_branch,
        contact_method=row.contact_method, channel=row.channel, placed_at=row.placed_at,
        state=lt.State(row.state), submitted_at_branch=row.submitted_at_branch,
        publication_date=row.publication_date, set_id=row.set_id, set_position=row.set_position,
        group_id=row.group_id, memo=row.memo, ready_at=row.ready_at, contacted_at=row.contacted_at,
        cancelled_at=row.cancelled_at, cancel_reason=row.cancel_reason,
        cancel_channel=row.cancel_channel, rule_branch=row.rule_branch,
        delivery=bool(getattr(row, "delivery", False)))


def item_record(row, *, on_loan: bool | None = None) -> Item:
    return Item(
        barcode=row.barcode, title_id=row.title_id, owner_library=row.library,
        owning_branch=row.owning_branch, current_branch=row.current_branch or "",
        material_type=row.material_type, circulating=row.circulating,
        newest_issue=row.newest_issue, lending_release=row.lending_release, partner=row.partner,
        ill=row.ill, on_loan=(row.status == it.ItemStatus.ON_LOAN.value) if on_loan is None else on_loan,
        set_code=getattr(row, "set_code", None), location=getattr(row, "location", "") or "")


def loan_record(row, card_number: str, barcode: str, material_type: str = "book",
                partner: str | None = None, ill: bool = False) -> Loan:
    return Loan(item_barcode=barcode, patron_card=card_number, branch=row.branch,
                lent_at=row.lent_at, due=row.due, renewals=row.renewals,
                renewed_via=row.renewed_via, partner=partner, ill=ill,
                material_type=material_type,
                delivery=getattr(row, "channel", None) == "delivery")   # shipped (有料図書宅配)


# policies.LIVE_REQUEST_STATES, as the column's values (in the table's order)
LIVE_REQUEST_STATES = tuple(st.value for st in lt.State if st in LIVE)


def patron_contact(patron_row, **changes) -> Patron:
    """The patron's addresses (all contact_method_ok reads), without loans and requests;
    changes (email, phone, fax) replace the row's values."""
    v = {"email": patron_row.email, "phone": patron_row.phone, "fax": patron_row.fax, **changes}
    return Patron(card_number=patron_row.card_number, home_municipality=patron_row.home_municipality,
                  work_or_school_municipality=patron_row.work_or_school_municipality,
                  category=patron_row.category, email=v["email"], phone=v["phone"], fax=v["fax"],
                  card_expires=getattr(patron_row, "card_expires", None))


async def get_row(conn: AsyncConnection, table, *where, what: str = "row", for_update: bool = False):
    by = _by_column(table, where, for_update)
    if by is not None:
        row = (await run_prepared(conn, by[0], {"w_value": by[1]})).first()
    else:
        q = select(table).where(*where)
        if for_update:
            q = q.with_for_update()
        row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound(what)
    return row


async def request_row(conn: AsyncConnection, request_id: int, *, lock: bool = False):
    """The request row (locked FOR UPDATE with lock); NotFound when there is none."""
    row = (await run_prepared(conn, _REQUEST[lock], {"w_id": request_id})).first()
    if row is None:
        raise NotFound(f"request {request_id}")
    return row


async def patron_by_card(conn: AsyncConnection, card: str, *, lock: bool = False):
    """The patron row with this card number (locked FOR UPDATE with lock); NotFound
    when there is none."""
    row = (await run_prepared(conn, PATRON_BY_CARD[lock], {"w_card": card})).first()
    if row is None:
        raise NotFound(f"no patron with card {card!r}")
    return row


def _plain_and_locked(q) -> tuple[Prepared, Prepared]:
    return Prepared(q), Prepared(q.with_for_update())


# [unlocked, FOR UPDATE]
_REQUEST = _plain_and_locked(select(s.requests).where(s.requests.c.id == bindparam("w_id")))
PATRON_BY_CARD = _plain_and_locked(select(s.patrons).where(s.patrons.c.card_number == bindparam("w_card")))


# --------------------------------------------------------------------------- network setup

async def install_network(conn: AsyncConnection, profiles: dict[str, Profile], *,
                          partners: dict[str, str] | None = None) -> None:
    """Insert (or update) the libraries and branches of the given profiles, and
    university partners (code → name) without a profile. Idempotent; rows that are
    already as wanted are not written."""
    libs = {r.code: r for r in (await conn.execute(select(s.libraries))).all()}
    brs = {r.code: r for r in (await conn.execute(select(s.branches))).all()}

    async def put(table, have: dict, code: str, values: dict) -> None:
        row = have.get(code)
        if row is None:
            await conn.execute(insert(table).values(code=code, **values))
        elif any(getattr(row, k) != v for k, v in values.items()):
            await conn.execute(update(table).where(table.c.code == code).values(**values))

    for code, prof in profiles.items():
        await put(s.libraries, libs, prof.system, {"name": prof.name, "kind": "city", "profile": code})
        for bcode, bc in prof.branches.items():
            b = bc.branch
            await put(s.branches, brs, bcode,
                      {"library": prof.system, "name": b.name, "pickup": b.pickup, "kind": b.kind})
    # university partners: those of the profiles' [partners.<code>] (連携貸出) with their
    # branches (not pickup points), plus any given here by name only
    wanted = {code: p.name for prof in profiles.values() for code, p in prof.partners.items()}
    wanted.update(partners or {})
    for code, name in wanted.items():
        await put(s.libraries, libs, code, {"name": name, "kind": "university"})
    for prof in profiles.values():
        for code, p in prof.partners.items():
            for bcode, bname in p.branches.items():
                await put(s.branches, brs, bcode,
                          {"library": code, "name": bname, "pickup": False, "kind": "library"})


def dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, default=_json_default, sort_keys=True)


def _json_default(o):
    if isinstance(o, (date, datetime)):
        return o.isoformat()
    raise TypeError(type(o).__name__)


@dataclass
class Clock:
    """The service's time: what "now" is, and the one place that turns the naive times the
    database keeps into the service's zone and back.

    The database keeps naive local times of the service's zone (``zone``: the network's,
    :func:`lifecycle.profiles.network_zone`, set by :class:`~circulation.service.Circulation`
    from the profiles), whatever the host's own time zone is: :meth:`now` is the zone's
    wall-clock time, :meth:`aware` labels a stored time with the zone (what the API, ILL
    and NCIP messages and mail headers carry), :meth:`local` turns an aware time from
    outside into a stored one, :meth:`end_of` is the last second of a day there.

    ``fixed`` stops the clock (tests, benchmarks): a naive value is local time of the
    zone, an aware one any instant."""
    fixed: datetime | None = None
    zone: ZoneInfo | None = None

    @property
    def tz(self) -> ZoneInfo:
        if self.zone is None:
            raise RuntimeError("the clock has no time zone yet (the Circulation service sets it "
                               "from the profiles' timezone)")
        return self.zone

    def now(self) -> datetime:
        if self.fixed is not None:
            return self.local(self.fixed)
        return datetime.now(self.tz).replace(tzinfo=None, microsecond=0)

    def aware(self, local: datetime | None) -> datetime | None:
        """A stored (naive, local) time as an aware one in the zone; aware ones as they are."""
        if local is None or local.tzinfo is not None:
            return local
        return local.replace(tzinfo=self.tz)

    def local(self, dt: datetime | None) -> datetime | None:
        """A time as the database keeps it: an aware one converted to the zone's wall-clock
        time without its offset; a naive one is already local and stays as it is."""
        if dt is None or dt.tzinfo is None:
            return dt
        return dt.astimezone(self.tz).replace(tzinfo=None)

    def end_of(self, day: date) -> datetime:
        """The last second of ``day`` in the zone, aware (a due or expiry date as a moment)."""
        return datetime.combine(day, time(23, 59, 59), tzinfo=self.tz)
