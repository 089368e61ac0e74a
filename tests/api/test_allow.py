"""``OPTIONS`` lists every method of the path in ``Allow`` (Litestar's own answer listed only the
methods registered before its handler was made: ``OPTIONS /api/sessions`` said ``OPTIONS, POST``)."""

import pytest
from litestar import Litestar
from litestar.testing import TestClient

# An id of the shape the typed path parameters take; no such session or reply has to exist.
SOME_ID = "0b6f1a8e-2f43-4c1e-9d3a-5a7c2e4b9f10"
ALLOWED = {
    "/api/sessions": "GET, OPTIONS, POST",
    f"/api/sessions/{SOME_ID}": "DELETE, GET, OPTIONS, PATCH",
    f"/api/sessions/{SOME_ID}/messages": "GET, OPTIONS",
    "/api/chat": "OPTIONS, POST",
    f"/api/messages/{SOME_ID}/stream": "GET, OPTIONS",
    "/healthz": "GET, OPTIONS",
}


@pytest.mark.parametrize(("path", "allowed"), ALLOWED.items())
def test_options_allows_every_method_of_the_path(
    client: TestClient[Litestar], path: str, allowed: str
) -> None:
    response = client.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == allowed
    assert response.headers.get_list("allow") == [allowed]


def test_a_method_the_path_lacks_is_405_with_the_same_methods(client: TestClient[Litestar]) -> None:
    response = client.put("/api/sessions")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "OPTIONS", "POST"}
