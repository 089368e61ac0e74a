"""Export a session with its messages (JSON or Markdown), and import a JSON export as a new session.

A round trip keeps the name, the metadata, every message's role, content, status and time, their
order, and the session's timestamps; only the ids are new.
"""

from typing import Any

from sqlalchemy import Connection, insert, select

from chatstore.core.db import Database
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import new_id, new_message_row, new_session_row, utc_now
from chatstore.schemas import ExportedMessage, ExportedSession, MessageRead, SessionExport, SessionRead
from chatstore.services.errors import SessionNotFound
from chatstore.services.replies.turns import assign_seqs
from chatstore.services.rows import MESSAGE_COLUMNS, SESSION_COLUMNS, to_messages, to_session

__all__ = ["export_session", "import_session", "to_markdown"]


async def export_session(db: Database, session_id: str) -> SessionExport:
    """The session and every message of it, of every branch, in seq order."""

    def select_session_and_messages(connection: Connection) -> tuple[SessionRead, list[MessageRead]]:
        row = connection.execute(select(*SESSION_COLUMNS).where(sessions_table.c.id == session_id)).first()
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
            name=session.name, meta=session.meta, created_at=session.created_at, updated_at=session.updated_at
        ),
        messages=[
            ExportedMessage(
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


async def import_session(db: Database, export: SessionExport) -> SessionRead:
    """Recreate the exported session, with new ids; a reply exported mid-stream comes in ``incomplete``."""
    session_id = new_id()
    last = export.messages[-1].created_at if export.messages else None
    # Each message follows the one before it: the export is one branch, which the session shows.
    message_ids = [new_id() for _ in export.messages]

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
                    current_message_id=message_ids[-1] if message_ids else None,
                )
            )
        )
        if last is not None:
            last_seq, _ = assign_seqs(connection, session_id, len(export.messages), last)
            first_seq = last_seq - len(export.messages) + 1
            connection.execute(
                insert(messages_table),
                [
                    new_message_row(
                        id=message_ids[index],
                        session_id=session_id,
                        parent_id=message_ids[index - 1] if index else None,
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


def _final_state(message: ExportedMessage) -> dict[str, Any]:
    """A reply exported while it streamed comes in as stopped with its process: nobody streams it here."""
    if message.status == "in_progress":
        return {"status": "incomplete", "finish_reason": "server_stopped", "error": None}
    return {"status": message.status, "finish_reason": message.finish_reason, "error": message.error}


def to_markdown(export: SessionExport) -> str:
    """A readable transcript: the name as a title, then each message under its role and time."""
    title = export.session.name or "Untitled session"
    lines = [f"# {title}", "", f"Exported {export.exported_at.isoformat()}", ""]
    for message in export.messages:
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
