"""Settings: one frozen object, read from ``CHATSTORE_*`` environment variables."""

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

__all__ = ["Settings", "SettingsError"]

DEFAULT_DATABASE_URL = "sqlite:///data/app.db"
MIN_API_KEY_LENGTH = 16
MIN_JWT_SECRET_BYTES = 32
PUBLIC_KEY_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)
MIGRATE_MODES = ("auto", "off")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's
_KIND_NAMES = {int: "a whole number", float: "a number"}
# The characters of an RFC 6750 bearer token.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class SettingsError(ValueError):
    """An environment variable holds a value chatstore cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything that can be configured, with the defaults documented in the README.

    Each field ``x`` is read from the environment variable ``CHATSTORE_X``.
    """

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    mock_delay_ms: int = 10
    # How often the text of streaming replies is written to their rows (live progress), and how
    # often a client following a reply that another process generates looks for more.
    progress_interval_ms: int = 250

    # Where replies come from: the built-in ``mock``, or ``openai``: a model server speaking
    # OpenAI's streaming chat-completions API (llama.cpp, Ollama, vLLM, OpenAI itself).
    responder: str = "mock"
    llm_base_url: str = ""
    llm_api_key: str = dataclasses.field(default="", repr=False)  # a secret: never printed
    llm_model: str = ""
    llm_connect_timeout_s: float = 10.0
    llm_first_byte_timeout_s: float = 120.0
    llm_read_timeout_s: float = 60.0
    # The history sent with each turn, newest first, until either budget is spent (0: no limit).
    llm_history_max_messages: int = 100
    llm_history_max_chars: int = 32_000

    # Input limits: past them a request gets 400 (or 413 for the whole body).
    max_request_body_bytes: int = 1_048_576
    max_name_length: int = 200
    max_metadata_bytes: int = 16_384
    max_metadata_depth: int = 16
    max_content_length: int = 100_000
    max_messages_per_request: int = 50
    default_page_size: int = 100
    max_page_size: int = 1000

    # Database connections (the SQLite reader pool, or the PostgreSQL pool).
    db_pool_size: int = 8
    db_pool_timeout_s: float = 10.0
    db_busy_timeout_ms: int = 10_000
    # ``auto``: start-up upgrades the schema to the newest revision; ``off``: it only checks that the
    # schema is there, for operators who run ``python -m chatstore db upgrade`` themselves.
    migrate: str = "auto"

    # A process that has not renewed its lease for this long is considered dead,
    # and the replies it was streaming are marked ``incomplete``.
    worker_lease_s: float = 15.0

    # Access control: one key, or several separated by commas (to rotate keys without downtime).
    # Empty: the API is open. A secret: never printed.
    api_key: str = dataclasses.field(default="", repr=False)
    # User tokens (JWT), verified with one key source: a JWKS URL (keys fetched and cached), a PEM
    # public key, or an HMAC secret (a secret: never printed). Issuer and audience, when set, must match.
    jwt_jwks_url: str = ""
    jwt_public_key: str = dataclasses.field(default="", repr=False)
    jwt_secret: str = dataclasses.field(default="", repr=False)
    jwt_issuer: str = ""
    jwt_audience: str = ""
    # The claim that holds the user id.
    jwt_user_claim: str = "sub"
    # The least time between two fetches of the JWKS for a token whose key is not cached, so that
    # tokens naming made-up keys cannot make chatstore hammer the identity provider.
    jwt_jwks_refresh_s: float = 10.0
    # Origins whose pages may call the API from a browser, separated by commas ("*": any); empty: none.
    cors_origins: str = ""
    # How long an idle keep-alive connection is kept open, in seconds.
    keep_alive_s: int = 5
    # Requests in progress a process takes before it answers 503 (a chat stream counts until it ends).
    max_connections: int = 1000
    # How long a client of ``python -m chatstore`` may take to send a request's headers, to send its
    # body, or to take in a piece of what it is sent, before its connection is closed.
    client_timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Build settings from ``CHATSTORE_*`` variables; ``overrides`` win over the environment."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            variable = f"CHATSTORE_{field.name.upper()}"
            if variable in environ:
                values[field.name] = _parse(variable, environ[variable], type(field.default))
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Reject values that would make the service misbehave rather than fail loudly."""
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int | float) and field.name != "port" and value < 0:
                raise SettingsError(f"CHATSTORE_{field.name.upper()} must not be negative, got {value}")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"CHATSTORE_PORT must be between 0 and 65535, got {self.port}")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise SettingsError("CHATSTORE_DEFAULT_PAGE_SIZE must be between 1 and CHATSTORE_MAX_PAGE_SIZE")
        if self.progress_interval_ms < 10:
            raise SettingsError("CHATSTORE_PROGRESS_INTERVAL_MS must be at least 10")
        if self.db_pool_size < 1:
            raise SettingsError("CHATSTORE_DB_POOL_SIZE must be at least 1")
        if self.log_level.lower() not in LOG_LEVELS:
            raise SettingsError(
                f"CHATSTORE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.migrate not in MIGRATE_MODES:
            raise SettingsError(f"CHATSTORE_MIGRATE must be auto or off, got {self.migrate!r}")
        if self.worker_lease_s <= 0:
            raise SettingsError("CHATSTORE_WORKER_LEASE_S must be positive")
        self._check_responder()
        self._check_access()

    def _check_access(self) -> None:
        # The message never quotes a key: start-up errors end up in logs.
        for key in self.api_keys:
            if len(key) < MIN_API_KEY_LENGTH or not _TOKEN68.fullmatch(key):
                raise SettingsError(
                    f"CHATSTORE_API_KEY: each key must be at least {MIN_API_KEY_LENGTH} characters of "
                    "letters, digits and - . _ ~ + / ="
                )
        for origin in self.cors_origin_list:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise SettingsError(f"CHATSTORE_CORS_ORIGINS: {origin!r} is not an http(s):// origin")
        if self.keep_alive_s < 1:
            raise SettingsError("CHATSTORE_KEEP_ALIVE_S must be at least 1")
        if self.max_connections < 1:
            raise SettingsError("CHATSTORE_MAX_CONNECTIONS must be at least 1")
        if self.client_timeout_s <= 0:
            raise SettingsError("CHATSTORE_CLIENT_TIMEOUT_S must be positive")
        self._check_tokens()

    def _check_tokens(self) -> None:
        sources = [
            name
            for name, value in (
                ("CHATSTORE_JWT_JWKS_URL", self.jwt_jwks_url),
                ("CHATSTORE_JWT_PUBLIC_KEY", self.jwt_public_key),
                ("CHATSTORE_JWT_SECRET", self.jwt_secret),
            )
            if value
        ]
        if len(sources) > 1:
            raise SettingsError(f"set only one of {' and '.join(sources)}: tokens are verified with one key")
        if not sources:
            for name in ("jwt_issuer", "jwt_audience"):
                if getattr(self, name):
                    raise SettingsError(
                        f"CHATSTORE_{name.upper()} needs a key to check tokens with: CHATSTORE_JWT_JWKS_URL, "
                        "CHATSTORE_JWT_PUBLIC_KEY or CHATSTORE_JWT_SECRET"
                    )
            return
        if not self.jwt_user_claim.strip():
            raise SettingsError("CHATSTORE_JWT_USER_CLAIM must name a claim (sub by default)")
        if self.jwt_jwks_url and not self.jwt_jwks_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"CHATSTORE_JWT_JWKS_URL must be an http(s):// URL, got {self.jwt_jwks_url!r}"
            )
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            # RFC 7518 3.2: an HMAC key as long as the hash at least.
            raise SettingsError(f"CHATSTORE_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")
        if self.jwt_public_key:
            try:
                key = serialization.load_pem_public_key(self.jwt_public_key.encode())
            except ValueError:
                raise SettingsError(
                    "CHATSTORE_JWT_PUBLIC_KEY is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
                ) from None
            if not isinstance(key, PUBLIC_KEY_TYPES):
                raise SettingsError(
                    "CHATSTORE_JWT_PUBLIC_KEY must be an RSA, EC, Ed25519 or Ed448 public key"
                )

    @property
    def tokens_enabled(self) -> bool:
        """Whether bearer JWTs are accepted."""
        return bool(self.jwt_jwks_url or self.jwt_public_key or self.jwt_secret)

    @property
    def api_keys(self) -> tuple[str, ...]:
        return _split_list(self.api_key)

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(origin.rstrip("/") for origin in _split_list(self.cors_origins))

    def _check_responder(self) -> None:
        if self.responder not in ("mock", "openai"):
            raise SettingsError(f"CHATSTORE_RESPONDER must be mock or openai, got {self.responder!r}")
        for name in ("llm_connect_timeout_s", "llm_first_byte_timeout_s", "llm_read_timeout_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"CHATSTORE_{name.upper()} must be positive")
        if self.responder != "openai":
            return
        if not self.llm_base_url:
            raise SettingsError("CHATSTORE_LLM_BASE_URL is required when CHATSTORE_RESPONDER=openai")
        if not self.llm_base_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"CHATSTORE_LLM_BASE_URL must be an http:// or https:// URL, got {self.llm_base_url!r}"
            )
        if not self.llm_model:
            raise SettingsError("CHATSTORE_LLM_MODEL is required when CHATSTORE_RESPONDER=openai")

    @property
    def heartbeat_interval_s(self) -> float:
        """How often a process renews its lease: three chances before it expires."""
        return self.worker_lease_s / 3


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse(variable: str, raw: str, kind: type) -> object:
    if kind is str:
        return raw
    try:
        return kind(raw)
    except ValueError:
        kind_name = _KIND_NAMES.get(kind, kind.__name__)
        raise SettingsError(f"{variable} must be {kind_name}, got {raw!r}") from None
