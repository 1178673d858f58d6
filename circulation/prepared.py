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

``ON_STATEMENT``: callables given the SQL of every statement sent the driver's way (the
benchmark counts and traces them, as it does SQLAlchemy's ``before_cursor_execute``).
"""
from __future__ import annotations

import re
from typing import Any, Callable

from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection

try:                                  # the driver of the PostgreSQL backend
    import asyncpg
except ImportError:                   # pragma: no cover - SQLite-only installations
    asyncpg = None

ON_STATEMENT: list[Callable[[str], None]] = []

_COUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


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
        if c.returns_rows:
            rows = await raw.fetch(c.sql, *args, record_class=Row)
            return Result(rows, len(rows))
        status = await raw.execute(c.sql, *args)
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
