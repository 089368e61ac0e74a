"""The full-text index knows each message's owner, so that a user's search reads only their matches.

Revision ID: 0005
Revises: 0004

SQLite: ``messages_search`` is made again with a second indexed column, ``owner_key``: the session
owner's id as UTF-8 in lower-case hex (``lower(hex(owner))``), one ``unicode61`` token whatever
characters the id holds, and no token for a session without an owner. A user's search matches the
words in ``content`` and the key in ``owner_key``, and FTS5 intersects the two lists of rows.

The owner lives on ``sessions``, so the index reads its text from the view ``messages_search_source``
(``messages`` joined to ``sessions``; FTS5 looks a row up by ``doc``, the messages' rowid, as
before), and the triggers supply the key:

- on ``messages``, as before, on insert, on update of the content (or of the session) and on delete;
- on ``sessions``, an update of the owner (``python -m chatstore db set-owner``) takes the session's
  messages out of the index under the old key and puts them back under the new one;
- and before a session is deleted, its messages are deleted while it still names their owner
  (the cascade would delete them after the session, when the key the index holds can no longer be
  found, and an external-content index forgets a row only by being told exactly what it holds).

SQLite drops a table's triggers when a later revision copies it (batch mode): one that copies
``sessions`` or ``messages`` must make these again (the README's "Adding a revision" says how).

The index is rebuilt from the view. A process of the release before this one may run beside new
ones: the triggers keep the index whatever writes the rows, and its searches find the same messages
except that a word spelt like an owner's key (a hex string) also matches that owner's messages.

PostgreSQL: nothing changes. Its index is a column of ``messages``, and a user's search already
starts from the user's sessions (by ``ix_sessions_owner_created``) whenever that is cheaper.

The downgrade gives back revision 0001's index and triggers, rebuilt.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_SOURCE = """
CREATE VIEW messages_search_source AS
SELECT m.rowid AS doc, m.content AS content, lower(hex(s.owner)) AS owner_key
FROM messages AS m LEFT JOIN sessions AS s ON s.id = m.session_id"""
_INDEX = """
CREATE VIRTUAL TABLE messages_search USING fts5(
    content, owner_key, content='messages_search_source', content_rowid='doc',
    tokenize='unicode61 remove_diacritics 2'
)"""
# What the view gives as the owner key of a message of the session ``{session}``.
_KEY = "(SELECT lower(hex(owner)) FROM sessions WHERE id = {session})"
_FORGET_OLD_ROW = (
    "INSERT INTO messages_search (messages_search, rowid, content, owner_key) "
    f"VALUES ('delete', old.rowid, old.content, {_KEY.format(session='old.session_id')});"
)
_INDEX_NEW_ROW = (
    "INSERT INTO messages_search (rowid, content, owner_key) "
    f"VALUES (new.rowid, new.content, {_KEY.format(session='new.session_id')});"
)
_TRIGGERS = (
    f"""CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
        {_INDEX_NEW_ROW}
    END""",
    f"""CREATE TRIGGER messages_search_update AFTER UPDATE OF content, session_id ON messages BEGIN
        {_FORGET_OLD_ROW}
        {_INDEX_NEW_ROW}
    END""",
    f"""CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
        {_FORGET_OLD_ROW}
    END""",
    """CREATE TRIGGER messages_search_owner AFTER UPDATE OF owner ON sessions
    WHEN old.owner IS NOT new.owner BEGIN
        INSERT INTO messages_search (messages_search, rowid, content, owner_key)
            SELECT 'delete', m.rowid, m.content, lower(hex(old.owner)) FROM messages AS m
            WHERE m.session_id = old.id;
        INSERT INTO messages_search (rowid, content, owner_key)
            SELECT m.rowid, m.content, lower(hex(new.owner)) FROM messages AS m WHERE m.session_id = new.id;
    END""",
    """CREATE TRIGGER messages_search_session_delete BEFORE DELETE ON sessions BEGIN
        DELETE FROM messages WHERE session_id = old.id;
    END""",
)
_TRIGGER_NAMES = (
    "messages_search_insert",
    "messages_search_update",
    "messages_search_delete",
    "messages_search_owner",
    "messages_search_session_delete",
)

# Revision 0001's index and triggers, as it wrote them, for the downgrade.
_INDEX_0001 = """
CREATE VIRTUAL TABLE messages_search USING fts5(
    content, content='messages', tokenize='unicode61 remove_diacritics 2'
)"""
_FORGET_OLD_ROW_0001 = (
    "INSERT INTO messages_search (messages_search, rowid, content) VALUES ('delete', old.rowid, old.content);"
)
_TRIGGERS_0001 = (
    """CREATE TRIGGER IF NOT EXISTS messages_search_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS messages_search_update AFTER UPDATE OF content ON messages BEGIN
        {_FORGET_OLD_ROW_0001}
        INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS messages_search_delete AFTER DELETE ON messages BEGIN
        {_FORGET_OLD_ROW_0001}
    END""",
)


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    if _has_view(connection):
        return  # a database whose version table was lost after this revision ran: nothing to do
    _drop_index(connection)
    connection.exec_driver_sql(_SOURCE)
    connection.exec_driver_sql(_INDEX)
    for trigger in _TRIGGERS:
        connection.exec_driver_sql(trigger)
    connection.exec_driver_sql("INSERT INTO messages_search (messages_search) VALUES ('rebuild')")


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    _drop_index(connection)
    connection.exec_driver_sql("DROP VIEW IF EXISTS messages_search_source")
    connection.exec_driver_sql(_INDEX_0001)
    for trigger in _TRIGGERS_0001:
        connection.exec_driver_sql(trigger)
    connection.exec_driver_sql("INSERT INTO messages_search (messages_search) VALUES ('rebuild')")


def _has_view(connection: sa.Connection) -> bool:
    found = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = 'messages_search_source'"
    )
    return found.first() is not None


def _drop_index(connection: sa.Connection) -> None:
    """Drop the index and every trigger that writes to it (those of 0001 and of this revision)."""
    for name in _TRIGGER_NAMES:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    connection.exec_driver_sql("DROP TABLE IF EXISTS messages_search")
