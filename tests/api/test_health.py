"""``GET /healthz``: 200 while the database answers, 503 when it does not, open without a key."""

from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import ClientFactory
from tests.helpers import DatabaseView


def test_healthy_is_200_ok(client: TestClient[Litestar]) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_database_without_chatstore_tables_is_503_then_200_again(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    db.execute("ALTER TABLE sessions RENAME TO sessions_away")
    try:
        response = client.get("/healthz")
    finally:
        db.execute("ALTER TABLE sessions_away RENAME TO sessions")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "detail": "the database does not answer"}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_health_check_needs_no_key(make_client: ClientFactory) -> None:
    with make_client(api_key="k" * 32) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/sessions").status_code == 401


def test_the_health_check_is_in_the_schema_with_both_answers(client: TestClient[Litestar]) -> None:
    operation = client.get("/schema/openapi.json").json()["paths"]["/healthz"]["get"]
    assert operation["operationId"] == "getHealth"
    assert {"200", "503"} <= set(operation["responses"])
    assert "security" not in operation
