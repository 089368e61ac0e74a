"""Access control as the schema and browsers see it: the two bearer schemes and CORS.

With ``CHATSTORE_API_KEY`` or a ``CHATSTORE_JWT_*`` key set, an ``/api`` request needs
``Authorization: Bearer <key or token>``; ``chatstore.api.callers`` resolves who is calling. The
page at ``/``, its static files, ``/healthz`` and the schema under ``/schema`` stay open: they hold
no data, and a browser must load the page before it can ask for a key or a token.
"""

from collections.abc import Sequence

from litestar.config.cors import CORSConfig
from litestar.openapi.spec import SecurityRequirement, SecurityScheme

from chatstore.api.callers import USER_HEADER

__all__ = ["BEARER_SCHEME", "JWT_SCHEME", "api_security", "cors_config", "security_schemes"]

BEARER_SCHEME = "bearer"
JWT_SCHEME = "bearerJWT"


def security_schemes() -> dict[str, SecurityScheme]:
    """Both schemes, whatever this instance has configured: the schema is the API's."""
    return {
        BEARER_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            description="One of the service keys in `CHATSTORE_API_KEY`. Without the "
            f"`{USER_HEADER}` header the key is an operator's and sees every session; with it, the "
            "request acts as that user.",
        ),
        JWT_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="A user's access token from the identity provider, verified with "
            "`CHATSTORE_JWT_JWKS_URL`, `CHATSTORE_JWT_PUBLIC_KEY` or `CHATSTORE_JWT_SECRET`; the "
            "request acts as the user its `CHATSTORE_JWT_USER_CLAIM` claim names.",
        ),
    }


def api_security(*, required: bool) -> list[SecurityRequirement]:
    """The ``/api`` operations' security: a key or a token, or also (an empty requirement) nothing
    when the service runs open."""
    schemes: list[SecurityRequirement] = [{BEARER_SCHEME: []}, {JWT_SCHEME: []}]
    return schemes if required else [{}, *schemes]


def cors_config(origins: Sequence[str]) -> CORSConfig | None:
    """Let pages on ``origins`` call the API, the chat stream included; ``None`` (no CORS) without any."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID", USER_HEADER],
        expose_headers=["Location", "Link", "X-Next-Cursor", "Content-Disposition"],
        # The key or token travels in a header, never in a cookie: no credentials mode needed.
        allow_credentials=False,
        max_age=600,
    )
