"""Access control: with ``CHATSTORE_API_KEY`` set, an ``/api`` request needs ``Authorization: Bearer <key>``.

The page at ``/``, its static files, ``/healthz`` and the schema under ``/schema`` stay open: they hold
no data, and a browser must load the page before it can ask for the key.
"""

import hmac
from collections.abc import Sequence
from typing import Any

from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import SecurityRequirement, SecurityScheme
from litestar.types import Guard

__all__ = ["BEARER_SCHEME", "api_key_guard", "api_security", "bearer_scheme", "cors_config"]

BEARER_SCHEME = "bearer"

MISSING_KEY = "this API needs a key: send the header `Authorization: Bearer <key>`"
WRONG_KEY = "the API key is not valid"


def api_key_guard(keys: Sequence[str]) -> Guard:
    """A guard that lets a request through only with one of ``keys`` as its bearer token; it is set
    on the ``/api`` router, so it runs for the API's handlers alone."""
    encoded_keys = [key.encode() for key in keys]

    def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        scheme, _separator, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException(
                MISSING_KEY, headers={"WWW-Authenticate": 'Bearer realm="chatstore"'}
            )
        presented = token.strip().encode()
        # Compare with every key, without stopping at a match: the time taken says nothing about
        # which key, or how much of one, was right.
        matched = False
        for key in encoded_keys:
            matched |= hmac.compare_digest(presented, key)
        if not matched:
            raise NotAuthorizedException(
                WRONG_KEY, headers={"WWW-Authenticate": 'Bearer realm="chatstore", error="invalid_token"'}
            )

    return require_api_key


def bearer_scheme() -> SecurityScheme:
    return SecurityScheme(
        type="http",
        scheme="bearer",
        description="One of the keys in `CHATSTORE_API_KEY`, when the service is configured with any.",
    )


def api_security(*, required: bool) -> list[SecurityRequirement]:
    """The ``/api`` operations' security: the key, or (an empty requirement) nothing when the
    service runs open without ``CHATSTORE_API_KEY``."""
    return [{BEARER_SCHEME: []}] if required else [{}, {BEARER_SCHEME: []}]


def cors_config(origins: Sequence[str]) -> CORSConfig | None:
    """Let pages on ``origins`` call the API, the chat stream included; ``None`` (no CORS) without any."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        expose_headers=["Location", "Link", "X-Next-Cursor", "Content-Disposition"],
        # The key travels in a header, never in a cookie: no credentials mode needed.
        allow_credentials=False,
        max_age=600,
    )
