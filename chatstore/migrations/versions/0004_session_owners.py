"""Session owners: the user a session belongs to, and the list's orders per owner.

Revision ID: 0004
Revises: 0003

``sessions.owner`` is the user id of the caller that created (or imported, or forked) the session:
null in open mode, for a service key without ``X-Chatstore-User``, and for every session stored
before this revision (``python -m chatstore db set-owner`` assigns those). The column is added in
place, so SQLite copies no table (the full-text index reads ``messages`` by rowid).

The two indexes start with the owner and then follow the list's two orders, so that one user's
page is read from that user's entries alone, however many sessions other users have.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    schema = sa.inspect(op.get_bind())
    if "owner" in {column["name"] for column in schema.get_columns("sessions")}:
        return  # a database whose version table was lost after this revision ran: nothing to do
    op.add_column("sessions", sa.Column("owner", sa.String(), nullable=True))
    op.create_index("ix_sessions_owner_created", "sessions", ["owner", "created_at", "id"])
    op.create_index("ix_sessions_owner_activity", "sessions", ["owner", "activity_at", "id"])


def downgrade() -> None:
    raise NotImplementedError(
        "chatstore's schema is not downgraded: restore the backup taken before the upgrade"
    )
