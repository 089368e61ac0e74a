"""Every operation that takes a body refuses one past ``CHATSTORE_MAX_REQUEST_BODY_BYTES`` with 413,
whether the client announces its length or streams it, and documents that 413."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import ClientFactory
from tests.helpers import DatabaseView

LIMIT = 2_000


@pytest.fixture
def limited_client(make_client: ClientFactory) -> Iterator[TestClient[Litestar]]:
    with make_client(max_request_body_bytes=LIMIT) as client:
        yield client


def operations_with_a_body(
    client: TestClient[Litestar], session_id: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path with ``session_id`` filled in, the schema's operation) for each body-taking operation."""
    schema = client.get("/schema/openapi.json").json()
    return [
        (
            method.upper(),
            path.replace("{session_id}", session_id).replace("{message_id}", session_id),
            operation,
        )
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]


def oversized_body() -> bytes:
    return json.dumps({"name": "x", "metadata": {"padding": "x" * LIMIT}}).encode()


def test_every_body_past_the_limit_is_413_and_documented(
    limited_client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = limited_client.post("/api/sessions").json()["id"]
    before = db.rows("SELECT id, name, metadata FROM sessions ORDER BY id")
    operations = operations_with_a_body(limited_client, session_id)
    assert len(operations) >= 4

    for method, path, operation in operations:
        response = limited_client.request(
            method, path, content=oversized_body(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413, (method, path, response.text)
        assert response.json()["status_code"] == 413
        assert "413" in operation["responses"], (method, path)
    assert db.rows("SELECT id, name, metadata FROM sessions ORDER BY id") == before
    assert db.scalar("SELECT count(*) FROM messages") == 0


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(
    limited_client: TestClient[Litestar], db: DatabaseView
) -> None:
    body = oversized_body()
    chunks = (body[start : start + 500] for start in range(0, len(body), 500))
    response = limited_client.post(
        "/api/sessions", content=chunks, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert db.scalar("SELECT count(*) FROM sessions") == 0
