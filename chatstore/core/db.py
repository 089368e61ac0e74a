"""The database: engines, connection set-up, and how SQL runs without blocking the loop.

All SQL is written as plain SQLAlchemy Core functions ``fn(connection) -> result``, handed to
``Database.read`` or ``Database.write``, which run each without blocking the event loop (a write in
one transaction):

- SQLite's driver blocks, so the functions run in worker threads: one thread hop per transaction,
  not per statement. SQLite has a single writer however many connections ask, so every write of
  this process goes through one writer thread that commits whatever is queued in one transaction
  (group commit); one that raises fails alone (the others run again, each in a SAVEPOINT); each
  caller still gets its own durable commit before its ``await`` returns.
  Reads use a small pool of connections, which WAL lets run beside the writer.
- PostgreSQL runs them on asyncpg through SQLAlchemy's ``run_sync``, on a pool, with no thread at
  all: a write in its own transaction, a read without BEGIN and COMMIT (read committed either way).

When the database cannot run a transaction (unreachable, out of connections, a full disk, a file
deleted under the process), ``read`` and ``write`` raise ``DatabaseUnavailable`` instead of the
driver's error and log the driver's message once per outage. The process's own housekeeping
(its lease, the progress of streaming replies) writes with ``priority=True``: it never queues behind
requests, whatever they hold.
"""

import asyncio
import contextlib
import itertools
import logging
import queue
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatstore.core.settings import Settings, SettingsError

__all__ = ["Database", "DatabaseUnavailable", "DiskFull", "connect_database", "open_database", "resolve_url"]

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


class DatabaseUnavailable(Exception):
    """The database cannot run a transaction now; the request may succeed later.

    ``str(error)`` is what a client may read; the driver's own error is the ``__cause__`` and goes to
    the log only. ``reason`` says which failure it is, for the health check: ``unreachable`` (the
    server or file cannot be reached), ``busy`` (no connection or lock came free in time),
    ``disk_full`` or ``file_deleted``.
    """

    def __init__(self, reason: str, detail: str | None = None, *, retry_after_s: int = 5) -> None:
        super().__init__(detail or "the database is unavailable; try again later")
        self.reason = reason
        self.retry_after_s = retry_after_s


class DiskFull(DatabaseUnavailable):
    """The database's disk is full: nothing more can be stored, but what is stored can be read."""

    def __init__(self) -> None:
        super().__init__(
            "disk_full", "the database cannot store anything more: its disk is full", retry_after_s=30
        )


# SQLite's primary result codes that mean the file, not the statement, is the problem.
_SQLITE_FULL = 13
_SQLITE_BUSY_CODES = {5, 6}  # BUSY, LOCKED: past the busy timeout
_SQLITE_UNAVAILABLE_CODES = {8, 10, 14}  # READONLY, IOERR, CANTOPEN
# PostgreSQL's SQLSTATE classes and codes of a server that is away, shutting down or out of resources.
_POSTGRES_UNAVAILABLE_CLASSES = ("08", "53", "58")
_POSTGRES_UNAVAILABLE_CODES = {"57P01", "57P02", "57P03"}
_POSTGRES_DISK_FULL = "53100"


def unavailability(error: BaseException) -> DatabaseUnavailable | None:
    """The ``DatabaseUnavailable`` a driver's error amounts to, or None if it is not one (a bug)."""
    if isinstance(error, DatabaseUnavailable):
        return error
    if isinstance(error, PoolTimeout):
        return DatabaseUnavailable("busy", retry_after_s=1)
    if isinstance(error, DBAPIError):
        cause = error.orig
        if isinstance(cause, sqlite3.Error):
            code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
            if code == _SQLITE_FULL:
                return DiskFull()
            if code in _SQLITE_BUSY_CODES:
                return DatabaseUnavailable("busy", retry_after_s=1)
            if code in _SQLITE_UNAVAILABLE_CODES:
                return DatabaseUnavailable("unreachable")
            return None
        if error.connection_invalidated:
            return DatabaseUnavailable("unreachable")
        if cause is not None:
            error = cause
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate == _POSTGRES_DISK_FULL:
            return DiskFull()
        if sqlstate.startswith(_POSTGRES_UNAVAILABLE_CLASSES) or sqlstate in _POSTGRES_UNAVAILABLE_CODES:
            return DatabaseUnavailable("unreachable")
        return None
    # Raw from asyncpg when a connection cannot be made, or breaks: refused, reset, timed out.
    if isinstance(error, OSError | TimeoutError):
        return DatabaseUnavailable("unreachable")
    return None


class _Outage:
    """Logs an outage once when it begins and once when it ends, rather than once per request.

    It ends with a write that works a little while after the last failure: reads work on a full disk,
    and a write that changes nothing works there too, so neither says that the outage is over.
    """

    quiet_after_failure_s = 2.0
    reminder_s = 60.0

    def __init__(self) -> None:
        self._failing = False
        self._since = self._last_failure = self._last_logged = 0.0
        self._refused = 0

    def failed(self, kind: str, error: DatabaseUnavailable, cause: BaseException) -> None:
        now = time.monotonic()
        self._refused += 1
        self._last_failure = now
        if not self._failing:
            self._failing = True
            self._since = self._last_logged = now
            self._refused = 1
            logger.warning(
                "the database is unavailable (%s, on a %s): %s", error.reason, kind, _describe(cause)
            )
        elif now - self._last_logged > self.reminder_s:
            self._last_logged = now
            logger.warning(
                "the database is still unavailable (%s) after %.0f s, %d transaction(s) refused: %s",
                error.reason,
                now - self._since,
                self._refused,
                _describe(cause),
            )

    def wrote(self) -> None:
        if self._failing and time.monotonic() - self._last_failure >= self.quiet_after_failure_s:
            self._failing = False
            logger.warning(
                "the database answers again, after %.1f s and %d refused transaction(s)",
                self._last_failure - self._since,
                self._refused,
            )


def _describe(error: BaseException) -> str:
    if isinstance(error, DatabaseUnavailable):  # chatstore's own finding, logged where it was made
        return error.reason
    # SQLAlchemy appends a link to its documentation: the driver's own message is what comes before.
    message = str(error).split("(Background on this error at:")[0].strip()
    return f"{type(error).__name__}: {' '.join(message.split())}"


class Database(ABC):
    dialect: str

    def __init__(self) -> None:
        self._outage = _Outage()

    async def read(self, fn: Work[T]) -> T:
        """Run ``fn`` to read: on SQLite in one transaction (one snapshot for all its statements);
        on PostgreSQL each statement sees what was committed before it started (read committed)."""
        try:
            result = await self._read(fn)
        except Exception as exc:
            if (failure := self._failed("read", exc)) is exc:
                raise
            raise failure from exc
        return result

    async def write(self, fn: Work[T], *, priority: bool = False) -> T:
        """Run ``fn`` in a write transaction; returns its result once it is committed.

        A write function's contract:

        - it is pure apart from ``connection``: it reads and writes the database through it and
          touches nothing else (no I/O, no shared state), since it may run in another thread;
        - it may be run again from the start, in a new transaction, after a rolled-back attempt: it
          keeps nothing between runs (a fresh time or id on each run is fine);
        - it raises to refuse (``SessionNotFound``, ``InvalidInput`` …), like any function: its own
          changes are rolled back and the error reaches the caller of ``write``. On SQLite other
          callers' writes share the transaction: one that raises fails alone while the others
          commit (they run again, each in a SAVEPOINT of its own).

        ``priority=True`` is for the process's own small, periodic writes (its lease, the progress
        of replies): they go ahead of requests' writes on SQLite and have their own connections on
        PostgreSQL, so that no load of requests can hold them up.
        """
        try:
            result = await self._write(fn, priority)
        except Exception as exc:
            if (failure := self._failed("write", exc)) is exc:
                raise
            raise failure from exc
        self._outage.wrote()
        return result

    def _failed(self, kind: str, error: Exception) -> Exception:
        unavailable = unavailability(error)
        if unavailable is None:
            return error
        self._outage.failed(
            kind, unavailable, error if unavailable is not error else error.__cause__ or error
        )
        return unavailable

    @abstractmethod
    async def _read(self, fn: Work[T]) -> T: ...

    @abstractmethod
    async def _write(self, fn: Work[T], priority: bool) -> T: ...

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
        super().__init__()
        busy_timeout_ms = settings.db_busy_timeout_ms
        self._reader = create_engine(
            url, pool_size=settings.db_pool_size, max_overflow=0, pool_timeout=settings.db_pool_timeout_s
        )
        writer = create_engine(url, pool_size=1, max_overflow=0)
        _configure_sqlite(self._reader, busy_timeout_ms, begin="BEGIN")
        # IMMEDIATE takes the write lock up front: a transaction that read first and then wrote
        # could otherwise fail at once with SQLITE_BUSY when another process wrote in between.
        # The writer connects first, before any reader: it alone switches the file to WAL.
        _configure_sqlite(writer, busy_timeout_ms, begin="BEGIN IMMEDIATE", sets_wal=True)
        self._file = _DatabaseFile(str(url.database))
        self._writer = _GroupCommitWriter(writer, connected=self._file.remember, check=self._file.check)
        # One thread per connection of the reader pool, and one slot per thread: a read that holds a
        # slot finds a thread and a connection free at once.
        self._read_threads = ThreadPoolExecutor(
            max_workers=settings.db_pool_size, thread_name_prefix="chatstore-sqlite-reader"
        )
        self._read_slots = asyncio.Semaphore(settings.db_pool_size)
        self._pool_timeout_s = settings.db_pool_timeout_s

    async def _read(self, fn: Work[T]) -> T:
        await self._take_read_slot()
        slot_freed_by_thread = False
        try:
            read = self._read_threads.submit(self._read_in_thread, fn)
            try:
                return await asyncio.wrap_future(read)
            except asyncio.CancelledError:
                # A cancelled read returns at once, not when its thread is done: waiting would not survive
                # anyio's cancel scopes, which cancel the task again on every turn of the loop. The thread
                # frees the slot once it has given the connection back, and close() waits for it.
                read.add_done_callback(self._read_slot_freer(asyncio.get_running_loop()))
                slot_freed_by_thread = True
                raise
        finally:
            if not slot_freed_by_thread:
                self._read_slots.release()

    def _read_slot_freer(self, loop: asyncio.AbstractEventLoop) -> Callable[[Future[Any]], None]:
        def free_slot(_: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop has no reads left to let in
                loop.call_soon_threadsafe(self._read_slots.release)

        return free_slot

    async def _take_read_slot(self) -> None:
        # Waiting for a connection is bounded as on PostgreSQL: a starved pool answers "busy".
        # A free slot is taken without a timer: only a read that must wait arms one.
        if not self._read_slots.locked():
            await self._read_slots.acquire()
            return
        try:
            async with asyncio.timeout(self._pool_timeout_s):
                await self._read_slots.acquire()
        except TimeoutError:
            raise DatabaseUnavailable("busy", retry_after_s=1) from None

    def _read_in_thread(self, fn: Work[T]) -> T:
        self._file.check()
        with self._reader.begin() as connection:
            return fn(connection)

    async def _write(self, fn: Work[T], priority: bool) -> T:
        return await self._writer.submit(fn, priority=priority)

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._close_in_thread)

    def _close_in_thread(self) -> None:
        self._writer.stop()
        # The reads still running, cancelled ones too, give their connections back before the engine goes.
        self._read_threads.shutdown(wait=True)
        self._reader.dispose()


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, begin: str, *, sets_wal: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if sets_wal:
            switch_to_wal(cursor, busy_timeout_ms)
        # In WAL mode NORMAL loses no committed transaction when a process crashes;
        # only a power loss can take back the last ones.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)


def switch_to_wal(cursor: sqlite3.Cursor | sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Put the file in WAL mode; WAL is kept in the file, so later connections find it set.

    The switch needs an exclusive lock, and SQLite answers SQLITE_BUSY at once instead of waiting
    for the busy timeout: processes starting together on a new file retry here, within that timeout.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause_s = 0.001
    while True:
        try:
            mode = str(cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF in _SQLITE_BUSY_CODES
            if not busy or time.monotonic() + pause_s > deadline:
                raise
        else:
            if mode.lower() != "wal":
                logger.warning("SQLite kept the journal mode %r instead of WAL", mode)
            return
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 0.05)


class _DatabaseFile:
    """The SQLite file as this process opened it.

    Deleting the file (or its folder) while chatstore runs does not stop SQLite: it goes on writing
    to the open, unlinked file, and every write acknowledged from then on is gone at the next start.
    So the path is checked against the file opened (device and inode) around every transaction.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._opened: tuple[int, int] | None = None
        self._lost = False
        self._lock = threading.Lock()

    def remember(self) -> None:
        with contextlib.suppress(OSError):  # not a plain file (a URI): nothing to watch
            stat = self.path.stat()
            self._opened = (stat.st_dev, stat.st_ino)

    def check(self) -> None:
        if self._opened is None:
            return
        if not self._lost:
            try:
                stat = self.path.stat()
                moved = (stat.st_dev, stat.st_ino) != self._opened
            except (FileNotFoundError, NotADirectoryError):
                moved = True
            if not moved:
                return
            with self._lock:
                if not self._lost:
                    self._lost = True
                    logger.error(
                        "the database file %s was deleted or replaced while chatstore runs: every "
                        "request that needs the database now gets 503; restore the file (or its "
                        "folder) and restart chatstore",
                        self.path,
                    )
        raise DatabaseUnavailable("file_deleted", retry_after_s=30)


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(self, fn: Work[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        # A closed loop (RuntimeError) means nobody waits for this result any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_resolve_future, self.future, result, error)


def _resolve_future(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _resolve_futures(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        _resolve_future(future, result, error)


def _resolve_batch(batch: list[_Job], outcomes: list[tuple[Any, BaseException | None]]) -> None:
    """Hand each job of a batch its outcome: one wake-up of each event loop for the whole batch,
    where a call per job wrote to the loop's wake-up pipe once per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for job, (result, error) in zip(batch, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job.future, result, error))
    for loop, resolved in by_loop.items():
        # A closed loop (RuntimeError) means nobody waits for these results any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve_futures, resolved)


_PRIORITY, _NORMAL, _STOP = 0, 1, 2


class _GroupCommitWriter:
    """One thread, one connection: runs queued write jobs, many to a transaction. A job that raises
    fails alone: when one does, the batch is rolled back and run again, each job in a SAVEPOINT of
    its own (``Database.write``'s contract lets a job run again).

    Jobs queue by priority, then in order: a priority job (the lease, the progress of replies) goes
    into the next transaction however many requests' writes wait. ``connected`` runs once the
    connection is made; ``check`` before and after each transaction, raising ``DatabaseUnavailable``
    to fail it.
    """

    max_batch = 128

    def __init__(self, engine: Engine, connected: Callable[[], None], check: Callable[[], None]) -> None:
        self._engine = engine
        self._connected = connected
        self._check = check
        self._order = itertools.count()
        self._jobs: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._thread = threading.Thread(target=self._run, name="chatstore-sqlite-writer", daemon=True)
        self._thread.start()

    async def submit(self, fn: Work[T], *, priority: bool = False) -> T:
        job = _Job(fn, asyncio.get_running_loop())
        self._jobs.put((_PRIORITY if priority else _NORMAL, next(self._order), job))
        # Once queued the job runs and commits even if this caller is cancelled.
        return await job.future

    def stop(self) -> None:
        # Last in the queue: every job queued before it still runs.
        self._jobs.put((_STOP, next(self._order), None))
        self._thread.join()
        self._engine.dispose()

    def _run(self) -> None:
        try:
            connection = self._engine.connect()
            self._connected()
        except Exception as exc:
            # Without a connection every write fails, at once rather than never.
            logger.exception("the SQLite writer cannot connect")
            self._fail_every_job(exc)
            return
        with connection:
            while True:
                job = self._jobs.get()[2]
                if job is None:
                    return
                batch = [job]
                stopping = False
                while len(batch) < self.max_batch:
                    try:
                        queued = self._jobs.get_nowait()[2]
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
        while (job := self._jobs.get()[2]) is not None:
            job.resolve(error=error)

    def _commit(self, connection: Connection, batch: list[_Job]) -> None:
        try:
            self._check()
            outcomes = self._run_batch(connection, batch)
            # Committed into a file deleted meanwhile is not stored: say so rather than acknowledge.
            self._check()
        except Exception as exc:
            # BEGIN or COMMIT failed (the database is busy past the timeout, or broken), or a job met a
            # full disk or a lost file: the same would happen to each job alone, so they all fail now.
            # (A job alone in its batch that raised gets its own error.)
            _resolve_batch(batch, [(None, exc)] * len(batch))
            return
        _resolve_batch(batch, outcomes)

    def _run_batch(self, connection: Connection, batch: list[_Job]) -> list[tuple[Any, BaseException | None]]:
        """Run the batch in one transaction and commit it; each job's result, or its error.

        Without a SAVEPOINT per job first: they cost a fifth of the writer's time under load, and jobs
        rarely raise. Alone in its transaction a job needs none: if it raises, the rollback of the
        transaction is its own, and the error reaches its caller."""
        with connection.begin() as transaction:
            if len(batch) == 1:
                return [(batch[0].fn(connection), None)]
            try:
                results = [job.fn(connection) for job in batch]
            except Exception as exc:
                refusal = exc
            else:
                return [(result, None) for result in results]
            if (failure := _batch_failure(refusal)) is not None:
                raise failure
            transaction.rollback()
        # A job refused: its changes went with the others'. The batch again, each job in a SAVEPOINT.
        with connection.begin():
            return [self._run_job(connection, job) for job in batch]

    @staticmethod
    def _run_job(connection: Connection, job: _Job) -> tuple[Any, BaseException | None]:
        """Run one job in a SAVEPOINT of the batch: if it raises, its own changes are rolled back and
        its caller gets the error, while the other jobs of the batch commit."""
        try:
            with connection.begin_nested():
                return job.fn(connection), None
        except Exception as exc:
            error = exc
        if (failure := _batch_failure(error)) is not None:
            raise failure
        if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            raise error
        return None, error


def _batch_failure(error: BaseException) -> BaseException | None:
    """The full disk or lost file behind ``error``, if there is one: it fails the batch, not the job.
    SQLite may then have rolled the whole transaction back itself, and the rollback to a savepoint
    failed in turn (``error``, with the full disk as its ``__context__``)."""
    for failure in (error, error.__context__):
        if failure is not None and unavailability(failure) is not None:
            return failure
    return None


class PostgresDatabase(Database):
    """asyncpg on SQLAlchemy's async engine: the same Core functions, run through ``run_sync``
    without a thread hop, on the fastest PostgreSQL driver for asyncio."""

    dialect = "postgresql"
    # The heartbeat and the progress writer: one connection each, apart from the requests' pool.
    priority_pool_size = 2

    def __init__(self, url: URL, settings: Settings) -> None:
        super().__init__()
        url, server_settings = _server_settings_from_options(url)
        self._engine = self._create_engine(url, server_settings, settings, settings.db_pool_size)
        self._priority = self._create_engine(url, server_settings, settings, self.priority_pool_size)
        # Reads share the pool and run without BEGIN and COMMIT, each statement its own transaction:
        # what a read committed transaction gives (every statement sees what was committed before
        # it started), for one round trip per statement instead of three for a one-statement read.
        self._reader = self._engine.execution_options(isolation_level="AUTOCOMMIT")

    @staticmethod
    def _create_engine(
        url: URL, server_settings: dict[str, str], settings: Settings, pool_size: int
    ) -> AsyncEngine:
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=settings.db_pool_timeout_s,
            # No pre-ping: on asyncpg it costs three round trips per checkout. A connection the
            # server has closed is caught at checkout below, for free.
            pool_pre_ping=False,
            connect_args={"timeout": settings.db_pool_timeout_s, "server_settings": server_settings},
        )

        @event.listens_for(engine.sync_engine, "checkout")
        def _drop_closed(_dbapi_connection: Any, _record: Any, proxy: Any) -> None:
            if proxy.driver_connection.is_closed():
                raise DisconnectionError("the server closed this connection")  # the pool connects anew

        return engine

    async def _read(self, fn: Work[T]) -> T:
        async with self._reader.connect() as connection:
            return await connection.run_sync(fn)

    async def _write(self, fn: Work[T], priority: bool) -> T:
        async with (self._priority if priority else self._engine).begin() as connection:
            return await connection.run_sync(fn)

    async def close(self) -> None:
        await self._engine.dispose()
        await self._priority.dispose()


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
