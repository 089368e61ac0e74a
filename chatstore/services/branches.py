"""Branches: the path from a first message down to a message, read by following ``parent_id`` up.

A message's parent is always stored before it, so a branch in ``seq`` order is root first. Both
engines walk it with ``WITH RECURSIVE``, one primary-key look-up per message of the branch: the
cost grows with the branch, not with the rest of the tree.
"""

from typing import Any

from sqlalchemy import CTE, Connection, Row, literal, or_, select

from chatstore.models import messages_table
from chatstore.models.tables import is_id
from chatstore.services.rows import MESSAGE_COLUMNS

__all__ = [
    "NOT_A_MESSAGE",
    "ancestors",
    "branch_rows",
    "branch_with_siblings",
    "descendants",
    "is_message_of_session",
    "message_of_session",
    "newest_below",
    "siblings_of",
]

NOT_A_MESSAGE = "is not a message of this session"


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


def branch_with_siblings(
    connection: Connection, session_id: str, leaf_id: str | None
) -> tuple[list[Row[Any]], dict[str | None, list[str]]]:
    """The branch ending at ``leaf_id`` (root first), and for each parent on it the ids of its
    children in seq order (``None``: the session's first messages): each message's siblings."""
    if leaf_id is None:
        return [], {}
    branch = ancestors(leaf_id)
    rows = connection.execute(
        select(*MESSAGE_COLUMNS)
        .join(branch, messages_table.c.id == branch.c.id)
        .order_by(messages_table.c.seq)
    ).all()
    m = messages_table
    children = connection.execute(
        select(m.c.id, m.c.parent_id)
        .where(
            m.c.session_id == session_id,
            or_(m.c.parent_id.in_(select(branch.c.parent_id)), m.c.parent_id.is_(None)),
        )
        .order_by(m.c.seq)
    ).all()
    siblings: dict[str | None, list[str]] = {}
    for child_id, parent_id in children:
        siblings.setdefault(parent_id, []).append(child_id)
    return list(rows), siblings


def siblings_of(connection: Connection, session_id: str, rows: list[Row[Any]]) -> dict[str | None, list[str]]:
    """For each parent of ``rows`` (a page: a few ids), its children's ids in seq order."""
    parents = {row.parent_id for row in rows}
    m = messages_table
    which = [m.c.parent_id.in_([parent for parent in parents if parent is not None])]
    if None in parents:
        which.append(m.c.parent_id.is_(None))
    children = connection.execute(
        select(m.c.id, m.c.parent_id).where(m.c.session_id == session_id, or_(*which)).order_by(m.c.seq)
    ).all()
    siblings: dict[str | None, list[str]] = {}
    for child_id, parent_id in children:
        siblings.setdefault(parent_id, []).append(child_id)
    return siblings


def descendants(message_id: str) -> CTE:
    """``(id, seq, depth)`` of ``message_id`` (depth 0) and every message below it."""
    m = messages_table
    below = (
        select(m.c.id, m.c.seq, literal(0).label("depth"))
        .where(m.c.id == message_id)
        .cte("below", recursive=True)
    )
    child = m.alias("child")
    return below.union_all(
        select(child.c.id, child.c.seq, below.c.depth + 1).join(below, child.c.parent_id == below.c.id)
    )


def newest_below(connection: Connection, message_id: str) -> str:
    """The newest message at or below ``message_id``: where the branch through it ends (the way a
    chat switches to a message that has replies below it)."""
    below = descendants(message_id)
    return str(connection.execute(select(below.c.id).order_by(below.c.seq.desc()).limit(1)).scalar_one())


def is_message_of_session(connection: Connection, session_id: str, message_id: str) -> bool:
    """Whether ``message_id`` (any string) names a message of the session; reads take no lock."""
    return (
        is_id(message_id)
        and connection.execute(
            select(messages_table.c.id).where(
                messages_table.c.id == message_id, messages_table.c.session_id == session_id
            )
        ).first()
        is not None
    )


def message_of_session(connection: Connection, session_id: str, message_id: str) -> Row[Any] | None:
    """``(id, role, parent_id)`` of a message if it is one of the session's, locked against a delete
    (PostgreSQL's ``FOR KEY SHARE``, as a new child's foreign key would), else None."""
    return connection.execute(
        select(messages_table.c.id, messages_table.c.role, messages_table.c.parent_id)
        .where(messages_table.c.id == message_id, messages_table.c.session_id == session_id)
        .with_for_update(read=True, key_share=True)
    ).first()
