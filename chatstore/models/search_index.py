"""The full-text index of message content: the names and expressions its queries share with its DDL.

SQLite: an FTS5 table ``messages_search`` of two columns, ``content`` (the message's text) and
``owner_key`` (its session owner's id in hex, one token; none for a session without an owner). It
reads both from the view ``messages_search_source`` (``messages`` joined to ``sessions``, looked up
by the messages' rowid) and is kept in step by triggers on both tables, so that a session given to
another owner is found under the new one. PostgreSQL: a stored generated ``tsvector`` column
``search_vector`` with a GIN index, under a text search configuration of chatstore's own
(``simple``, behind ``unaccent``). The DDL is in the migrations (revisions 0001 and 0005,
``chatstore/migrations/versions``), the queries in ``chatstore.services.search``.
"""

__all__ = [
    "PG_DOCUMENT",
    "PG_LESS_THAN",
    "SQLITE_CONTENT_COLUMN",
    "SQLITE_OWNER_COLUMN",
    "TS_CONFIG",
    "sqlite_owner_key",
]

SQLITE_CONTENT_COLUMN = "content"
SQLITE_OWNER_COLUMN = "owner_key"


def sqlite_owner_key(owner: str) -> str:
    """The token the SQLite index holds for a session's owner: what ``lower(hex(owner))`` gives in
    the DDL, the UTF-8 bytes of the id in lower-case hex (one token, whatever characters it has)."""
    return owner.encode().hex()


TS_CONFIG = "chatstore_search"
# PostgreSQL's parser reads "<script>" or "<style>" as the start of an HTML element and skips all
# that follows; chats hold code, so "<" is swapped for a private-use character before parsing (and
# back, in the snippet).
PG_LESS_THAN = "\ue004"
PG_DOCUMENT = "replace({column}, '<', chr(57348))"
