"""Conversations as trees: each message's parent, and the message a session shows last (stop 0.1.0 first).

Revision ID: 0002
Revises: 0001

``messages.parent_id`` is the message a message follows (null for a first message); deleting a
message deletes what follows it, by the foreign key. ``sessions.current_message_id`` is the last
message of the branch the session shows. It has no foreign key: one would make the two tables
refer to each other (a cycle that table creation and SQLite's table copies must work around, and a
session's delete would cascade both ways); the only writer that deletes a message moves it in the
same transaction.

Both columns are added in place (SQLite's ``ADD COLUMN`` takes a ``REFERENCES`` clause when the
default is null), so SQLite copies no table: the full-text index reads ``messages`` by rowid, and a
copy would renumber the rows and drop the triggers.

The data: every session becomes a chain in ``seq`` order, except that a reply stored by 0.1.0's
regenerate, which appended a reply right after the replies to the same question, becomes a sibling
of the reply before it, as it meant. A generated reply is told from an assistant message a client
sent by its state: a client's message is stored ``complete`` without a finish reason. The session's
current message is its newest one.

A 0.1.0 process would store messages without a parent: stop them all before this upgrade.
"""

from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_BATCH = 5000


def upgrade() -> None:
    connection = op.get_bind()
    schema = sa.inspect(connection)
    if "parent_id" in {column["name"] for column in schema.get_columns("messages")}:
        return  # a database whose version table was lost after this revision ran: nothing to do
    if connection.dialect.name == "sqlite":  # Alembic's SQLite ALTER takes no constraint
        connection.exec_driver_sql(
            "ALTER TABLE messages ADD COLUMN parent_id VARCHAR REFERENCES messages (id) ON DELETE CASCADE"
        )
    else:
        op.add_column(
            "messages",
            sa.Column("parent_id", sa.String(), sa.ForeignKey("messages.id", ondelete="CASCADE")),
        )
    op.add_column("sessions", sa.Column("current_message_id", sa.String(), nullable=True))
    # Seqs are never reused, so once a message can be deleted the newest seq no longer counts them.
    op.add_column(
        "sessions", sa.Column("message_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    connection.exec_driver_sql("UPDATE sessions SET message_count = last_seq")
    # Where a fork was copied from; no foreign keys: the original may be deleted, the fork stays.
    op.add_column("sessions", sa.Column("forked_from_session_id", sa.String(), nullable=True))
    op.add_column("sessions", sa.Column("forked_from_message_id", sa.String(), nullable=True))
    # Children of a message in seq order (and the cascade's look-up); first messages by session.
    op.create_index("ix_messages_parent", "messages", ["parent_id", "seq"])
    op.create_index("ix_messages_session_parent", "messages", ["session_id", "parent_id", "seq"])
    _link_parents(connection)
    connection.exec_driver_sql(
        "UPDATE sessions SET current_message_id = (SELECT m.id FROM messages AS m "
        "WHERE m.session_id = sessions.id ORDER BY m.seq DESC LIMIT 1)"
    )


def downgrade() -> None:
    raise NotImplementedError(
        "chatstore's schema is not downgraded: restore the backup taken before the upgrade"
    )


def _link_parents(connection: sa.Connection) -> None:
    pending: list[dict[str, str]] = []
    for link in _parents(connection):
        pending.append(link)
        if len(pending) == _BATCH:
            _store(connection, pending)
            pending = []
    if pending:
        _store(connection, pending)


def _parents(connection: sa.Connection) -> Iterator[dict[str, str]]:
    """Each message's parent, by the rule in the module's docstring (first messages are left null)."""
    rows = connection.exec_driver_sql(
        "SELECT id, session_id, role = 'assistant' AND (finish_reason IS NOT NULL OR status <> 'complete') "
        "FROM messages ORDER BY session_id, seq"
    ).all()
    session_id: str | None = None
    previous: str | None = None
    previous_is_reply = False
    # The parent of the reply before this one: a regenerated reply's too.
    previous_parent: str | None = None
    for message_id, message_session_id, is_reply in rows:
        if message_session_id != session_id:
            session_id, previous, previous_is_reply, previous_parent = message_session_id, None, False, None
        parent = previous_parent if is_reply and previous_is_reply else previous
        if parent is not None:
            yield {"message_id": message_id, "parent_id": parent}
        previous, previous_is_reply, previous_parent = message_id, bool(is_reply), parent


def _store(connection: sa.Connection, links: list[dict[str, str]]) -> None:
    connection.execute(sa.text("UPDATE messages SET parent_id = :parent_id WHERE id = :message_id"), links)
