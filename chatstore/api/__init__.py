"""HTTP layer: Litestar controllers, input limits and the translation of errors."""

from chatstore.api.chat import ChatController
from chatstore.api.sessions import SessionController

__all__ = ["ChatController", "SessionController"]
