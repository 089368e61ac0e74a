"""The tables themselves: the relationship, the constraints and the cascade, in the database."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from chatstore.models import ChatSession, Message


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    if db_engine.dialect.name == "sqlite":
        from sqlalchemy import event

        @event.listens_for(db_engine, "connect")
        def _foreign_keys(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

    SQLModel.metadata.create_all(db_engine)
    return db_engine


def test_session_with_messages_through_the_relationship(engine: Engine) -> None:
    with Session(engine) as orm:
        chat = ChatSession(name="models", meta={"k": "v"})
        chat.messages = [
            Message(seq=1, role="user", content="hello"),
            Message(seq=2, role="assistant", content="hi", status="complete"),
        ]
        orm.add(chat)
        orm.commit()
        chat_id = chat.id

    with Session(engine) as orm:
        stored = orm.get(ChatSession, chat_id)
        assert stored is not None
        assert stored.meta == {"k": "v"}
        assert [m.content for m in stored.messages] == ["hello", "hi"]
        assert stored.messages[0].session is stored


def test_seq_is_unique_within_a_session(engine: Engine) -> None:
    with Session(engine) as orm:
        chat = ChatSession()
        orm.add(chat)
        orm.commit()
        orm.add(Message(session_id=chat.id, seq=1, role="user", content="a"))
        orm.add(Message(session_id=chat.id, seq=1, role="user", content="b"))
        with pytest.raises(IntegrityError):
            orm.commit()


def test_role_and_status_are_checked_by_the_database(engine: Engine) -> None:
    with Session(engine) as orm:
        chat = ChatSession()
        orm.add(chat)
        orm.commit()
        orm.add(Message(session_id=chat.id, seq=1, role="robot", content="a"))
        with pytest.raises(IntegrityError):
            orm.commit()


def test_deleting_a_session_in_sql_cascades_to_its_messages(engine: Engine) -> None:
    with Session(engine) as orm:
        chat = ChatSession(messages=[Message(seq=1, role="user", content="x")])
        orm.add(chat)
        orm.commit()
        chat_id = chat.id

    with engine.begin() as connection:  # plain SQL: the database does the cascade, not the ORM
        connection.execute(text("DELETE FROM sessions WHERE id = :id"), {"id": chat_id})

    with Session(engine) as orm:
        assert orm.exec(select(Message).where(Message.session_id == chat_id)).all() == []


@pytest.mark.parametrize(
    "stored",
    [
        datetime(2026, 12, 1, 18, 2, 4, 609275, tzinfo=UTC),
        datetime(2026, 12, 1, 18, 2, 4, tzinfo=UTC),  # no fraction of a second
        datetime(2026, 12, 1, 20, 2, 4, 1, tzinfo=timezone(timedelta(hours=2))),  # stored as UTC
    ],
)
def test_timestamps_read_back_as_the_same_aware_utc_time(engine: Engine, stored: datetime) -> None:
    with Session(engine) as orm:
        chat = ChatSession(created_at=stored, updated_at=stored)
        orm.add(chat)
        orm.commit()
        chat_id = chat.id

    with engine.connect() as connection:
        read = connection.execute(
            select(ChatSession.created_at).where(ChatSession.id == chat_id)  # type: ignore[arg-type]
        ).scalar_one()
    assert read == stored
    assert read.utcoffset() == timedelta(0)


def test_sqlite_text_with_an_offset_of_its_own_reads_as_utc_as_before(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite stores timestamps as text")
    with Session(engine) as orm:
        chat = ChatSession()
        orm.add(chat)
        orm.commit()
        chat_id = chat.id
    with engine.begin() as connection:  # written by hand, not by SQLAlchemy, which writes no offset
        connection.execute(
            text("UPDATE sessions SET created_at = '2026-12-01 18:02:04+02:00' WHERE id = :id"),
            {"id": chat_id},
        )
        read = connection.execute(
            select(ChatSession.created_at).where(ChatSession.id == chat_id)  # type: ignore[arg-type]
        ).scalar_one()
    assert read == datetime(2026, 12, 1, 18, 2, 4, tzinfo=UTC)
