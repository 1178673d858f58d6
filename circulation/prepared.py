"""The hot statements of circulation, executed by the driver itself on PostgreSQL.

SQLAlchemy's asyncio layer costs ~150-250 µs of client CPU per statement even when the
statement is built once (its execution context, the greenlet hop, the cursor adapter and
the result's metadata), and one circulation operation runs 10-18 of them.  A statement
wrapped here as :class:`Prepared` (at import time, once) is compiled once per dialect and
set of parameter names, and on PostgreSQL executed with asyncpg directly on the
connection of the unit of work (same transaction: the one SQLAlchemy began; asyncpg
prepares it once per connection and keeps it in its statement cache).  On any other
backend (SQLite) it goes through ``conn.execute`` as before.  Either way the caller gets
the same things: ``first()``, ``one()``, ``all()``, ``scalar()``, ``rowcount`` and rows
with attribute access and ``_mapping``.

Only statements that need no client-side processing take the driver path: no Python-side
column defaults and no result processors of the dialect (the circulation schema's hot
tables have none: server defaults and plain types; bind processors are applied).  Any
other statement is found out when it is compiled and always goes through SQLAlchemy, so
its answers stay SQLAlchemy's.

Driver errors are translated to SQLAlchemy's exceptions as SQLAlchemy would
(``IntegrityError``, ``OperationalError`` / ``DBAPIError`` with the SQLSTATE), so
:meth:`circulation.store.Database.run` retries deadlocks and serialization failures, and
callers that catch ``IntegrityError`` see it, exactly as before.

Each connection keeps its own server-side prepared statements of these (issue 18, seventh
round): the first use of a statement on a connection costs a Parse/Describe round trip,
and inside a unit of work that round trip is taken while its row locks are held (a hot
title's queue: a convoy behind it). So the SQL of every statement this process has run by
the driver is remembered (:data:`KNOWN`), and a connection that has not prepared all of
them prepares the missing ones when the pool hands it out (:func:`prepare_on_checkout`:
before BEGIN, no lock held). Only the first connection to meet a statement in the process
prepares it inside a unit of work.

``ON_STATEMENT``: callables given the SQL of every statement sent the driver's way (the
benchmark counts and traces them, as it does SQLAlchemy's ``before_cursor_execute``).
"""
from __future__ import annotations

import re
from typing import Any, Callable

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError, MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

try:                                  # the driver of the PostgreSQL backend
    import asyncpg
except ImportError:                   # pragma: no cover - SQLite-only installations
    asyncpg = None

ON_STATEMENT: list[Callable[[str], None]] = []

_COUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")

# The SQL of every statement compiled for the driver in this process, in the order first
# seen (a dict as an ordered set; the value: whether it returns rows). Bounded: one entry
# per Prepared constant and set of parameter names.
KNOWN: dict[str, bool] = {}
_ALL: list["Prepared"] = []      # every Prepared made (module constants: a bounded list)
_SEEDED: dict[int, int] = {}      # id(dialect) -> how many of _ALL were compiled into KNOWN
_CACHE_KEY = "circ_prepared"      # the pool record's info: [raw connection, {sql: statement}, KNOWN seen]


if asyncpg is not None:
    class Row(asyncpg.Record):
        """A driver row as the callers use SQLAlchemy's: ``row.column``, ``row[i]``,
        ``row._mapping``, tuple unpacking."""

        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

        @property
        def _mapping(self) -> "Row":
            return self
else:                                 # pragma: no cover
    Row = None  # type: ignore[assignment,misc]


class Result:
    """The rows of one statement, with the part of SQLAlchemy's ``Result`` the
    circulation code uses."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list, rowcount: int):
        self.rows = rows
        self.rowcount = rowcount

    def first(self):
        return self.rows[0] if self.rows else None

    def all(self) -> list:
        return self.rows

    def one(self):
        if len(self.rows) != 1:
            raise (NoResultFound if not self.rows else MultipleResultsFound)(
                f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def one_or_none(self):
        if len(self.rows) > 1:
            raise MultipleResultsFound(f"expected at most one row, got {len(self.rows)}")
        return self.rows[0] if self.rows else None

    def scalar(self):
        return self.rows[0][0] if self.rows else None

    def scalars(self) -> list:
        return [r[0] for r in self.rows]


class _Compiled:
    __slots__ = ("sql", "binds", "returns_rows")

    def __init__(self, sql: str, binds: list, returns_rows: bool):
        self.sql = sql
        self.binds = binds               # [(name, default value, processor or None)]
        self.returns_rows = returns_rows


_MISSING = object()


class Prepared:
    """One statement built once (a module constant), run by :func:`execute`."""

    __slots__ = ("statement", "_compiled")

    def __init__(self, statement):
        self.statement = statement
        self._compiled: dict[frozenset, _Compiled] = {}
        _ALL.append(self)

    def compiled(self, dialect, keys: frozenset) -> _Compiled | None:
        """The SQL and parameter order for these parameter names; None when the statement
        needs SQLAlchemy's processing (it then runs through SQLAlchemy)."""
        try:
            return self._compiled[keys]
        except KeyError:
            c = self._compiled[keys] = _compile(self.statement, dialect, keys)
            return c


def _needs_processing(compiled, dialect) -> bool:
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        return True                      # Python-side column defaults
    for col in getattr(compiled, "_result_columns", ()):
        try:
            if col[3]._cached_result_processor(dialect, None) is not None:
                return True
        except Exception:                # noqa: BLE001 - a type that wants the driver's type code
            return True
    return False


def _compile(statement, dialect, keys: frozenset) -> _Compiled | None:
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    if _needs_processing(compiled, dialect):
        return None
    defaults = compiled.construct_params(_check=False)
    if compiled.post_compile_params:
        # the IN lists of literal values (``state IN (...)``) are rendered as one bind per
        # value, as SQLAlchemy does at execution (render_postcompile, which would insist
        # on values for every other parameter at compile time too)
        defaults = compiled._process_parameters_for_postcompile(
            compiled.construct_params(escape_names=False, _no_postcompile=True, _check=False),
            _populate_self=True).parameters
    processors = compiled._bind_processors
    names = compiled.positiontup or []
    # a parameter the caller must give (a column of the statement's parameters, or a
    # bindparam() without a value) has no default: a missing one is a KeyError, never NULL
    binds = [(n, _MISSING if n in keys or _required(compiled, n) else defaults.get(n, _MISSING),
              processors.get(n)) for n in names]
    returns_rows = bool(compiled._result_columns) or statement.is_select or bool(
        getattr(compiled, "returning", None) or getattr(compiled, "effective_returning", None))
    KNOWN.setdefault(compiled.string, returns_rows)
    return _Compiled(compiled.string, binds, returns_rows)


def _required(compiled, name: str) -> bool:
    bind = compiled.binds.get(name)
    return bind is not None and bind.required


async def execute(conn: AsyncConnection, stmt: Prepared, params: dict | None = None):
    """Run ``stmt`` with ``params`` in the unit of work of ``conn``: on PostgreSQL by the
    driver (see the module's note), elsewhere by SQLAlchemy. Returns a result with
    ``first``/``one``/``all``/``scalar``/``rowcount``."""
    params = params or {}
    if conn.dialect.driver != "asyncpg":
        return await conn.execute(stmt.statement, params)
    dialect = conn.dialect
    c = stmt.compiled(dialect, frozenset(params))
    if c is None:
        return await conn.execute(stmt.statement, params)
    args = []
    for name, default, proc in c.binds:
        v = params[name] if default is _MISSING else params.get(name, default)
        args.append(proc(v) if proc is not None else v)
    adapted = conn.sync_connection.connection.dbapi_connection
    for hook in ON_STATEMENT:
        hook(c.sql)
    try:
        if adapted._transaction is None:
            await adapted._start_transaction()
        raw = adapted._connection
        stmts = _statements(conn.sync_connection.connection.info, raw)
        ps = stmts.get(c.sql)
        if ps is None:
            ps = stmts[c.sql] = await raw.prepare(c.sql, record_class=Row)
        try:
            rows = await ps.fetch(*args)
        except asyncpg.exceptions.InvalidCachedStatementError:
            stmts.pop(c.sql, None)       # prepared again at its next use (after a schema change)
            raise
        if c.returns_rows:
            return Result(rows, len(rows))
        status = ps.get_statusmsg()
    except DBAPIError:
        raise
    except Exception as e:               # the driver's error, as SQLAlchemy would raise it
        dbapi_error = dialect.loaded_dbapi.Error
        try:
            adapted._handle_exception(e)       # raises the DB-API error of SQLAlchemy's adapter
        except dbapi_error as translated:
            raise DBAPIError.instance(c.sql, args, translated, dbapi_error, dialect=dialect) from e
        raise
    m = _COUNT.match(status or "")
    return Result([], int(m.group(1)) if m else -1)


def _statements(info: dict, raw) -> dict:
    """This connection's prepared statements by SQL (kept in the pool record's ``info``,
    started afresh when the record holds a new driver connection)."""
    return _entry(info, raw)[1]


def _entry(info: dict, raw) -> list:
    entry = info.get(_CACHE_KEY)
    if entry is None or entry[0] is not raw:
        entry = info[_CACHE_KEY] = [raw, {}, 0]
    return entry


def _seed(dialect) -> None:
    """Put the SELECTs (and textual statements) among the Prepared constants into
    :data:`KNOWN` before their first use, so that a new process's connections prepare them
    at checkout too (their SQL does not depend on the parameter names given; INSERTs and
    UPDATEs, whose SQL does, become known at their first use)."""
    done = _SEEDED.get(id(dialect), 0)
    if done >= len(_ALL):
        return
    for p in _ALL[done:]:
        if getattr(p.statement, "is_select", False) or isinstance(p.statement, TextClause):
            try:
                p.compiled(dialect, frozenset())
            except Exception:            # noqa: BLE001 - compiled at its first use instead, as before
                continue
    _SEEDED[id(dialect)] = len(_ALL)


def prepare_on_checkout(sync_engine) -> None:
    """PostgreSQL (asyncpg): when the pool hands out a connection, prepare on it the
    statements of :data:`KNOWN` it has not prepared yet -- before the unit of work begins,
    so that no Parse/Describe round trip is taken under its locks (see the module's note).
    A statement the server refuses to prepare is left to its next use (which then reports
    the error as before); a broken connection is replaced by the pool."""

    dialect = sync_engine.dialect

    @event.listens_for(sync_engine, "checkout")
    def _prepare_known(dbapi_conn, record, _proxy):
        _seed(dialect)
        raw = dbapi_conn._connection
        entry = _entry(record.info, raw)
        seen = len(KNOWN)
        if entry[2] >= seen:
            return
        stmts = entry[1]
        missing = [sql for sql in list(KNOWN)[entry[2]:seen] if sql not in stmts]
        entry[2] = seen
        if not missing:
            return

        async def run(raw) -> None:
            for sql in missing:
                try:
                    stmts[sql] = await raw.prepare(sql, record_class=Row)
                except asyncpg.PostgresError:      # left to its next use, which reports it
                    continue

        try:
            dbapi_conn.run_async(run)
        except Exception as e:
            raise DisconnectionError(f"preparing statements failed: {type(e).__name__}") from e
