"""HTTP layer: Litestar controllers, input limits and the translation of errors."""

from chatstore.api.chat import ChatController
from chatstore.api.messages import MessageController
from chatstore.api.sessions import SessionController

__all__ = ["ChatController", "MessageController", "SessionController"]
