"""The full-text index of message content: the names and expressions its queries share with its DDL.

SQLite: an FTS5 table ``messages_search`` that reads its text from ``messages`` by rowid, kept in
step by triggers. PostgreSQL: a stored generated ``tsvector`` column ``search_vector`` with a GIN
index, under a text search configuration of chatstore's own (``simple``, behind ``unaccent``). The
DDL is in the migrations (revision 0001, ``chatstore/migrations/versions``), the queries in
``chatstore.services.search``.
"""

__all__ = ["PG_DOCUMENT", "PG_LESS_THAN", "TS_CONFIG"]

TS_CONFIG = "chatstore_search"
# PostgreSQL's parser reads "<script>" or "<style>" as the start of an HTML element and skips all
# that follows; chats hold code, so "<" is swapped for a private-use character before parsing (and
# back, in the snippet).
PG_LESS_THAN = "\ue004"
PG_DOCUMENT = "replace({column}, '<', chr(57348))"
