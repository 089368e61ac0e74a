"""User tokens: bearer JWTs verified against a JWKS served by a real local HTTP server, a PEM public
key or an HMAC secret, with keys generated here (RSA and EC); every way a token can be wrong gets
401 naming the reason, and a JWKS that cannot be fetched gets 503."""

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.__main__ import open_access_warning
from chatstore.core.settings import Settings, SettingsError
from tests.conftest import ClientFactory
from tests.helpers import DatabaseView

ISSUER = "https://id.example.test/"
AUDIENCE = "chatstore-api"
KEY = "tokens-service-key-0123456789"


class JwksServer:
    """A JWKS endpoint on a free local port, in a thread; ``keys`` is what it serves."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.fetches += 1
                body = json.dumps({"keys": served.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 600}
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def token(key: Any, kid: str | None = "k1", algorithm: str = "RS256", **changes: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def refused(response: Any, reason: str) -> None:
    """401, with the reason in the detail and in the challenge."""
    assert response.status_code == 401, response.text
    assert response.json() == {"status_code": 401, "detail": f"the token is not valid: {reason}"}
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="chatstore", error="invalid_token", error_description="{reason}"'
    )


@pytest.fixture
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa_key()


@pytest.fixture
def jwks_client(
    make_client: ClientFactory, jwks: JwksServer, rsa_private: rsa.RSAPrivateKey
) -> Iterator[TestClient[Litestar]]:
    jwks.keys = [public_jwk(rsa_private, "k1")]
    with make_client(
        api_key=KEY, jwt_jwks_url=jwks.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_jwks_refresh_s=0
    ) as client:
        yield client


def test_a_valid_token_acts_as_its_user(
    jwks_client: TestClient[Litestar], rsa_private: rsa.RSAPrivateKey, db: DatabaseView
) -> None:
    created = jwks_client.post("/api/sessions", json={"name": "mine"}, headers=bearer(token(rsa_private)))
    assert created.status_code == 201, created.text
    assert created.json()["owner"] == "alice"
    assert db.rows("SELECT owner FROM sessions") == [{"owner": "alice"}]
    # The same user through the service key sees it; another user does not.
    as_alice = {**bearer(KEY), "X-Chatstore-User": "alice"}
    assert [s["id"] for s in jwks_client.get("/api/sessions", headers=as_alice).json()] == [
        created.json()["id"]
    ]
    bob = bearer(token(rsa_private, sub="bob"))
    assert jwks_client.get("/api/sessions", headers=bob).json() == []
    assert jwks_client.get(f"/api/sessions/{created.json()['id']}", headers=bob).status_code == 404


def test_an_ec_key_in_the_jwks_verifies_es256(
    jwks_client: TestClient[Litestar], jwks: JwksServer, rsa_private: rsa.RSAPrivateKey
) -> None:
    ec_private = ec_key()
    jwks.keys = [public_jwk(rsa_private, "k1"), public_jwk(ec_private, "e1")]
    response = jwks_client.get("/api/sessions", headers=bearer(token(ec_private, "e1", "ES256", sub="eve")))
    assert response.status_code == 200, response.text
    # An EC key verifies its own curve's algorithm only.
    other_curve = jwt.encode(
        claims(), ec.generate_private_key(ec.SECP384R1()), "ES384", headers={"kid": "e1"}
    )
    refused(
        jwks_client.get("/api/sessions", headers=bearer(other_curve)), "the token's algorithm is not allowed"
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "the token has expired"),
        ({"nbf": int(time.time()) + 3600}, "the token is not valid yet"),
        ({"iat": int(time.time()) + 3600}, "the token is not valid yet"),
        ({"iss": "https://evil.example.test/"}, "the token is from another issuer"),
        ({"aud": "another-api"}, "the token is for another audience"),
        ({"exp": None}, "the token has no exp claim"),
        ({"sub": None}, "the token has no sub claim naming a user"),
        ({"sub": "   "}, "the token has no sub claim naming a user"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "issued-in-the-future",
        "wrong-issuer",
        "wrong-audience",
        "no-exp",
        "no-sub",
        "blank-sub",
    ],
)
def test_a_token_with_wrong_claims_gets_401_naming_the_reason(
    jwks_client: TestClient[Litestar],
    rsa_private: rsa.RSAPrivateKey,
    db: DatabaseView,
    changes: dict[str, Any],
    reason: str,
) -> None:
    refused(jwks_client.post("/api/sessions", headers=bearer(token(rsa_private, **changes))), reason)
    assert db.scalar("SELECT count(*) FROM sessions") == 0


def test_a_little_clock_drift_is_forgiven(
    jwks_client: TestClient[Litestar], rsa_private: rsa.RSAPrivateKey
) -> None:
    drifted = token(rsa_private, exp=int(time.time()) - 5, nbf=int(time.time()) + 5)
    assert jwks_client.get("/api/sessions", headers=bearer(drifted)).status_code == 200


def test_a_tampered_or_foreign_signature_gets_401(
    jwks_client: TestClient[Litestar], rsa_private: rsa.RSAPrivateKey
) -> None:
    header, _payload, signature = token(rsa_private).split(".")
    forged_payload = b64(json.dumps(claims(sub="admin")).encode())
    refused(
        jwks_client.get("/api/sessions", headers=bearer(f"{header}.{forged_payload}.{signature}")),
        "the token's signature does not verify",
    )
    # Signed by another key that claims the JWKS key's id.
    refused(
        jwks_client.get("/api/sessions", headers=bearer(token(rsa_key()))),
        "the token's signature does not verify",
    )
    refused(
        jwks_client.get("/api/sessions", headers=bearer("not.a.jwt")), "the token is not a well-formed JWT"
    )


def test_alg_none_is_never_accepted(jwks_client: TestClient[Litestar]) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    unsigned = f"{header}.{b64(json.dumps(claims()).encode())}."
    refused(
        jwks_client.get("/api/sessions", headers=bearer(unsigned)), "the token's algorithm is not allowed"
    )


def hs256_with_secret(secret: bytes, kid: str | None = None) -> str:
    """An HS256 token made by hand: PyJWT refuses to use a PEM key as an HMAC secret, as it should."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_hs256_signed_with_the_public_key_as_secret_is_refused(make_client: ClientFactory) -> None:
    private = rsa_key()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with make_client(jwt_public_key=pem.decode(), jwt_issuer=ISSUER, jwt_audience=AUDIENCE) as client:
        refused(
            client.get("/api/sessions", headers=bearer(hs256_with_secret(pem))),
            "the token's algorithm is not allowed",
        )
        assert client.get("/api/sessions", headers=bearer(token(private, kid=None))).status_code == 200
        assert (
            client.get(
                "/api/sessions", headers=bearer(token(private, kid=None, algorithm="PS256"))
            ).status_code
            == 200
        )


def test_hs256_with_the_jwks_public_key_as_secret_is_refused(
    jwks_client: TestClient[Litestar], jwks: JwksServer
) -> None:
    n = jwks.keys[0]["n"]
    refused(
        jwks_client.get("/api/sessions", headers=bearer(hs256_with_secret(n.encode(), "k1"))),
        "the token's algorithm is not allowed",
    )


def test_an_hmac_secret_verifies_hs256_only(make_client: ClientFactory) -> None:
    secret = "s" * 40
    with make_client(jwt_secret=secret) as client:
        good = jwt.encode(claims(sub="hal"), secret, algorithm="HS256")
        assert client.post("/api/sessions", headers=bearer(good)).json()["owner"] == "hal"
        refused(
            client.get("/api/sessions", headers=bearer(token(rsa_key(), kid=None))),
            "the token's algorithm is not allowed",
        )
        refused(
            client.get("/api/sessions", headers=bearer(jwt.encode(claims(), "t" * 40, algorithm="HS256"))),
            "the token's signature does not verify",
        )


def test_an_unknown_kid_makes_the_jwks_be_fetched_again(
    jwks_client: TestClient[Litestar], jwks: JwksServer, rsa_private: rsa.RSAPrivateKey
) -> None:
    assert jwks_client.get("/api/sessions", headers=bearer(token(rsa_private))).status_code == 200
    assert jwks.fetches == 1
    assert jwks_client.get("/api/sessions", headers=bearer(token(rsa_private))).status_code == 200
    assert jwks.fetches == 1  # kept

    # Key rotation: the provider publishes a new key and signs with it.
    rotated = rsa_key()
    jwks.keys = [public_jwk(rotated, "k2")]
    response = jwks_client.get("/api/sessions", headers=bearer(token(rotated, "k2", sub="bob")))
    assert response.status_code == 200, response.text
    assert jwks.fetches == 2
    refused(
        jwks_client.get("/api/sessions", headers=bearer(token(rsa_key(), "k3"))),
        "the token's key (kid) is not in the JWKS",
    )
    refused(
        jwks_client.get("/api/sessions", headers=bearer(token(rsa_private, kid=None))),
        "the token names no key (kid)",
    )


def test_unknown_kids_do_not_hammer_the_jwks(
    make_client: ClientFactory, jwks: JwksServer, rsa_private: rsa.RSAPrivateKey
) -> None:
    jwks.keys = [public_jwk(rsa_private, "k1")]
    with make_client(jwt_jwks_url=jwks.url, jwt_jwks_refresh_s=60) as client:
        assert client.get("/api/sessions", headers=bearer(token(rsa_private))).status_code == 200
        for n in range(5):
            response = client.get("/api/sessions", headers=bearer(token(rsa_key(), f"made-up-{n}")))
            refused(response, "the token's key (kid) is not in the JWKS")
    assert jwks.fetches == 1


def test_a_jwks_that_is_down_gives_503_for_keys_not_kept(
    make_client: ClientFactory, jwks: JwksServer, rsa_private: rsa.RSAPrivateKey, db: DatabaseView
) -> None:
    jwks.keys = [public_jwk(rsa_private, "k1")]
    with make_client(jwt_jwks_url=jwks.url, jwt_jwks_refresh_s=0) as client:
        assert client.get("/api/sessions", headers=bearer(token(rsa_private))).status_code == 200
        jwks.stop()
        # The key fetched before still verifies; a new one cannot be fetched.
        assert client.post("/api/sessions", headers=bearer(token(rsa_private))).status_code == 201
        response = client.post("/api/sessions", headers=bearer(token(rsa_key(), "k2")))
        assert response.status_code == 503, response.text
        assert response.json()["detail"] == (
            "the identity provider's keys (CHATSTORE_JWT_JWKS_URL) cannot be fetched; try again later"
        )
        assert response.headers["retry-after"] == "5"
    assert db.scalar("SELECT count(*) FROM sessions") == 1


def test_a_jwks_that_was_never_reached_gives_503(
    make_client: ClientFactory, rsa_private: rsa.RSAPrivateKey
) -> None:
    down = JwksServer()
    down.stop()
    with make_client(jwt_jwks_url=down.url) as client:
        response = client.get("/api/sessions", headers=bearer(token(rsa_private)))
        assert response.status_code == 503, response.text


def test_keys_and_tokens_together(
    jwks_client: TestClient[Litestar], rsa_private: rsa.RSAPrivateKey, db: DatabaseView
) -> None:
    # A bearer that is a service key is the operator; anything else is tried as a token.
    assert jwks_client.post("/api/sessions", headers=bearer(KEY)).json()["owner"] is None
    assert jwks_client.post("/api/sessions", headers=bearer(token(rsa_private))).json()["owner"] == "alice"
    refused(
        jwks_client.get("/api/sessions", headers=bearer(KEY[:-1] + "x")), "the token is not a well-formed JWT"
    )
    missing = jwks_client.get("/api/sessions")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="chatstore"'
    # A token names its user itself.
    header = {**bearer(token(rsa_private)), "X-Chatstore-User": "bob"}
    response = jwks_client.get("/api/sessions", headers=header)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "X-Chatstore-User: takes effect only with a service key"
    # The token is checked first: a bad one beside the header is still a 401.
    bad = {**bearer(token(rsa_private, exp=int(time.time()) - 3600)), "X-Chatstore-User": "bob"}
    refused(jwks_client.get("/api/sessions", headers=bad), "the token has expired")
    assert sorted(str(row["owner"]) for row in db.rows("SELECT owner FROM sessions")) == ["None", "alice"]


def test_the_user_claim_can_be_another_claim(make_client: ClientFactory) -> None:
    secret = "s" * 40
    with make_client(jwt_secret=secret, jwt_user_claim="email") as client:
        good = jwt.encode(claims(email="ann@example.test"), secret, algorithm="HS256")
        assert client.post("/api/sessions", headers=bearer(good)).json()["owner"] == "ann@example.test"
        refused(
            client.get("/api/sessions", headers=bearer(jwt.encode(claims(), secret, algorithm="HS256"))),
            "the token has no email claim naming a user",
        )


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"CHATSTORE_JWT_SECRET": "s" * 40, "CHATSTORE_JWT_JWKS_URL": "https://id.example/jwks"},
            "set only one of CHATSTORE_JWT_JWKS_URL and CHATSTORE_JWT_SECRET",
        ),
        ({"CHATSTORE_JWT_SECRET": "short"}, "CHATSTORE_JWT_SECRET must be at least 32 bytes"),
        ({"CHATSTORE_JWT_PUBLIC_KEY": "not a key"}, "CHATSTORE_JWT_PUBLIC_KEY is not a PEM public key"),
        ({"CHATSTORE_JWT_JWKS_URL": "id.example/jwks"}, "CHATSTORE_JWT_JWKS_URL must be an http(s):// URL"),
        ({"CHATSTORE_JWT_AUDIENCE": "api"}, "CHATSTORE_JWT_AUDIENCE needs a key to check tokens with"),
        ({"CHATSTORE_JWT_SECRET": "s" * 40, "CHATSTORE_JWT_USER_CLAIM": " "}, "CHATSTORE_JWT_USER_CLAIM"),
    ],
)
def test_bad_token_settings_stop_start_up_with_a_clear_message(
    environment: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        Settings.from_env(environment)
    assert "s" * 40 not in str(raised.value)
    assert "s" * 40 not in repr(Settings(jwt_secret="s" * 40))


def test_a_private_key_is_not_a_public_key() -> None:
    pem = rsa_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(SettingsError, match="CHATSTORE_JWT_PUBLIC_KEY is not a PEM public key"):
        Settings.from_env({"CHATSTORE_JWT_PUBLIC_KEY": pem.decode()})


def test_tokens_alone_close_the_api_so_start_up_does_not_warn_it_is_open() -> None:
    assert open_access_warning("0.0.0.0", Settings(jwt_secret="s" * 40)) is None
    assert open_access_warning("0.0.0.0", Settings()) is not None
