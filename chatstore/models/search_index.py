"""The full-text index of message content: its tables, triggers and columns, created at start-up.

SQLite: an FTS5 table that reads its text from ``messages`` by rowid, kept in step by triggers on
insert, on update of the content (a reply's text is written when it ends) and on delete (which the
cascade from a deleted session fires too). PostgreSQL: a stored generated ``tsvector`` column with a
GIN index, under a text search configuration of chatstore's own (``simple``, behind ``unaccent``).
The queries are in ``chatstore.services.search``.
"""

from sqlalchemy import Connection

__all__ = ["PG_DOCUMENT", "PG_LESS_THAN", "TS_CONFIG", "create_search_index"]

TS_CONFIG = "chatstore_search"
# PostgreSQL's parser reads "<script>" or "<style>" as the start of an HTML element and skips all
# that follows; chats hold code, so "<" is swapped for a private-use character before parsing (and
# back, in the snippet).
PG_LESS_THAN = "\ue004"
PG_DOCUMENT = "replace({column}, '<', chr(57348))"


def create_search_index(connection: Connection) -> None:
    """Create the full-text index and what keeps it in sync, if missing; index existing messages.

    Runs at start-up inside the transaction that creates the tables (under SQLite's write lock or
    PostgreSQL's advisory lock), so processes starting together create it once.
    """
    if connection.dialect.name == "postgresql":
        _create_postgres_index(connection)
    else:
        _create_sqlite_index(connection)


_SQLITE_INDEX = """
CREATE VIRTUAL TABLE messages_search USING fts5(
    content, content='messages', tokenize='unicode61 remove_diacritics 2'
)"""
_FORGET_OLD_ROW = (
    "INSERT INTO messages_search (messages_search, rowid, content) VALUES ('delete', old.rowid, old.content);"
)
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS messages_search_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
    END""",
    # An external-content index forgets a row by being told its old text.
    f"""CREATE TRIGGER IF NOT EXISTS messages_search_update AFTER UPDATE OF content ON messages BEGIN
        {_FORGET_OLD_ROW}
        INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS messages_search_delete AFTER DELETE ON messages BEGIN
        {_FORGET_OLD_ROW}
    END""",
)


def _create_sqlite_index(connection: Connection) -> None:
    exists = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_search'"
    ).first()
    if exists is None:
        connection.exec_driver_sql(_SQLITE_INDEX)
        # Messages stored before the index existed.
        connection.exec_driver_sql("INSERT INTO messages_search (messages_search) VALUES ('rebuild')")
    for trigger in _SQLITE_TRIGGERS:
        connection.exec_driver_sql(trigger)


def _create_postgres_index(connection: Connection) -> None:
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
        f"SELECT 1 FROM pg_ts_config WHERE cfgname = '{TS_CONFIG}' "
        "AND cfgnamespace = current_schema()::regnamespace"
    ).first()
    if has_config is None:
        connection.exec_driver_sql(f"CREATE TEXT SEARCH CONFIGURATION {TS_CONFIG} (COPY = pg_catalog.simple)")
        connection.exec_driver_sql(
            f"ALTER TEXT SEARCH CONFIGURATION {TS_CONFIG} ALTER MAPPING FOR hword, hword_part, word "
            f"WITH {quote(unaccent_schema)}.unaccent, simple"
        )
    # Adding a stored generated column computes it for the messages already there.
    vector = f"to_tsvector('{TS_CONFIG}'::regconfig, {PG_DOCUMENT.format(column='content')})"
    connection.exec_driver_sql(
        "ALTER TABLE messages ADD COLUMN IF NOT EXISTS search_vector tsvector "
        f"GENERATED ALWAYS AS ({vector}) STORED"
    )
    connection.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_messages_search ON messages USING gin (search_vector)"
    )
