"""The few writes of every chat turn (take its seqs, insert its messages, end its reply), run on the
database driver itself, past SQLAlchemy's execution path.

SQLAlchemy spends more on running a cached statement (its cache key, parameters, execution context
and result) than SQLite spends on a one-row UPDATE. A ``DriverStatement`` is compiled once per
database, and its values go straight to the driver's cursor, through the bind processors of their
types (SQLite keeps datetimes as text). It runs on a SQLAlchemy ``Connection``, inside its
transaction, and raises the driver's errors as SQLAlchemy's ``DBAPIError`` (a lost connection
invalidated, as SQLAlchemy does), so that ``chatstore.core.db.unavailability`` reads them as ever.
(A long read takes the driver's rows the same way: ``chatstore.services.rows.driver_rows``.)
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["DriverStatement"]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # For each of the statement's parameters, in order: its name in the SQL, the parameter it takes
    # (None: its value is ``literal``), and the bind processor of its type on this database (None:
    # the value goes as it is).
    binds: tuple[tuple[str, str | None, Any, Callable[[Any], Any] | None], ...]
    positional: bool  # the driver takes a sequence of values (``?``, ``$1``), else a dict by name

    def values(self, params: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        values = []
        for _, name, literal, process in self.binds:
            value = params[name] if name is not None else literal
            values.append(value if process is None else process(value))
        if self.positional:
            return values
        return {bind[0]: value for bind, value in zip(self.binds, values, strict=True)}


class DriverStatement:
    """A statement compiled once per database and run on the driver's cursor.

    ``column_keys``: for an INSERT, the columns every row gives (all of them: no default is filled
    in here). The statement's own values (``values(flag=False)``) are bound as SQLAlchemy binds them.
    """

    def __init__(self, statement: Executable, *, column_keys: Sequence[str] | None = None) -> None:
        self._statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def run(self, connection: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run it with ``params``; the first row it returns, if any (None for a statement without
        ``RETURNING``)."""
        compiled = self._compiled_for(connection.dialect)
        values = compiled.values(params)
        with _driver_errors(connection, compiled.sql, values) as cursor:
            cursor.execute(compiled.sql, values)
            row = cursor.fetchone() if cursor.description is not None else None
        return tuple(row) if row is not None else None

    def run_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run it once for each of ``rows`` (an INSERT's rows), in one call to the driver."""
        compiled = self._compiled_for(connection.dialect)
        values = [compiled.values(row) for row in rows]
        with _driver_errors(connection, compiled.sql, values) as cursor:
            cursor.executemany(compiled.sql, values)

    def _compiled_for(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver)  # each driver has its own placeholders and casts
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(dialect)
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiler = self._statement.compile(dialect=dialect, column_keys=self._column_keys)
        assert isinstance(compiler, SQLCompiler)
        names = compiler.positiontup if compiler.positional else list(compiler.binds)
        assert names is not None
        given = set(self._column_keys or [])
        binds = []
        for name in names:
            bind = compiler.binds[name]
            taken = bind.required or name in given
            if not taken and bind.callable is not None:
                raise ValueError(f"{name}: a value computed at execution is not bound here")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((name, name if taken else None, None if taken else bind.value, process))
        return _Compiled(compiler.string, tuple(binds), compiler.positional)


@contextmanager
def _driver_errors(connection: Connection, sql: str, params: Any) -> Iterator[Any]:
    """A cursor of the connection's driver, closed after; a driver error leaves it as SQLAlchemy's."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    driver_error = connection.dialect.loaded_dbapi.Error
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except driver_error as error:
        lost = connection.dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost:  # not returned to the pool: the next checkout gets a new connection
            connection.invalidate(error)
        raise DBAPIError.instance(sql, params, error, driver_error, connection_invalidated=lost) from error
    finally:
        cursor.close()
