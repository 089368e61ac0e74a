"""SQLModel tables: the storage schema, and nothing else."""

from chatstore.models.tables import ChatSession, Message, Worker

__all__ = ["ChatSession", "Message", "Worker"]
