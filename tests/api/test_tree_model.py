"""Conversation trees against a model: random chats, edits, new roots, regenerations, switches,
deletes and forks on a few sessions, each followed by a check of every session against a simple
in-memory tree (its current branch, siblings, all messages in seq order, a branch paged backward,
each stored message's depth)."""

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.helpers import DatabaseView, parse_sse

STEPS = 30
MAX_SESSIONS = 4
# A chat without `parent_id`: its messages follow the end of the current branch.
AT_THE_END = object()


@dataclass
class Message:
    id: str
    parent_id: str | None
    role: str
    content: str
    seq: int


@dataclass
class Session:
    id: str
    messages: dict[str, Message] = field(default_factory=dict)
    current: str | None = None
    last_seq: int = 0

    def add(self, id_: str, parent_id: str | None, role: str, content: str) -> Message:
        self.last_seq += 1
        message = Message(id_, parent_id, role, content, self.last_seq)
        self.messages[id_] = message
        return message

    def children(self, parent_id: str | None) -> list[str]:
        return [m.id for m in self.messages.values() if m.parent_id == parent_id]

    def branch(self, leaf_id: str | None) -> list[Message]:
        path = []
        while leaf_id is not None:
            path.append(self.messages[leaf_id])
            leaf_id = self.messages[leaf_id].parent_id
        return path[::-1]

    def subtree(self, message_id: str) -> list[str]:
        below = [message_id]
        for child in self.children(message_id):
            below += self.subtree(child)
        return below

    def newest_below(self, message_id: str) -> str:
        return max(self.subtree(message_id), key=lambda id_: self.messages[id_].seq)

    def of_role(self, role: str) -> list[str]:
        return [m.id for m in self.messages.values() if m.role == role]


class Conversations:
    """Random operations, each applied to the service and to the model."""

    def __init__(self, client: TestClient[Litestar], db: DatabaseView, rng: random.Random) -> None:
        self.client = client
        self.db = db
        self.rng = rng
        self.sessions = [self.new_session() for _ in range(2)]
        self.texts = 0

    def new_session(self) -> Session:
        response = self.client.post("/api/sessions", json={"name": "tree"})
        assert response.status_code == 201
        return Session(response.json()["id"])

    def text(self) -> str:
        self.texts += 1
        return f"question {self.texts}"

    def stream(self, response: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        assert response.status_code == 200, response.text
        events = parse_sse(response.text)
        assert events[0].event == "start" and events[-1].event == "done", events
        return events[0].data, events[-1].data

    def chat(self, session: Session, parent: object) -> None:
        text = self.text()
        body: dict[str, Any] = {"session_id": session.id, "messages": [{"role": "user", "content": text}]}
        if parent is not AT_THE_END:
            body["parent_id"] = parent
        started, done = self.stream(self.client.post("/api/chat", json=body))
        below = session.current if parent is AT_THE_END else parent
        assert below is None or isinstance(below, str)
        question = session.add(started["message_ids"][0], below, "user", text)
        reply = session.add(started["assistant_message_id"], question.id, "assistant", done["content"])
        session.current = reply.id

    def step(self) -> str:
        session = self.rng.choice(self.sessions)
        questions, replies = session.of_role("user"), session.of_role("assistant")
        kind = self.rng.choices(
            ["chat", "edit", "root", "regenerate", "switch", "delete", "fork"], [30, 15, 5, 15, 15, 10, 10]
        )[0]
        if kind == "edit" and questions:
            self.chat(session, session.messages[self.rng.choice(questions)].parent_id)
        elif kind == "root":
            self.chat(session, None)
        elif kind == "regenerate" and replies:
            self.regenerate(session, self.rng.choice([None, *replies]))
        elif kind == "switch" and session.messages:
            target = self.rng.choice(list(session.messages))
            response = self.client.patch(f"/api/sessions/{session.id}", json={"current_message_id": target})
            assert response.status_code == 200, response.text
            session.current = session.newest_below(target)
        elif kind == "delete" and session.messages:
            self.delete(session, self.rng.choice(list(session.messages)))
        elif kind == "fork" and session.messages and len(self.sessions) < MAX_SESSIONS:
            self.fork(session, self.rng.choice(list(session.messages)))
        else:
            kind = "chat"
            self.chat(session, AT_THE_END)
        return kind

    def regenerate(self, session: Session, reply_id: str | None) -> None:
        if reply_id is None:
            asked = [m for m in session.branch(session.current) if m.role == "user"]
            if not asked:  # nothing on the current branch to answer again
                self.chat(session, AT_THE_END)
                return
            parent = asked[-1].id
            body: dict[str, str] = {}
        else:
            parent = session.messages[reply_id].parent_id
            body = {"message_id": reply_id}
        started, done = self.stream(self.client.post(f"/api/sessions/{session.id}/regenerate", json=body))
        assert started["message_ids"] == []
        reply = session.add(started["assistant_message_id"], parent, "assistant", done["content"])
        session.current = reply.id

    def delete(self, session: Session, message_id: str) -> None:
        assert self.client.delete(f"/api/messages/{message_id}").status_code == 204
        gone = session.subtree(message_id)
        if session.current in gone:
            session.current = session.messages[message_id].parent_id
        for id_ in gone:
            del session.messages[id_]

    def fork(self, session: Session, message_id: str) -> None:
        response = self.client.post(f"/api/sessions/{session.id}/fork", json={"message_id": message_id})
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["forked_from"] == {"session_id": session.id, "message_id": message_id}
        copy = Session(created["id"])
        copied = self.client.get(f"/api/sessions/{copy.id}").json()["messages"]
        originals = session.branch(message_id)
        assert len(copied) == len(originals)
        new_ids: dict[str | None, str | None] = {None: None}
        for original, message in zip(originals, copied, strict=True):
            assert message["id"] not in session.messages
            new_ids[original.id] = message["id"]
            copy.add(message["id"], new_ids[original.parent_id], original.role, original.content)
        copy.current = new_ids[message_id]
        self.sessions.append(copy)

    def check(self) -> None:
        for session in self.sessions:
            detail = self.client.get(f"/api/sessions/{session.id}").json()
            assert detail["session"]["current_message_id"] == session.current
            assert detail["session"]["message_count"] == len(session.messages)
            expected = session.branch(session.current)
            assert [shape(m) for m in detail["messages"]] == [shape(vars(m)) for m in expected]
            for message in detail["messages"]:
                assert message["sibling_ids"] == session.children(message["parent_id"])

            every = self.client.get(f"/api/sessions/{session.id}/messages", params={"limit": 1000}).json()
            assert [shape(m) for m in every] == [shape(vars(m)) for m in session.messages.values()]

            assert branch_paged_backward(self.client, session.id) == [m.id for m in expected]

            depths = self.db.rows("SELECT id, depth FROM messages WHERE session_id = :id", id=session.id)
            assert {row["id"]: row["depth"] for row in depths} == {
                message_id: len(session.branch(message_id)) - 1 for message_id in session.messages
            }


def shape(message: dict[str, Any]) -> tuple[Any, ...]:
    return message["id"], message["parent_id"], message["role"], message["content"], message["seq"]


def branch_paged_backward(client: TestClient[Litestar], session_id: str) -> list[str]:
    """The current branch read from its end, two messages a page (each page in seq order, each next
    page the messages above it), put together root first."""
    ids: list[str] = []
    params: dict[str, Any] = {"branch": "current", "direction": "backward", "limit": 2}
    while True:
        response = client.get(f"/api/sessions/{session_id}/messages", params=params)
        assert response.status_code == 200, response.text
        ids = [m["id"] for m in response.json()] + ids
        cursor = response.headers.get("x-next-cursor")
        if not cursor:
            return ids
        params = {**params, "cursor": cursor}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_keep_the_tree_the_model_expects(
    client: TestClient[Litestar], db: DatabaseView, seed: int
) -> None:
    conversations = Conversations(client, db, random.Random(seed))
    done = []
    for _ in range(STEPS):
        done.append(conversations.step())
        conversations.check()
    # Every kind of operation ran at least once in these seeds' sequences.
    assert {"chat", "edit", "regenerate", "switch", "delete", "fork"} <= set(done), done
