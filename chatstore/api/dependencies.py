"""What a handler works with, as one dependency per request.

Litestar resolves a handler's dependencies with one task each whenever it has more than one, on
every request. The database, settings and replies are made once, in the lifespan; only the caller
changes per request. So an ``/api`` handler takes a single ``ctx: NamedDependency[RequestContext]``
and ``/healthz`` the database alone.
"""

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import State

from chatstore.api.callers import Caller
from chatstore.core.db import Database
from chatstore.core.settings import Settings
from chatstore.services.owners import OwnerScope
from chatstore.services.replies import Replies

__all__ = ["RequestContext", "provide_context", "provide_db"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One API request's caller, with the app's database, settings and replies."""

    db: Database
    settings: Settings
    replies: Replies
    caller: Caller

    @property
    def scope(self) -> OwnerScope:
        """The sessions this request may touch (``caller.scope``)."""
        return self.caller.scope


def provide_context(request: Request[Any, Any, Any]) -> RequestContext:
    """The request's context: the caller the ``/api`` router's guard resolved, and what the
    lifespan made."""
    state = request.app.state
    return RequestContext(state.db, state.settings, state.replies, request.state.caller)


def provide_db(state: State) -> Database:
    return state.db  # type: ignore[no-any-return]
