"""Each message's depth on its branch, so that a branch's length is known before it is read.

Revision ID: 0003
Revises: 0002

``messages.depth`` counts the messages above a message (0 for a first message). Reading a session's
current branch picks its plan by it: a branch that holds most of the session is read in one range
of the ``(session_id, seq)`` index, a short one up its ``parent_id`` chain.

The column is added in place with a default of 0 (SQLite adds a ``NOT NULL`` column only with a
default, and copying the table would renumber the rows the full-text index reads by rowid); the
depths are then computed by one recursive query down from the first messages.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_DEPTHS = """
WITH RECURSIVE tree(id, depth) AS (
    SELECT id, 0 FROM messages WHERE parent_id IS NULL
    UNION ALL
    SELECT messages.id, tree.depth + 1 FROM messages JOIN tree ON messages.parent_id = tree.id
)
UPDATE messages SET depth = tree.depth FROM tree WHERE messages.id = tree.id AND tree.depth > 0
"""


def upgrade() -> None:
    connection = op.get_bind()
    if "depth" in {column["name"] for column in sa.inspect(connection).get_columns("messages")}:
        return  # a database whose version table was lost after this revision ran: nothing to do
    op.add_column("messages", sa.Column("depth", sa.Integer(), server_default=sa.text("0"), nullable=False))
    connection.exec_driver_sql(_DEPTHS)


def downgrade() -> None:
    raise NotImplementedError(
        "chatstore's schema is not downgraded: restore the backup taken before the upgrade"
    )
