"""chatstore: chat sessions and their messages, with replies streamed as Server-Sent Events."""

__version__ = "0.1.0"
