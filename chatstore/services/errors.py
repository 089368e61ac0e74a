"""Domain errors, translated to HTTP in one place (``chatstore.api.errors``)."""

__all__ = [
    "InvalidInput",
    "InvalidToken",
    "KeysUnavailable",
    "MessageNotFound",
    "NothingToRegenerate",
    "ReplyNotFound",
    "ResponderError",
    "SessionNotFound",
]


class SessionNotFound(LookupError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} not found")
        self.session_id = session_id


class MessageNotFound(LookupError):
    def __init__(self, message_id: str) -> None:
        super().__init__(f"message {message_id!r} not found")
        self.message_id = message_id


class ReplyNotFound(LookupError):
    def __init__(self, reply_id: str) -> None:
        super().__init__(f"reply {reply_id!r} not found")
        self.reply_id = reply_id


class NothingToRegenerate(ValueError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} has no user message to reply to")
        self.session_id = session_id


class InvalidInput(ValueError):
    """A request value that decodes but breaks a rule or a limit; ``field`` is its path in the body."""

    def __init__(self, field: str, message: str, *, source: str = "body") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.source = source


class ResponderError(RuntimeError):
    """A reply failed in a way worth telling the client; ``detail`` goes into the ``error`` event."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidToken(ValueError):
    """A bearer token that is not a valid user token; ``reason`` says why (expired, wrong audience,
    bad signature…), never which part of a key was wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(RuntimeError):
    """The JWKS endpoint cannot be reached and the token's key is not cached."""
