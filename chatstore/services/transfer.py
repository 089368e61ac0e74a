"""Export a session with its messages (JSON or Markdown), and import a JSON export as a new session.

A round trip keeps the name, the metadata, the tree (each message's parent, the current message),
every message's role, content, status and time, their order, and the session's timestamps; only
the ids are new. A fork copies one branch into a new session the same way.
"""

from typing import Any

from msgspec import UNSET, UnsetType
from sqlalchemy import Connection, insert, select

from chatstore.core.db import Database
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import new_id, new_message_row, new_session_row, utc_now
from chatstore.schemas import ExportedMessage, ExportedSession, MessageRead, SessionExport, SessionRead
from chatstore.services.branches import NOT_A_MESSAGE, branch_messages, is_message_of_session
from chatstore.services.errors import InvalidInput, SessionNotFound
from chatstore.services.owners import OwnerScope
from chatstore.services.replies.turns import assign_seqs
from chatstore.services.rows import MESSAGE_COLUMNS, SESSION_COLUMNS, to_messages, to_session

__all__ = ["export_session", "exported_tree", "fork_session", "import_session", "to_markdown"]


async def export_session(db: Database, session_id: str, *, scope: OwnerScope) -> SessionExport:
    """The session and every message of it, of every branch, in seq order."""

    def select_session_and_messages(connection: Connection) -> tuple[SessionRead, list[MessageRead]]:
        row = connection.execute(select(*SESSION_COLUMNS).where(scope.session(session_id))).first()
        if row is None:
            raise SessionNotFound(session_id)
        rows = connection.execute(
            select(*MESSAGE_COLUMNS)
            .where(messages_table.c.session_id == session_id)
            .order_by(messages_table.c.seq)
        ).all()
        return to_session(row), to_messages(rows)

    session, messages = await db.read(select_session_and_messages)
    return SessionExport(
        exported_at=utc_now(),
        session=ExportedSession(
            name=session.name,
            meta=session.meta,
            created_at=session.created_at,
            updated_at=session.updated_at,
            current_message_id=session.current_message_id,
        ),
        messages=[
            ExportedMessage(
                id=m.id,
                parent_id=m.parent_id,
                role=m.role,
                content=m.content,
                status=m.status,
                created_at=m.created_at,
                finish_reason=m.finish_reason,
                error=m.error,
            )
            for m in messages
        ],
    )


async def import_session(db: Database, export: SessionExport, *, scope: OwnerScope) -> SessionRead:
    """Recreate the exported session, with new ids, owned by the scope's owner (an export names no
    owner); a reply exported mid-stream comes in ``incomplete``."""
    session_id = new_id()
    last = export.messages[-1].created_at if export.messages else None
    parents, current = exported_tree(export)
    message_ids = [new_id() for _ in export.messages]
    depths: list[int] = []
    for parent in parents:  # a parent comes before its children
        depths.append(0 if parent is None else depths[parent] + 1)

    def insert_all(connection: Connection) -> SessionRead:
        connection.execute(
            insert(sessions_table).values(
                new_session_row(
                    id=session_id,
                    name=export.session.name,
                    meta=export.session.meta,
                    created_at=export.session.created_at,
                    updated_at=export.session.updated_at,
                    activity_at=export.session.created_at,
                    current_message_id=None if current is None else message_ids[current],
                    owner=scope.owner,
                )
            )
        )
        if last is not None:
            last_seq = assign_seqs(connection, session_id, len(export.messages), last).last
            first_seq = last_seq - len(export.messages) + 1
            connection.execute(
                insert(messages_table),
                [
                    new_message_row(
                        id=message_ids[index],
                        session_id=session_id,
                        parent_id=None if parents[index] is None else message_ids[parents[index]],
                        depth=depths[index],
                        seq=first_seq + index,
                        role=message.role,
                        content=message.content,
                        created_at=message.created_at,
                        **_final_state(message),
                    )
                    for index, message in enumerate(export.messages)
                ],
            )
        row = connection.execute(select(*SESSION_COLUMNS).where(sessions_table.c.id == session_id)).one()
        return to_session(row)

    return await db.write(insert_all)


async def fork_session(
    db: Database, session_id: str, message_id: str, name: str | UnsetType | None, *, scope: OwnerScope
) -> SessionRead:
    """A new session holding a copy of the branch ending at ``message_id``: new ids, the same roles,
    contents, statuses and times, parents remapped, seqs from 1; the metadata copied, and the name
    unless one is given; owned by the scope's owner. A reply still streaming there is copied as
    stopped: nobody streams the copy."""
    fork_id = new_id()

    def copy_branch(connection: Connection) -> SessionRead:
        source = connection.execute(
            select(sessions_table.c.name, sessions_table.c.metadata).where(scope.session(session_id))
        ).first()
        if source is None:
            raise SessionNotFound(session_id)
        if not is_message_of_session(connection, session_id, message_id):
            raise InvalidInput("message_id", NOT_A_MESSAGE)
        branch = branch_messages(connection, message_id)
        now = utc_now()
        copies = [new_id() for _ in branch]
        connection.execute(
            insert(sessions_table).values(
                new_session_row(
                    id=fork_id,
                    name=source.name if name is UNSET else name,
                    meta=source.metadata,
                    created_at=now,
                    updated_at=now,
                    activity_at=now,
                    current_message_id=copies[-1],
                    forked_from_session_id=session_id,
                    forked_from_message_id=message_id,
                    owner=scope.owner,
                )
            )
        )
        last_seq = assign_seqs(connection, fork_id, len(branch), branch[-1].created_at).last
        first_seq = last_seq - len(branch) + 1
        connection.execute(
            insert(messages_table),
            [
                new_message_row(
                    id=copies[index],
                    session_id=fork_id,
                    parent_id=copies[index - 1] if index else None,
                    depth=index,
                    seq=first_seq + index,
                    role=row.role,
                    content=row.content,
                    created_at=row.created_at,
                    **_copied_state(row.status, row.finish_reason, row.error),
                )
                for index, row in enumerate(branch)
            ],
        )
        return to_session(
            connection.execute(select(*SESSION_COLUMNS).where(sessions_table.c.id == fork_id)).one()
        )

    return await db.write(copy_branch)


def _copied_state(status: str, finish_reason: str | None, error: str | None) -> dict[str, Any]:
    """A reply copied while it streamed is stored as stopped with its process: nobody streams the copy."""
    if status == "in_progress":
        return {"status": "incomplete", "finish_reason": "server_stopped", "error": None}
    return {"status": status, "finish_reason": finish_reason, "error": error}


def _final_state(message: ExportedMessage) -> dict[str, Any]:
    """A reply exported while it streamed comes in as stopped with its process: nobody streams it here."""
    return _copied_state(message.status, message.finish_reason, message.error)


def exported_tree(export: SessionExport) -> tuple[list[int | None], int | None]:
    """Each exported message's parent and the current message, as indexes into ``export.messages``.
    Raises ``InvalidInput`` for an ``id`` given twice or a ``parent_id`` or ``current_message_id``
    that names no earlier message of the export."""
    index_of: dict[str, int] = {}
    parents: list[int | None] = []
    for index, message in enumerate(export.messages):
        if message.parent_id is UNSET:
            parents.append(index - 1 if index else None)
        elif message.parent_id is None:
            parents.append(None)
        elif message.parent_id in index_of:
            parents.append(index_of[message.parent_id])
        else:
            raise InvalidInput(f"messages[{index}].parent_id", "names no earlier message of the export")
        if message.id is not None:
            if message.id in index_of:
                raise InvalidInput(f"messages[{index}].id", "is given to two messages")
            index_of[message.id] = index
    current = export.session.current_message_id
    if current is None:
        return parents, len(parents) - 1 if parents else None
    if current not in index_of:
        raise InvalidInput("session.current_message_id", "names no message of the export")
    return parents, index_of[current]


def to_markdown(export: SessionExport) -> str:
    """A readable transcript of the current branch: the name as a title, then each message under
    its role and time."""
    title = export.session.name or "Untitled session"
    lines = [f"# {title}", "", f"Exported {export.exported_at.isoformat()}", ""]
    parents, current = exported_tree(export)
    branch: list[int] = []
    while current is not None:
        branch.append(current)
        current = parents[current]
    for message in [export.messages[index] for index in reversed(branch)]:
        note = "" if message.status == "complete" else f" ({message.status})"
        lines += [
            "---",
            "",
            f"**{message.role}**{note} · {message.created_at.isoformat()}",
            "",
            message.content,
            "",
        ]
    return "\n".join(lines)
