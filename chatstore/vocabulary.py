"""The words a message's columns may hold, defined once: the wire shapes (``chatstore.schemas``) take
the ``Literal`` types, the tables (``chatstore.models``) the tuples for their CHECK constraints.

A new word needs a migration too: the constraints of a database made before it do not allow it.
"""

from typing import Literal, get_args

__all__ = ["FINISH_REASONS", "ROLES", "STATUSES", "FinishReason", "Role", "Status"]

Role = Literal["system", "user", "assistant"]
# A reply is ``in_progress`` while it is generated; every other message is ``complete``.
Status = Literal["in_progress", "complete", "incomplete", "error"]
# Why a reply ended: see the README's "Replies that survive the network".
FinishReason = Literal["completed", "stopped", "client_disconnected", "server_stopped", "error"]

ROLES: tuple[str, ...] = get_args(Role)
STATUSES: tuple[str, ...] = get_args(Status)
FINISH_REASONS: tuple[str, ...] = get_args(FinishReason)
