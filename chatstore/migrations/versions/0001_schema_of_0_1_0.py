"""The schema of release 0.1.0: sessions, messages, workers, and the full-text index of messages.

Revision ID: 0001
Revises: (none)

The tables are written out here rather than taken from the models: the models move on with every
revision, this one must create what 0.1.0 created, forever. Each object is created only if missing,
so a 0.1.0 database, which has them all but no version table, is recorded as this revision as it is
(and one that lost part of its index gets it back, as 0.1.0's own start-up would have done).

SQLite: an FTS5 table that reads its text from ``messages`` by rowid, kept in step by triggers on
insert, on update of the content and on delete (which the cascade from a deleted session fires
too). PostgreSQL: a stored generated ``tsvector`` column with a GIN index, under the text search
configuration ``chatstore_search`` (``simple`` behind ``unaccent``).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    connection = op.get_bind()
    _tables().create_all(connection, checkfirst=True)
    if connection.dialect.name == "postgresql":
        _create_postgres_index(connection)
    else:
        _create_sqlite_index(connection)


def downgrade() -> None:
    raise NotImplementedError(
        "chatstore's schema is not downgraded: restore the backup taken before the upgrade"
    )


def _tables() -> sa.MetaData:
    metadata = sa.MetaData()
    timestamp = sa.DateTime(timezone=True)
    sa.Table(
        "sessions",
        metadata,
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("metadata", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_message_at", timestamp, nullable=True),
        sa.Column("activity_at", timestamp, nullable=False),
        sa.Index("ix_sessions_created", "created_at", "id"),
        sa.Index("ix_sessions_activity", "activity_at", "id"),
    )
    sa.Table(
        "workers",
        metadata,
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("hostname", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", timestamp, nullable=False),
        sa.Column("lease_expires_at", timestamp, nullable=False),
    )
    in_progress = sa.text("status = 'in_progress'")
    sa.Table(
        "messages",
        metadata,
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column(
            "session_id", sa.String(), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.Column("worker_id", sa.String(), nullable=True),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("finish_reason", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.UniqueConstraint("session_id", "seq"),
        sa.UniqueConstraint("session_id", "client_id"),
        sa.CheckConstraint("role IN ('system', 'user', 'assistant')", name="message_role"),
        sa.CheckConstraint(
            "status IN ('in_progress', 'complete', 'incomplete', 'error')", name="message_status"
        ),
        sa.CheckConstraint(
            "finish_reason IN ('completed', 'stopped', 'client_disconnected', 'server_stopped', 'error')",
            name="message_finish_reason",
        ),
        sa.Index(
            "ix_messages_in_progress", "worker_id", sqlite_where=in_progress, postgresql_where=in_progress
        ),
    )
    return metadata


_SQLITE_INDEX = """
CREATE VIRTUAL TABLE messages_search USING fts5(
    content, content='messages', tokenize='unicode61 remove_diacritics 2'
)"""
# An external-content index forgets a row by being told its old text.
_FORGET_OLD_ROW = (
    "INSERT INTO messages_search (messages_search, rowid, content) VALUES ('delete', old.rowid, old.content);"
)
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS messages_search_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS messages_search_update AFTER UPDATE OF content ON messages BEGIN
        {_FORGET_OLD_ROW}
        INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS messages_search_delete AFTER DELETE ON messages BEGIN
        {_FORGET_OLD_ROW}
    END""",
)


def _create_sqlite_index(connection: sa.Connection) -> None:
    exists = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_search'"
    ).first()
    if exists is None:
        connection.exec_driver_sql(_SQLITE_INDEX)
        # Messages stored before the index existed.
        connection.exec_driver_sql("INSERT INTO messages_search (messages_search) VALUES ('rebuild')")
    for trigger in _SQLITE_TRIGGERS:
        connection.exec_driver_sql(trigger)


# "<" is swapped for a private-use character before parsing: PostgreSQL's parser reads "<script>" as
# the start of an HTML element and skips all that follows (see chatstore.models.search_index).
_PG_VECTOR = "to_tsvector('chatstore_search'::regconfig, replace(content, '<', chr(57348)))"


def _create_postgres_index(connection: sa.Connection) -> None:
    # unaccent goes in a schema that outlives the one chatstore's tables are in (which may be dropped
    # with everything in it), as other schemas' configurations may use it too.
    quote = connection.dialect.identifier_preparer.quote
    unaccent_schema = connection.exec_driver_sql(
        "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'unaccent'"
    ).scalar()
    if unaccent_schema is None:
        has_public = connection.exec_driver_sql("SELECT 1 FROM pg_namespace WHERE nspname = 'public'").first()
        unaccent_schema = (
            "public" if has_public else connection.exec_driver_sql("SELECT current_schema()").scalar()
        )
        connection.exec_driver_sql(
            f"CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA {quote(unaccent_schema)}"
        )
    has_config = connection.exec_driver_sql(
        "SELECT 1 FROM pg_ts_config WHERE cfgname = 'chatstore_search' "
        "AND cfgnamespace = current_schema()::regnamespace"
    ).first()
    if has_config is None:
        connection.exec_driver_sql(
            "CREATE TEXT SEARCH CONFIGURATION chatstore_search (COPY = pg_catalog.simple)"
        )
        connection.exec_driver_sql(
            "ALTER TEXT SEARCH CONFIGURATION chatstore_search ALTER MAPPING FOR hword, hword_part, word "
            f"WITH {quote(unaccent_schema)}.unaccent, simple"
        )
    # Adding a stored generated column computes it for the messages already there.
    connection.exec_driver_sql(
        "ALTER TABLE messages ADD COLUMN IF NOT EXISTS search_vector tsvector "
        f"GENERATED ALWAYS AS ({_PG_VECTOR}) STORED"
    )
    connection.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_messages_search ON messages USING gin (search_vector)"
    )
