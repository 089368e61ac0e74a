"""Providers for what handlers need, all made in the lifespan and kept on ``app.state``."""

from litestar.datastructures import State

from chatstore.core.db import Database
from chatstore.core.settings import Settings
from chatstore.services.replies import Replies

__all__ = ["provide_db", "provide_replies", "provide_settings"]


def provide_db(state: State) -> Database:
    return state.db  # type: ignore[no-any-return]


def provide_settings(state: State) -> Settings:
    return state.settings  # type: ignore[no-any-return]


def provide_replies(state: State) -> Replies:
    return state.replies  # type: ignore[no-any-return]
