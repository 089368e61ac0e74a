"""``PATCH /api/sessions/{id}``: rename, and metadata as a JSON Merge Patch (RFC 7396)."""

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.services.sessions import merge_patch
from tests.helpers import DatabaseView


def test_rename_changes_the_name_and_updated_at_only(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session(name="before", metadata={"keep": 1})

    response = client.patch(f"/api/sessions/{session['id']}", json={"name": "after"})

    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "after"
    assert updated["metadata"] == {"keep": 1}
    assert updated["created_at"] == session["created_at"]
    assert updated["updated_at"] > session["updated_at"]
    assert client.get(f"/api/sessions/{session['id']}").json()["session"] == updated


def test_a_null_name_clears_it(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session(name="temporary")
    assert client.patch(f"/api/sessions/{session['id']}", json={"name": None}).json()["name"] is None


def test_metadata_is_merged_as_a_json_merge_patch(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session(
        metadata={"topic": "travel", "prefs": {"lang": "en", "units": "metric"}, "drop": True}
    )

    response = client.patch(
        f"/api/sessions/{session['id']}",
        json={"metadata": {"prefs": {"lang": "pt", "units": None}, "drop": None, "tags": ["a"]}},
    )

    assert response.status_code == 200
    assert response.json()["metadata"] == {"topic": "travel", "prefs": {"lang": "pt"}, "tags": ["a"]}
    assert response.json()["name"] == session["name"]


def test_an_empty_patch_changes_nothing_but_updated_at(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session = make_session(name="same", metadata={"a": 1})
    updated = client.patch(f"/api/sessions/{session['id']}", json={}).json()
    assert (updated["name"], updated["metadata"]) == ("same", {"a": 1})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metadata": None}, "metadata"),
        ({"metadata": [1]}, "metadata"),
        ({"name": 5}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "a\u0000"}, "name"),
        ({"title": "x"}, "title"),
        ({"metadata": {"big": "x" * 20_000}}, "metadata"),
    ],
)
def test_bad_patches_are_400_and_change_nothing(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView, body: Any, field: str
) -> None:
    session = make_session(name="kept", metadata={"a": 1})
    before = db.rows("SELECT name, metadata, updated_at FROM sessions")

    response = client.patch(f"/api/sessions/{session['id']}", json=body)

    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]
    assert db.rows("SELECT name, metadata, updated_at FROM sessions") == before


def test_a_patch_whose_merged_metadata_is_too_big_is_refused(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session = make_session(metadata={"a": "x" * 10_000})
    response = client.patch(f"/api/sessions/{session['id']}", json={"metadata": {"b": "y" * 10_000}})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("metadata:")


def test_patching_an_unknown_session_is_404(client: TestClient[Litestar]) -> None:
    for session_id in (str(uuid.uuid4()), "nope"):
        assert client.patch(f"/api/sessions/{session_id}", json={"name": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # examples from RFC 7396, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result
