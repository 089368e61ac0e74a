"""Branches: the path from a first message down to a message, read by following ``parent_id`` up.

A message's parent is always stored before it, so a branch in ``seq`` order is root first. Both
engines walk it with ``WITH RECURSIVE``, one primary-key look-up per message of the branch: the
cost grows with the branch, not with the rest of the tree.
"""

from typing import Any

from sqlalchemy import CTE, Connection, Row, literal, select

from chatstore.models import messages_table
from chatstore.services.rows import MESSAGE_COLUMNS

__all__ = ["ancestors", "branch_rows", "message_of_session"]


def ancestors(leaf_id: str, *, max_depth: int | None = None) -> CTE:
    """``(id, parent_id, role, depth)`` of ``leaf_id`` (depth 0) and every message above it (up to
    ``max_depth``)."""
    m = messages_table
    branch = (
        select(m.c.id, m.c.parent_id, m.c.role, literal(0).label("depth"))
        .where(m.c.id == leaf_id)
        .cte("branch", recursive=True)
    )
    parent = m.alias("parent")
    step = select(parent.c.id, parent.c.parent_id, parent.c.role, branch.c.depth + 1).join(
        branch, parent.c.id == branch.c.parent_id
    )
    if max_depth is not None:
        step = step.where(branch.c.depth < max_depth)
    return branch.union_all(step)


def branch_rows(connection: Connection, leaf_id: str | None) -> list[Row[Any]]:
    """The messages of the branch ending at ``leaf_id`` (``MESSAGE_COLUMNS``), root first."""
    if leaf_id is None:
        return []
    branch = ancestors(leaf_id)
    return list(
        connection.execute(
            select(*MESSAGE_COLUMNS)
            .join(branch, messages_table.c.id == branch.c.id)
            .order_by(messages_table.c.seq)
        ).all()
    )


def message_of_session(connection: Connection, session_id: str, message_id: str) -> Row[Any] | None:
    """``(id, role, parent_id)`` of a message if it is one of the session's, locked against a delete
    (PostgreSQL's ``FOR KEY SHARE``, as a new child's foreign key would), else None."""
    return connection.execute(
        select(messages_table.c.id, messages_table.c.role, messages_table.c.parent_id)
        .where(messages_table.c.id == message_id, messages_table.c.session_id == session_id)
        .with_for_update(read=True, key_share=True)
    ).first()
