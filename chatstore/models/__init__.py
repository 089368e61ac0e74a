"""SQLModel tables: the storage schema, and nothing else."""

from chatstore.models.tables import (
    ChatSession,
    Message,
    ReplyChunk,
    Worker,
    messages_table,
    reply_chunks_table,
    sessions_table,
    workers_table,
)

__all__ = [
    "ChatSession",
    "Message",
    "ReplyChunk",
    "Worker",
    "messages_table",
    "reply_chunks_table",
    "sessions_table",
    "workers_table",
]
