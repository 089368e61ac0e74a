"""User tokens: verifying a bearer JWT and reading the user id from it, with PyJWT.

One key source, as configured: a JWKS URL (the keys are fetched and kept; a token naming a key
not kept makes the set be fetched again, at most every ``CHATSTORE_JWT_JWKS_REFRESH_S``), a PEM
public key, or an HMAC secret. The algorithms a token may use follow from the key, never from the
token: RS*/PS* for an RSA key, the ES* of its curve for an EC key, EdDSA for an Ed25519/Ed448 key,
HS* for the secret. So ``alg: none`` never verifies, nor does an HMAC signature made with a
public key as its secret. ``exp`` is required; ``exp``, ``nbf`` and ``iat`` are checked with a
small leeway for clocks that drift.
"""

import time
from collections.abc import Sequence
from typing import Any

import anyio
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from chatstore.core.settings import Settings
from chatstore.services.errors import InvalidToken, KeysUnavailable
from chatstore.services.owners import user_id_problem

__all__ = ["LEEWAY_S", "TokenVerifier", "algorithms_for"]

LEEWAY_S = 30
# How long a fetched JWKS is trusted before it is fetched again (keys the provider removed stop
# working then); while the endpoint is down, the keys already fetched stay in use.
JWKS_MAX_AGE_S = 300.0
JWKS_TIMEOUT_S = 5.0

HMAC = ("HS256", "HS384", "HS512")
RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_BY_CURVE = {"secp256r1": ("ES256",), "secp384r1": ("ES384",), "secp521r1": ("ES512",)}

_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is for another audience"),
    (jwt.InvalidIssuerError, "the token is from another issuer"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not allowed"),
    (jwt.InvalidKeyError, "the token's algorithm is not allowed"),
    (jwt.InvalidIssuedAtError, "the token's iat claim is not a time"),
    (jwt.DecodeError, "the token is not a well-formed JWT"),
)


def algorithms_for(key: Any) -> tuple[str, ...]:
    """The algorithms a public key verifies; none for a key of any other kind."""
    if isinstance(key, rsa.RSAPublicKey):
        return RSA
    if isinstance(key, ec.EllipticCurvePublicKey):
        return EC_BY_CURVE.get(key.curve.name, ())
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    return ()


class TokenVerifier:
    """Verifies tokens against the configured key; ``user_of`` returns the user id a token names."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._audience = settings.jwt_audience or None
        self._issuer = settings.jwt_issuer or None
        self._fixed_key: tuple[Any, Sequence[str]] | None = None
        if settings.jwt_secret:
            self._fixed_key = (settings.jwt_secret.encode(), HMAC)
        elif settings.jwt_public_key:
            key = serialization.load_pem_public_key(settings.jwt_public_key.encode())
            self._fixed_key = (key, algorithms_for(key))
        self._jwks = (
            jwt.PyJWKClient(
                settings.jwt_jwks_url, cache_jwk_set=False, timeout=JWKS_TIMEOUT_S
            )  # fetches only
            if settings.jwt_jwks_url
            else None
        )
        self._keys: dict[str, tuple[Any, Sequence[str]]] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._fetching = anyio.Lock()

    async def user_of(self, token: str) -> str:
        """The user id in the token's user claim. Raises ``InvalidToken`` with the reason, or
        ``KeysUnavailable`` when the JWKS cannot be fetched and the token's key is not kept."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is not a well-formed JWT") from None
        if self._fixed_key is not None:
            key, algorithms = self._fixed_key
        else:
            key, algorithms = await self._key_named(header.get("kid"))
        claim = self._settings.jwt_user_claim
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.MissingRequiredClaimError as missing:
            raise InvalidToken(f"the token has no {missing.claim} claim") from None
        except jwt.PyJWTError as invalid:
            raise InvalidToken(_reason(invalid)) from None
        user = claims.get(claim)
        if isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        if not isinstance(user, str) or not user.strip():
            raise InvalidToken(f"the token has no {claim} claim naming a user")
        if user_id_problem(user) is not None:
            raise InvalidToken(f"the token's {claim} claim is not a user id chatstore takes")
        return user

    async def _key_named(self, kid: object) -> tuple[Any, Sequence[str]]:
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key (kid)")
        now = time.monotonic()
        fresh = self._fetched_at is not None and now - self._fetched_at < JWKS_MAX_AGE_S
        if kid in self._keys and fresh:
            return self._keys[kid]
        async with self._fetching:
            if kid not in self._keys or not fresh:
                await self._fetch_unless_recent(kid)
        if kid in self._keys:
            return self._keys[kid]
        raise InvalidToken("the token's key (kid) is not in the JWKS")

    async def _fetch_unless_recent(self, kid: str) -> None:
        assert self._jwks is not None
        now = time.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at >= JWKS_MAX_AGE_S
        recent = (
            self._last_attempt is not None and now - self._last_attempt < self._settings.jwt_jwks_refresh_s
        )
        if recent and not stale:
            return
        self._last_attempt = now
        try:
            # urllib blocks: in a worker thread, so that the event loop serves other requests.
            document = await anyio.to_thread.run_sync(self._jwks.fetch_data)
        except jwt.PyJWTError:
            if kid in self._keys:  # fetched before: keep using what was fetched
                return
            raise KeysUnavailable(
                "the identity provider's keys (CHATSTORE_JWT_JWKS_URL) cannot be fetched; try again later"
            ) from None
        keys: dict[str, tuple[Any, Sequence[str]]] = {}
        entries = document.get("keys") if isinstance(document, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                jwk = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key of a kind chatstore does not use; the others still count
            algorithms = algorithms_for(jwk.key)  # so an HMAC ("oct") key in a JWKS is never used
            declared = entry.get("alg")
            if declared is not None:
                algorithms = tuple(a for a in algorithms if a == declared)
            if jwk.key_id and algorithms:
                keys[jwk.key_id] = (jwk.key, algorithms)
        self._keys, self._fetched_at = keys, time.monotonic()


def _reason(error: Exception) -> str:
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "the token is not valid"
