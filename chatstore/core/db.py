"""The database: engines, connection set-up, and how SQL runs without blocking the loop.

All SQL is written as plain SQLAlchemy Core functions ``fn(connection) -> result``, handed to
``Database.read`` or ``Database.write``, which run each in one transaction without blocking the
event loop:

- SQLite's driver blocks, so the functions run in worker threads: one thread hop per transaction,
  not per statement. SQLite has a single writer however many connections ask, so every write of
  this process goes through one writer thread that commits whatever is queued in one transaction
  (group commit); each caller still gets its own durable commit before its ``await`` returns.
  Reads use a small pool of connections, which WAL lets run beside the writer.
- PostgreSQL runs them on asyncpg through SQLAlchemy's ``run_sync``, each in its own transaction
  on a pool, with no thread at all.
"""

import asyncio
import contextlib
import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import create_async_engine

from chatstore.core.settings import Settings, SettingsError

__all__ = ["Database", "connect_database", "open_database", "resolve_url"]

T = TypeVar("T")
Work = Callable[[Connection], T]

logger = logging.getLogger("chatstore.db")


def resolve_url(raw: str, *, blocking: bool = False) -> URL:
    """Map a user's database URL onto the driver chatstore runs: pysqlite or asyncpg.

    ``blocking=True`` names psycopg instead, for a plain synchronous engine (tests and tools that
    read the database directly; psycopg comes with the ``test`` extra).
    """
    try:
        url = make_url(raw)
    except Exception as exc:
        raise SettingsError(f"CHATSTORE_DATABASE_URL is not a database URL: {raw!r}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:") or url.database.startswith("file::memory:"):
            raise SettingsError(
                "CHATSTORE_DATABASE_URL: an in-memory SQLite database cannot be shared; name a file"
            )
        return url.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg" if blocking else "postgresql+asyncpg")
    raise SettingsError(
        f"CHATSTORE_DATABASE_URL: unsupported database {backend!r} (use sqlite or postgresql)"
    )


class Database(ABC):
    dialect: str

    @abstractmethod
    async def read(self, fn: Work[T]) -> T:
        """Run ``fn`` in a read transaction (one consistent snapshot)."""

    @abstractmethod
    async def write(self, fn: Work[T], *, single_statement: bool = False) -> T:
        """Run ``fn`` in a write transaction; returns once it is committed.

        ``single_statement=True`` promises that ``fn`` runs exactly one statement, which is atomic
        by itself: PostgreSQL then runs it without BEGIN and COMMIT, two round trips fewer.
        """

    @abstractmethod
    async def close(self) -> None: ...


async def open_database(settings: Settings) -> Database:
    """Bring the schema to the newest revision (``CHATSTORE_MIGRATE=off``: check that it is there),
    then connect and return the database. See ``chatstore.core.migrations``."""
    # Imported here: the migrations module builds on this one.
    from chatstore.core.migrations import prepare_schema

    await prepare_schema(settings)
    return connect_database(settings)


def connect_database(settings: Settings) -> Database:
    """The database, with its SQLite file's folder made, and its schema neither checked nor changed."""
    url = resolve_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteDatabase(url, settings)
    return PostgresDatabase(url, settings)


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, url: URL, settings: Settings) -> None:
        busy_timeout_ms = settings.db_busy_timeout_ms
        self._reader = create_engine(
            url, pool_size=settings.db_pool_size, max_overflow=0, pool_timeout=settings.db_pool_timeout_s
        )
        writer = create_engine(url, pool_size=1, max_overflow=0)
        _configure_sqlite(self._reader, busy_timeout_ms, begin="BEGIN")
        # IMMEDIATE takes the write lock up front: a transaction that read first and then wrote
        # could otherwise fail at once with SQLITE_BUSY when another process wrote in between.
        _configure_sqlite(writer, busy_timeout_ms, begin="BEGIN IMMEDIATE")
        self._writer = _GroupCommitWriter(writer)
        self._read_limiter = anyio.CapacityLimiter(settings.db_pool_size)

    async def read(self, fn: Work[T]) -> T:
        return await anyio.to_thread.run_sync(_in_transaction, self._reader, fn, limiter=self._read_limiter)

    async def write(self, fn: Work[T], *, single_statement: bool = False) -> T:
        return await self._writer.submit(fn)

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._writer.stop)
        self._reader.dispose()


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL loses no committed transaction when a process crashes;
        # only a power loss can take back the last ones.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)


def _in_transaction(engine: Engine, fn: Work[T]) -> T:
    with engine.begin() as connection:
        return fn(connection)


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(self, fn: Work[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        # A closed loop (RuntimeError) means nobody waits for this result any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_settle_future, self.future, result, error)


def _settle_future(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _GroupCommitWriter:
    """One thread, one connection: runs queued write jobs, many to a transaction."""

    max_batch = 128

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="chatstore-sqlite-writer", daemon=True)
        self._thread.start()

    async def submit(self, fn: Work[T]) -> T:
        job = _Job(fn, asyncio.get_running_loop())
        self._jobs.put(job)
        # Once queued the job runs and commits even if this caller is cancelled.
        return await job.future

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        self._engine.dispose()

    def _run(self) -> None:
        try:
            connection = self._engine.connect()
        except Exception as exc:
            # Without a connection every write fails, at once rather than never.
            logger.exception("the SQLite writer cannot connect")
            self._fail_every_job(exc)
            return
        with connection:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                batch = [job]
                stopping = False
                while len(batch) < self.max_batch:
                    try:
                        queued = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if queued is None:
                        stopping = True
                        break
                    batch.append(queued)
                self._commit(connection, batch)
                if stopping:
                    return

    def _fail_every_job(self, error: Exception) -> None:
        while (job := self._jobs.get()) is not None:
            job.settle(error=error)

    def _commit(self, connection: Connection, batch: list[_Job]) -> None:
        try:
            with connection.begin():
                results = []
                for job in batch:
                    try:
                        results.append(job.fn(connection))
                    except Exception as exc:
                        raise _JobFailed from exc
        except _JobFailed as failed:
            if len(batch) == 1:
                batch[0].settle(error=failed.__cause__)
                return
            # The transaction was rolled back for all; run them one by one so only the bad one fails.
            for job in batch:
                self._commit(connection, [job])
            return
        except Exception as exc:
            # BEGIN or COMMIT failed (the database is busy past the timeout, or broken): the same
            # would happen to each job alone, so they all fail now instead of one timeout each.
            for job in batch:
                job.settle(error=exc)
            return
        for job, result in zip(batch, results, strict=True):
            job.settle(result)


class _JobFailed(Exception):
    """A job's own function raised (the cause); the other jobs of its batch may still succeed."""


class PostgresDatabase(Database):
    """asyncpg on SQLAlchemy's async engine: the same Core functions, run through ``run_sync``
    without a thread hop, on the fastest PostgreSQL driver for asyncio."""

    dialect = "postgresql"

    def __init__(self, url: URL, settings: Settings) -> None:
        url, server_settings = _server_settings_from_options(url)
        self._engine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=0,
            pool_timeout=settings.db_pool_timeout_s,
            # No pre-ping: on asyncpg it costs three round trips per checkout. A connection the
            # server has closed is caught at checkout below, for free.
            pool_pre_ping=False,
            connect_args={"timeout": settings.db_pool_timeout_s, "server_settings": server_settings},
        )
        self._autocommit = self._engine.execution_options(isolation_level="AUTOCOMMIT")  # same pool

        @event.listens_for(self._engine.sync_engine, "checkout")
        def _drop_closed(_dbapi_connection: Any, _record: Any, proxy: Any) -> None:
            if proxy.driver_connection.is_closed():
                raise DisconnectionError("the server closed this connection")  # the pool connects anew

    async def read(self, fn: Work[T]) -> T:
        async with self._engine.begin() as connection:
            return await connection.run_sync(fn)

    async def write(self, fn: Work[T], *, single_statement: bool = False) -> T:
        if single_statement:
            async with self._autocommit.connect() as connection:
                return await connection.run_sync(fn)
        async with self._engine.begin() as connection:
            return await connection.run_sync(fn)

    async def close(self) -> None:
        await self._engine.dispose()


def _server_settings_from_options(url: URL) -> tuple[URL, dict[str, str]]:
    """Turn libpq's ``options=-c name=value …`` URL parameter into asyncpg's server settings."""
    options = url.query.get("options")
    if options is None:
        return url, {}
    words = " ".join(options if isinstance(options, tuple) else (options,)).replace("-c ", "-c").split()
    settings = {}
    for word in words:
        name, separator, value = word.removeprefix("-c").partition("=")
        if not word.startswith("-c") or not separator:
            raise SettingsError(f"CHATSTORE_DATABASE_URL: unsupported options parameter {options!r}")
        settings[name] = value
    return url.difference_update_query(["options"]), settings
