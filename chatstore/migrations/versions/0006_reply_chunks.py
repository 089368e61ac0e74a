"""Reply chunks: live progress writes only the text a streaming reply added since its last write.

Revision ID: 0006
Revises: 0005

``reply_chunks`` holds, for each reply still ``in_progress``, the pieces of text its progress writes
stored, keyed by where each starts in the reply's text. The text so far is the row's ``content``
followed by its chunks in order; the final write, a stop, the shutdown release and the crash sweep
fold them into ``content`` and delete them. Deleting a message deletes its chunks.

The revision only adds a table. A process of an earlier release beside new ones does not read the
chunks: a reply a new process streams shows there without its text until it ends, and its sweep of a
dead new process's reply leaves the chunks, which the next sweep of a new process folds in.

The downgrade folds every chunk into its reply's content, then drops the table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

# The chunks of each reply in order: PostgreSQL orders within the aggregate; SQLite 3.40 cannot, but
# keeps the ORDER BY of a subquery that feeds group_concat.
_FOLD = {
    "postgresql": (
        "UPDATE messages SET content = content || (SELECT string_agg(c.content, '' ORDER BY c.position) "
        "FROM reply_chunks AS c WHERE c.reply_id = messages.id) "
        "WHERE id IN (SELECT reply_id FROM reply_chunks)"
    ),
    "sqlite": (
        "UPDATE messages SET content = content || (SELECT group_concat(c.content, '') FROM "
        "(SELECT content FROM reply_chunks WHERE reply_id = messages.id ORDER BY position) AS c) "
        "WHERE id IN (SELECT reply_id FROM reply_chunks)"
    ),
}


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("reply_chunks"):
        return  # a database whose version table was lost after this revision ran: nothing to do
    op.create_table(
        "reply_chunks",
        sa.Column(
            "reply_id", sa.String(), sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("content", sa.Text(), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    connection = op.get_bind()
    connection.exec_driver_sql(_FOLD[connection.dialect.name])
    op.drop_table("reply_chunks")
