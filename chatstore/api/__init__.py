"""HTTP layer: Litestar controllers, input limits and the translation of errors."""

from chatstore.api.chat import ChatController
from chatstore.api.messages import MessageController
from chatstore.api.sessions import SessionController
from chatstore.api.ui_chat import UIChatController

__all__ = ["ChatController", "MessageController", "SessionController", "UIChatController"]
