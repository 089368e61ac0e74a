"""Who is calling: one ``Caller``, resolved once per request by the ``/api`` router's guard.

- **Open mode** (no service key, no token key configured): one user and no owners; every session.
- **Service key** (``Authorization: Bearer <CHATSTORE_API_KEY>``): with ``X-Chatstore-User: <id>``
  the request acts as that user, exactly as that user's own token would; without it the key is an
  operator, who sees every session and may narrow lists and search with ``?owner=``.
- **User token** (``Authorization: Bearer <JWT>``): the user its claim names. A bearer that is a
  service key is a key; anything else is tried as a token, when tokens are configured.

Handlers get it in their ``RequestContext`` (``chatstore.api.dependencies``) and hand its ``scope`` to
the services.
"""

import hmac
from dataclasses import dataclass
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import HeaderParameter, ParameterKwarg
from litestar.types import Guard

from chatstore.core.settings import Settings
from chatstore.services.errors import InvalidInput
from chatstore.services.owners import (
    EVERY_SESSION,
    MAX_USER_ID_LENGTH,
    USER_ID_PATTERN,
    OwnerScope,
    user_id_problem,
)
from chatstore.services.tokens import TokenVerifier

__all__ = ["USER_HEADER", "USER_PARAMETER", "Caller", "caller_guard"]

USER_HEADER = "X-Chatstore-User"
MISSING_KEY = "this API needs a key: send the header `Authorization: Bearer <key>`"
MISSING_CREDENTIALS = (
    "this API needs a key or a token: send the header `Authorization: Bearer <key or token>`"
)
WRONG_KEY = "the API key is not valid"
REALM = 'Bearer realm="chatstore"'
# Declared on the /api router, so that every operation documents it; the guard reads and checks it.
USER_PARAMETER: ParameterKwarg = HeaderParameter(
    name=USER_HEADER,
    annotation=str,
    required=False,
    description="With a service key: act as this user, exactly as the user's own token would (the "
    "caller's sessions are that user's; new ones are theirs). Without it a service key is an "
    "operator's, who sees every session. Refused (400) in open mode and with a user token.",
    min_length=1,
    max_length=MAX_USER_ID_LENGTH,
    pattern=USER_ID_PATTERN,
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller of one request: ``user`` is whose sessions it reaches (None: every session's, in
    open mode and for an operator); ``via`` is how it proved that."""

    user: str | None
    via: Literal["open", "key", "token"]

    @property
    def scope(self) -> OwnerScope:
        return EVERY_SESSION if self.user is None else OwnerScope(self.user)

    def scope_for_listing(self, owner: str | None) -> OwnerScope:
        """The scope of a list or a search narrowed to ``owner``'s sessions among those the caller
        may see: for an operator that owner's; for a user their own if it is them, else none."""
        if owner is None:
            return self.scope
        owner = _checked_user_id(owner, "owner", "query")
        if self.user is None:
            return OwnerScope(owner)
        return OwnerScope(self.user, empty=owner != self.user)


def caller_guard(settings: Settings, verifier: TokenVerifier | None) -> Guard:
    """The ``/api`` router's guard: it resolves the request's ``Caller`` (or refuses the request with
    401) and keeps it for ``provide_context``."""
    keys = [key.encode() for key in settings.api_keys]
    open_mode = not keys and verifier is None

    async def resolve_caller(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        named_user = connection.headers.get(USER_HEADER.lower())
        if open_mode:
            if named_user is not None:
                raise InvalidInput(USER_HEADER, "takes effect only with a service key", source="header")
            connection.state.caller = Caller(None, "open")
            return
        scheme, _separator, token = connection.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            detail = MISSING_KEY if verifier is None else MISSING_CREDENTIALS
            raise NotAuthorizedException(detail, headers={"WWW-Authenticate": REALM})
        if _is_a_key(token.encode(), keys):
            user = None if named_user is None else _checked_user_id(named_user, USER_HEADER, "header")
            connection.state.caller = Caller(user, "key")
            return
        if verifier is None:
            raise NotAuthorizedException(
                WRONG_KEY, headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'}
            )
        user = await verifier.user_of(token)
        if named_user is not None:
            # A token names its user itself; the header is for a backend holding a service key.
            raise InvalidInput(USER_HEADER, "takes effect only with a service key", source="header")
        connection.state.caller = Caller(user, "token")

    return resolve_caller


def _is_a_key(presented: bytes, keys: list[bytes]) -> bool:
    # Compare with every key, without stopping at a match: the time taken says nothing about which
    # key, or how much of one, was right.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched


def _checked_user_id(value: str, field: str, source: str) -> str:
    problem = user_id_problem(value)
    if problem is not None:
        raise InvalidInput(field, problem, source=source)
    return value
