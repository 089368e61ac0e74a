"""The schema's version: bring a database to the newest revision under a lock, or say why it cannot be.

The revisions are Alembic's, in ``chatstore/migrations/versions``, and run on a connection opened
here, never configured by an ``alembic.ini``:

- **One upgrade at a time.** The version is read and the revisions run in one transaction that
  holds the schema lock: PostgreSQL's advisory lock (the one 0.1.0 took to create its tables), or
  SQLite's write lock (``BEGIN IMMEDIATE``). Processes starting together queue on it; the first
  upgrades, the others then find the newest revision and do nothing.
- **All or nothing.** Every revision of one upgrade runs in that transaction, which commits once
  at the end, so a failed upgrade leaves the revision the database had. SQLite's connection for it
  has foreign keys off, as a table changed in batch mode is copied and the old one dropped (a drop
  would cascade); ``PRAGMA foreign_key_check`` must come back empty before the commit. Its renames
  are SQLite's legacy ones, which do not check the views and triggers that name the table.
- **0.1.0 databases** have chatstore's tables but no version table: revision 0001 creates only
  what is missing, so running it records them as 0001 and changes nothing else.
- **A database newer than the code** (the program was downgraded) is refused before anything is
  written, with both revisions in the message.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, create_engine, event, inspect, text
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

import chatstore.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from chatstore.core.db import Work, connect_database, resolve_url, switch_to_wal
from chatstore.core.settings import Settings

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "SchemaError",
    "SchemaState",
    "Upgrade",
    "differences_from_models",
    "history",
    "include_name",
    "include_object",
    "prepare_schema",
    "read_schema_state",
    "upgrade_schema",
]

logger = logging.getLogger("chatstore.migrations")

T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# The key 0.1.0 locked to create its tables: a 0.1.0 process starting during an upgrade waits too.
_SCHEMA_LOCK_KEY = 0x636861747374
# How long a starting SQLite process waits for another one's upgrade (PostgreSQL waits as long as it takes).
_SQLITE_SCHEMA_LOCK_TIMEOUT_MS = 10 * 60 * 1000
# The full-text index, which the models do not describe: SQLite's FTS5 table (and its shadow
# tables), PostgreSQL's generated column and its index. The triggers are never compared.
_SEARCH_TABLES = "messages_search"
_SEARCH_OBJECTS = {("column", "search_vector"), ("index", "ix_messages_search")}
# Named for chatstore, not Alembic's default: another Alembic app may share the schema.
VERSION_TABLE = "chatstore_alembic_version"


class SchemaError(Exception):
    """The database's schema is not one this code can serve as it is; the message says what to do."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What a database holds, as this code sees it."""

    revision: str | None  # as recorded in the version table
    head: str  # the newest revision this code has
    known: bool  # whether ``revision`` is one of this code's (a newer program's is not)
    legacy: bool  # chatstore's tables without a version table: a 0.1.0 database

    @property
    def is_newest(self) -> bool:
        return self.revision == self.head

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.legacy

    def describe(self) -> str:
        if not self.known:
            return (
                f"the database is at revision {self.revision}, which this chatstore does not have: "
                f"a newer chatstore upgraded it (this one's newest revision is {self.head})"
            )
        if self.legacy:
            return (
                "the database is a chatstore 0.1.0 one, without a version table (revision 0001 once "
                f"recorded); the newest revision is {self.head}"
            )
        if self.empty:
            return f"the database is empty (no chatstore tables); the newest revision is {self.head}"
        if self.is_newest:
            return f"the database is at revision {self.revision}, the newest"
        return f"the database is at revision {self.revision}; the newest is {self.head}"


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What an upgrade found, and the revision it left."""

    before: SchemaState
    after: str

    def describe(self) -> str:
        before = self.before
        if before.is_newest:
            return f"the database is at revision {before.revision}, the newest: nothing to upgrade"
        if before.empty:
            return f"created the schema at revision {self.after}, the newest"
        if before.legacy:
            then = "" if self.after == "0001" else f", then upgraded it to {self.after}"
            return f"recorded the chatstore 0.1.0 database as revision 0001{then}, the newest"
        return f"upgraded the database from revision {before.revision} to {self.after}, the newest"


async def prepare_schema(settings: Settings, *, script_location: Path = MIGRATIONS) -> None:
    """Start-up's schema step: upgrade (``CHATSTORE_MIGRATE=auto``), or only check (``off``).

    Raises ``SchemaError`` for a database this code cannot serve: newer than the code, or (``off``)
    not at the newest revision.
    """
    if settings.migrate == "auto":
        upgrade = await upgrade_schema(settings, script_location=script_location)
        logger.info("%s", upgrade.describe())
        return
    state = await read_schema_state(settings, script_location=script_location)
    check_can_serve(state, upgrading=False)


def check_can_serve(state: SchemaState, *, upgrading: bool) -> None:
    """Raise ``SchemaError`` unless this code can serve (or, ``upgrading``, upgrade) the database."""
    if not state.known:
        raise SchemaError(
            f"{state.describe()}. Run a chatstore that has revision {state.revision}, or restore the "
            "backup taken before that upgrade; nothing was changed"
        )
    if not upgrading and not state.is_newest:
        raise SchemaError(
            f"{state.describe()}, and CHATSTORE_MIGRATE=off: run python -m chatstore db upgrade first"
        )


async def read_schema_state(settings: Settings, *, script_location: Path = MIGRATIONS) -> SchemaState:
    """The database's revision, read without the lock and without writing anything (a SQLite file
    that does not exist is not created)."""
    script = _script(script_location)
    url = resolve_url(settings.database_url)

    def read(connection: Connection) -> SchemaState:
        return _state(connection, script)

    if url.get_backend_name() != "sqlite":
        return await _on_postgres(settings, read, write=False)
    if not Path(url.database).exists():
        return SchemaState(revision=None, head=_head(script), known=True, legacy=False)
    return await anyio.to_thread.run_sync(_on_sqlite, settings, read, False)


async def upgrade_schema(settings: Settings, *, script_location: Path = MIGRATIONS) -> Upgrade:
    """Bring the database to the newest revision, under the schema lock; nothing to do is fine.

    One at a time in a process: Alembic's ``op`` and ``context`` are module-wide.
    """
    script = _script(script_location)

    def upgrade(connection: Connection) -> Upgrade:
        if connection.dialect.name == "postgresql":
            # Held to the end of the transaction; a second process waits here, then finds nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        before = _state(connection, script)
        check_can_serve(before, upgrading=True)
        if not before.is_newest:
            command.upgrade(_config(script_location, connection), "head")
        return Upgrade(before, before.head)

    if resolve_url(settings.database_url).get_backend_name() != "sqlite":
        return await _on_postgres(settings, upgrade, write=True)
    return await anyio.to_thread.run_sync(_on_sqlite, settings, upgrade, True)


async def _on_postgres(settings: Settings, work: Work[T], *, write: bool) -> T:
    """Run ``work`` in one transaction on a connection of chatstore's own set-up, then let it go."""
    database = connect_database(settings)
    try:
        return await (database.write(work) if write else database.read(work))
    finally:
        await database.close()


def _on_sqlite(settings: Settings, work: Work[T], write: bool) -> T:
    """Run ``work`` in one transaction on a connection of its own: with ``write``, under SQLite's
    write lock, in WAL mode and with foreign keys off.

    This runs before the app's own connections open, so that they find the file in WAL mode already:
    switching a file to WAL while another connection switches it or writes fails at once.
    """
    url = resolve_url(settings.database_url)
    if write:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below starts the transaction
        timeout = max(settings.db_busy_timeout_ms, _SQLITE_SCHEMA_LOCK_TIMEOUT_MS if write else 0)
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(timeout)}")
        if write:
            switch_to_wal(dbapi_connection, timeout)
            # Off outside the transaction (it cannot change inside one): see the module's docstring.
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")
            # A table copied in batch mode is renamed into place after the old one is dropped;
            # SQLite's own rename checks every view and trigger then, and refuses those that name
            # the table (the search index's, revision 0005). The legacy rename leaves them be.
            dbapi_connection.execute("PRAGMA legacy_alter_table=ON")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    try:
        with engine.begin() as connection:
            result = work(connection)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() if write else []
            if broken:
                raise SchemaError(
                    f"the upgrade would leave rows of {broken[0][0]} whose parent row is gone; "
                    "nothing was changed"
                )
            return result
    finally:
        engine.dispose()


def _state(connection: Connection, script: ScriptDirectory) -> SchemaState:
    schema = _version_table_schema(connection)
    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
    )
    revision = context.get_current_revision()
    head = _head(script)
    known = revision is None or revision in {r.revision for r in script.walk_revisions()}
    legacy = revision is None and inspect(connection).has_table("sessions", schema=schema)
    return SchemaState(revision=revision, head=head, known=known, legacy=legacy)


def _head(script: ScriptDirectory) -> str:
    head = script.get_current_head()
    assert head is not None, "the migrations have no revision"
    return head


def _version_table_schema(connection: Connection) -> str | None:
    """Where the version table goes: beside the tables, in the first schema of the search path."""
    if connection.dialect.name != "postgresql":
        return None
    schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
    if schema is None:
        raise SchemaError(
            "the database's search_path names no schema that exists: create the schema, or fix "
            "options=-csearch_path in CHATSTORE_DATABASE_URL"
        )
    return str(schema)


def _script(script_location: Path) -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(script_location))


def _config(script_location: Path, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    if connection is not None:
        config.attributes["connection"] = connection
        config.attributes["version_table_schema"] = _version_table_schema(connection)
    return config


def history(script_location: Path = MIGRATIONS) -> list[tuple[str, str]]:
    """Every revision, oldest first, with the first line of its description."""
    revisions = reversed(list(_script(script_location).walk_revisions()))
    return [(r.revision, (r.doc or "").strip().splitlines()[0]) for r in revisions]


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Leave out of the comparison with the models what the models do not describe: the search index."""
    if type_ == "table":
        return name != VERSION_TABLE and not (name or "").startswith(_SEARCH_TABLES)
    return (type_, name) not in _SEARCH_OBJECTS


def include_object(_object: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any) -> bool:
    return (type_, name) not in _SEARCH_OBJECTS


def differences_from_models(connection: Connection, metadata: MetaData = SQLModel.metadata) -> list[Any]:
    """How the database's schema differs from the SQLModel tables (Alembic's autogenerate diff)."""
    context = MigrationContext.configure(
        connection,
        opts={
            "include_name": include_name,
            "include_object": include_object,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return _without_unread_sqlite_fk_options(connection, list(compare_metadata(context, metadata)))


def _without_unread_sqlite_fk_options(connection: Connection, found: list[Any]) -> list[Any]:
    """SQLAlchemy reads no ``ON DELETE`` from a column's own ``REFERENCES`` clause on SQLite (the form
    ``ADD COLUMN`` writes, see revision 0002), so such a foreign key shows as removed and added
    again; drop that pair when ``PRAGMA foreign_key_list`` has the options the model declares."""
    if connection.dialect.name != "sqlite":
        return found

    def key(constraint: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        targets = tuple(element.target_fullname for element in constraint.elements)
        return constraint.parent.name, tuple(constraint.column_keys), targets

    removed = {key(diff[1]): diff for diff in found if isinstance(diff, tuple) and diff[0] == "remove_fk"}
    unread = []
    for diff in found:
        if not (isinstance(diff, tuple) and diff[0] == "add_fk" and key(diff[1]) in removed):
            continue
        model = diff[1]
        table, columns, targets = key(model)
        pragma = connection.exec_driver_sql(f"PRAGMA foreign_key_list({table})").all()
        stated = {(row[3], f"{row[2]}.{row[4]}", row[6], row[5]) for row in pragma}
        declared = {
            (column, target, (model.ondelete or "NO ACTION").upper(), (model.onupdate or "NO ACTION").upper())
            for column, target in zip(columns, targets, strict=True)
        }
        if declared <= stated:
            unread += [diff, removed[key(model)]]
    return [diff for diff in found if not any(diff is pair for pair in unread)]
