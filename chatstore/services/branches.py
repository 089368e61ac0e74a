"""Branches: the path from a first message down to a message, read by following ``parent_id`` up.

A message's parent is always stored before it, so a branch in ``seq`` order is root first. Both
engines walk it with ``WITH RECURSIVE``, one primary-key look-up per message of the branch: the
cost grows with the branch, not with the rest of the tree. A whole branch that holds most of its
session (known from its last message's ``depth``) is read with the session instead, in one index
range, and followed up in memory. Whole branches are long reads: they come from the driver's rows
(``driver_rows``), where SQLAlchemy's own rows would cost a fifth of the time.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CTE, ColumnElement, Connection, Row, literal, or_, select

from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import is_id
from chatstore.schemas import BranchMessage, MessageRead
from chatstore.services.rows import (
    MESSAGE_COLUMNS,
    driver_rows,
    driver_times,
    to_branch_messages,
    to_messages,
)

__all__ = [
    "NOT_A_MESSAGE",
    "ancestors",
    "branch_messages",
    "branch_with_siblings",
    "descendants",
    "is_message_of_session",
    "message_of_session",
    "newest_below",
    "siblings_of",
]

NOT_A_MESSAGE = "is not a message of this session"


def ancestors(leaf_id: str, *, session_id: str | None = None, max_distance: int | None = None) -> CTE:
    """``(id, parent_id, role, distance)`` of ``leaf_id`` (distance 0) and every message above it (up to
    ``max_distance``); nothing if ``leaf_id`` is not a message of ``session_id``, when given (a
    message's parent is always of its session)."""
    m = messages_table
    anchor = select(m.c.id, m.c.parent_id, m.c.role, literal(0).label("distance")).where(m.c.id == leaf_id)
    if session_id is not None:
        anchor = anchor.where(m.c.session_id == session_id)
    branch = anchor.cte("branch", recursive=True)
    parent = m.alias("parent")
    step = select(parent.c.id, parent.c.parent_id, parent.c.role, branch.c.distance + 1).join(
        branch, parent.c.id == branch.c.parent_id
    )
    if max_distance is not None:
        step = step.where(branch.c.distance < max_distance)
    return branch.union_all(step)


def branch_messages(connection: Connection, leaf_id: str | None) -> list[MessageRead]:
    """The messages of the branch ending at ``leaf_id``, root first."""
    if leaf_id is None:
        return []
    session_id = _session_mostly_on_branch(connection, leaf_id)
    if session_id is not None:
        rows = _branch_read_with_session(connection, session_id, leaf_id)[0]
    else:
        rows = _branch_read_upwards(connection, leaf_id)
    return to_messages(rows, driver_times(connection))


def branch_with_siblings(connection: Connection, session_id: str, leaf_id: str | None) -> list[BranchMessage]:
    """The branch ending at ``leaf_id``, root first, each message with its siblings: the ids of its
    parent's children in seq order (for a first message, the session's first messages)."""
    if leaf_id is None:
        return []
    if _session_mostly_on_branch(connection, leaf_id) is not None:
        rows, siblings = _branch_read_with_session(connection, session_id, leaf_id)
    else:
        rows = _branch_read_upwards(connection, leaf_id)
        siblings = siblings_of(connection, session_id, rows)
    return to_branch_messages(rows, siblings, driver_times(connection))


# A branch that holds at least this share of its session's messages is read with the whole session,
# in one range of the (session_id, seq) index, and followed up its parents in memory: cheaper than a
# primary-key look-up per message. A shorter branch is read up its parent_id chain.
WHOLE_SESSION_SHARE = 0.5
_ID, _PARENT_ID = (
    next(i for i, column in enumerate(MESSAGE_COLUMNS) if column is wanted)
    for wanted in (messages_table.c.id, messages_table.c.parent_id)
)
# Parents asked for in one statement: well under both engines' limits on bound parameters.
PARENTS_PER_QUERY = 500


def _session_mostly_on_branch(connection: Connection, leaf_id: str) -> str | None:
    """The session of ``leaf_id`` if the branch ending there holds most of its messages (the branch's
    length is the leaf's depth + 1), else None."""
    m, s = messages_table, sessions_table
    found = connection.execute(
        select(m.c.session_id, m.c.depth, s.c.message_count)
        .join(s, s.c.id == m.c.session_id)
        .where(m.c.id == leaf_id)
    ).first()
    if found is None or found.depth + 1 < WHOLE_SESSION_SHARE * found.message_count:
        return None  # (a leaf gone meanwhile has an empty branch, read upwards)
    return str(found.session_id)


def _branch_read_upwards(connection: Connection, leaf_id: str) -> list[Sequence[Any]]:
    branch = ancestors(leaf_id)
    return driver_rows(
        connection,
        select(*MESSAGE_COLUMNS)
        .join(branch, messages_table.c.id == branch.c.id)
        .order_by(messages_table.c.seq),
    )


def _branch_read_with_session(
    connection: Connection, session_id: str, leaf_id: str
) -> tuple[list[Sequence[Any]], dict[str | None, list[str]]]:
    """The branch ending at ``leaf_id``, root first, and every parent's children in the session."""
    session_rows = driver_rows(
        connection,
        select(*MESSAGE_COLUMNS)
        .where(messages_table.c.session_id == session_id)
        .order_by(messages_table.c.seq),
    )
    by_id: dict[str, Sequence[Any]] = {}
    children: dict[str | None, list[str]] = {}
    for row in session_rows:
        message_id, parent_id = row[_ID], row[_PARENT_ID]
        by_id[message_id] = row
        if parent_id in children:
            children[parent_id].append(message_id)
        else:
            children[parent_id] = [message_id]
    branch = []
    on_branch: str | None = leaf_id
    while on_branch is not None:
        row = by_id[on_branch]
        branch.append(row)
        on_branch = row[_PARENT_ID]
    branch.reverse()
    return branch, children


def siblings_of(
    connection: Connection, session_id: str, rows: Sequence[Sequence[Any]]
) -> dict[str | None, list[str]]:
    """For each parent of ``rows`` (of ``MESSAGE_COLUMNS``), its children's ids in seq order."""
    m = messages_table
    parents = list({row[_PARENT_ID] for row in rows if row[_PARENT_ID] is not None})
    which: list[ColumnElement[bool]] = [
        m.c.parent_id.in_(parents[i : i + PARENTS_PER_QUERY])
        for i in range(0, len(parents), PARENTS_PER_QUERY)
    ]
    if any(row[_PARENT_ID] is None for row in rows):  # first messages: asked for with the first batch
        which[:1] = [or_(*which[:1], m.c.parent_id.is_(None))]
    siblings: dict[str | None, list[str]] = {}
    for condition in which:
        children = connection.execute(
            select(m.c.id, m.c.parent_id).where(m.c.session_id == session_id, condition).order_by(m.c.seq)
        ).all()
        for child_id, parent_id in children:
            siblings.setdefault(parent_id, []).append(child_id)
    return siblings


def descendants(message_id: str) -> CTE:
    """``(id, seq, distance)`` of ``message_id`` (distance 0) and every message below it."""
    m = messages_table
    below = (
        select(m.c.id, m.c.seq, literal(0).label("distance"))
        .where(m.c.id == message_id)
        .cte("below", recursive=True)
    )
    child = m.alias("child")
    return below.union_all(
        select(child.c.id, child.c.seq, below.c.distance + 1).join(below, child.c.parent_id == below.c.id)
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
    """``(id, role, parent_id, depth)`` of a message if it is one of the session's, locked against a
    delete (PostgreSQL's ``FOR KEY SHARE``, as a new child's foreign key would), else None."""
    return connection.execute(
        select(messages_table.c.id, messages_table.c.role, messages_table.c.parent_id, messages_table.c.depth)
        .where(messages_table.c.id == message_id, messages_table.c.session_id == session_id)
        .with_for_update(read=True, key_share=True)
    ).first()
