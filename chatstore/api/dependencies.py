"""Providers for what handlers need, all made in the lifespan and kept on ``app.state``."""

from litestar.datastructures import State

from chatstore.core.db import Database
from chatstore.core.settings import Settings
from chatstore.services.responders import Responder

__all__ = ["provide_db", "provide_responder", "provide_settings", "provide_worker_id"]


def provide_db(state: State) -> Database:
    return state.db  # type: ignore[no-any-return]


def provide_settings(state: State) -> Settings:
    return state.settings  # type: ignore[no-any-return]


def provide_responder(state: State) -> Responder:
    return state.responder  # type: ignore[no-any-return]


def provide_worker_id(state: State) -> str:
    return state.lease.id  # type: ignore[no-any-return]
