"""SQLModel tables: the storage schema, and nothing else."""

from chatstore.models.tables import (
    ChatSession,
    Message,
    Worker,
    messages_table,
    sessions_table,
    workers_table,
)

__all__ = ["ChatSession", "Message", "Worker", "messages_table", "sessions_table", "workers_table"]
