"""A reply's stream events, and the positions that let a client re-attach where it left off.

Event ids are positions: a ``delta``'s id is the reply's length in characters once that delta is
added (``start`` is 0; ``done`` and ``error`` are one past the final length). A client that lost its
connection re-attaches with the last id it saw and receives exactly what follows it; one that has
the final event already is told there is nothing more, so that it stops.
"""

from dataclasses import dataclass

import msgspec

from chatstore.schemas import ErrorEvent, MessageRead

__all__ = [
    "MESSAGE_DELETED",
    "REPLY_KEPT",
    "SESSION_DELETED",
    "UNEXPECTED_FAILURE",
    "StreamEvent",
    "ends_after",
    "final_event",
]

UNEXPECTED_FAILURE = "the reply failed because of an internal error"
SESSION_DELETED = "the session was deleted while the reply was streaming"
MESSAGE_DELETED = "the reply was deleted while it was streaming, with a message it follows"
REPLY_KEPT = (
    "the reply could not be stored yet because the database failed; "
    "it is kept and will be stored when the database is back"
)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event: str
    id: int
    data: msgspec.Struct


def ends_after(position: int, length: int) -> bool:
    """Whether a client at ``position`` still needs the final event of a reply ``length`` long.

    Its id is ``length + 1``. A client past that saw more than was stored: the process generating
    the reply died before its last progress write. It gets the end too, with that same id, the end
    of the reply as stored: a client that reconnects with it (as EventSource does) is then told
    there is nothing more, instead of getting the end again and again.
    """
    return position != length + 1


def final_event(
    position: int, reply: MessageRead | None, *, kept: bool = False, session_gone: bool = True
) -> StreamEvent:
    """``done`` with the stored reply; ``error`` if it failed, it is gone (with its session, or
    with a message above it when not ``session_gone``), or (``kept``) it could not be stored yet:
    then ``reply`` is the reply as it will be stored."""
    if kept:
        assert reply is not None
        detail = REPLY_KEPT if reply.status != "error" else f"{reply.error}; {REPLY_KEPT}"
        return StreamEvent("error", position, ErrorEvent(detail=detail))
    if reply is None:
        return StreamEvent(
            "error", position, ErrorEvent(detail=SESSION_DELETED if session_gone else MESSAGE_DELETED)
        )
    if reply.status == "error":
        return StreamEvent("error", position, ErrorEvent(detail=reply.error or UNEXPECTED_FAILURE))
    return StreamEvent("done", position, reply)
