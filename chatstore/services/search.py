"""Full-text search of messages, on the database's own index.

- **SQLite**: an FTS5 table over ``messages.content`` and the owner of each message's session
  (external content, read through a view keyed by the messages' rowid, so the text is stored once),
  kept in sync by triggers on insert, on update of ``content`` (a reply's text is written when it
  ends), on delete, on a session's delete and on a change of its owner. The user's words are
  matched in ``content`` only; a user's search adds their owner key (``owner_key``), so that FTS5
  intersects the word's rows with the owner's.
  The ``unicode61 remove_diacritics 2`` tokenizer folds case and accents: ``cafe`` finds ``café``.
  Trigram would find parts of words and of unspaced CJK text, but triples the index, cannot fold
  accents on the SQLite versions Python ships and matches nothing under three characters.
  Ranked by ``bm25``, snippets by ``snippet()``.
- **PostgreSQL**: a stored generated ``tsvector`` column with a GIN index, built with the
  ``chatstore_search`` configuration: the ``simple`` one (no stemming and no stop words, as chats
  come in every language, and as on SQLite) behind the ``unaccent`` dictionary. Ranked by
  ``ts_rank_cd`` (normalised by the log of the length, so a short message about the words ranks
  above a long one that mentions them once), snippets by ``ts_headline``.

Both backends read the same query language, that of ``websearch_to_tsquery``: every word must
appear, ``"quoted words"`` must appear together in that order, ``or`` between words accepts either
side, and ``-word`` excludes. The user's text is never handed to the database as query syntax: it
is parsed here into words (runs of letters and digits) and rendered again, quoted, for each
backend, so no input can make the query fail.
"""

import hashlib
import html
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, text

from chatstore.core.db import Database
from chatstore.models.search_index import (
    PG_DOCUMENT,
    PG_LESS_THAN,
    SQLITE_CONTENT_COLUMN,
    SQLITE_OWNER_COLUMN,
    TS_CONFIG,
    sqlite_owner_key,
)
from chatstore.models.tables import UTCTimestamp
from chatstore.schemas import SearchHit, SearchPage
from chatstore.services.errors import InvalidInput
from chatstore.services.owners import OwnerScope
from chatstore.services.pagination import RowId, Score, Text, decode_cursor, encode_cursor

__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_TERMS",
    "SearchQuery",
    "parse_query",
    "search",
]

MAX_QUERY_LENGTH = 500
MAX_QUERY_TERMS = 32
SNIPPET_WORDS = 16
MARK_OPEN, MARK_CLOSE = "<mark>", "</mark>"

# A term is an optionally negated quoted phrase (closed or running to the end) or a bare word.
_TERM = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Clause:
    """Phrases that must all appear, and phrases that must not; each phrase is a tuple of words."""

    required: tuple[tuple[str, ...], ...]
    excluded: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query: it matches a message that satisfies any of its clauses."""

    clauses: tuple[Clause, ...]

    def to_fts5(self) -> str:
        """FTS5 syntax; every phrase is a quoted string of plain words, never an operator."""

        def phrase(words: tuple[str, ...]) -> str:
            return '"' + " ".join(words) + '"'

        rendered = []
        for clause in self.clauses:
            expression = "(" + " AND ".join(phrase(words) for words in clause.required) + ")"
            for words in clause.excluded:
                expression = f"({expression} NOT {phrase(words)})"
            rendered.append(expression)
        return " OR ".join(rendered)

    def to_websearch(self) -> str:
        """``websearch_to_tsquery`` syntax with the same meaning as ``to_fts5``."""
        return " or ".join(
            " ".join(
                [f'"{" ".join(words)}"' for words in clause.required]
                + [f'-"{" ".join(words)}"' for words in clause.excluded]
            )
            for clause in self.clauses
        )


def parse_query(q: str) -> SearchQuery:
    """Parse what a user typed; a query with nothing to look for is an ``InvalidInput`` on ``q``."""
    if not q.strip():
        raise InvalidInput("q", "must not be empty", source="query")
    if len(q) > MAX_QUERY_LENGTH:
        raise InvalidInput("q", f"at most {MAX_QUERY_LENGTH} characters, got {len(q)}", source="query")
    if "\x00" in q:
        raise InvalidInput("q", "must not contain the NUL character (U+0000)", source="query")
    terms = list(_TERM.finditer(q))
    if len(terms) > MAX_QUERY_TERMS:
        raise InvalidInput("q", f"at most {MAX_QUERY_TERMS} words, got {len(terms)}", source="query")

    groups: list[tuple[list[tuple[str, ...]], list[tuple[str, ...]]]] = [([], [])]
    for term in terms:
        negated, quoted, bare = term.groups()
        if bare is not None and bare.lower() == "or":
            groups.append(([], []))
            continue
        if bare is not None:
            negated, quoted = ("-", bare[1:]) if bare.startswith("-") else ("", bare)
        words = tuple(word.lower() for word in _WORD.findall(quoted))
        if words:
            groups[-1][1 if negated else 0].append(words)
    # A clause that only excludes would match nearly every message, and no index can serve it.
    clauses = tuple(Clause(tuple(required), tuple(excluded)) for required, excluded in groups if required)
    if not clauses:
        raise InvalidInput("q", "has no words to search for (letters or digits)", source="query")
    return SearchQuery(clauses)


# The owner column counts for nothing in a score (its key is not one of the user's words).
_SQLITE_SCORE = "bm25(messages_search, 1.0, 0.0)"
_SQLITE_ANCHOR = f"""SELECT {_SQLITE_SCORE} FROM messages_search
WHERE messages_search MATCH :query AND messages_search.rowid = :doc {{scope}}"""
_SQLITE_PAGE = f"""
WITH page AS MATERIALIZED (
    SELECT messages_search.rowid AS doc, {_SQLITE_SCORE} AS score
    FROM messages_search
    WHERE messages_search MATCH :query {{scope}} {{after}}
    ORDER BY score, doc
    LIMIT :limit
)
SELECT page.doc, page.score, m.id, m.session_id, m.seq, m.role, m.created_at, s.name,
       snippet(messages_search, 0, :open, :close, '…', {{words}}) AS snippet
FROM page
JOIN messages_search ON messages_search.rowid = page.doc AND messages_search MATCH :query
JOIN messages AS m ON m.rowid = page.doc
JOIN sessions AS s ON s.id = m.session_id
ORDER BY page.score, page.doc
"""
# Typed so that timestamps are read as on every other path.
_RESULT_TYPES = {"score": Float(), "created_at": UTCTimestamp()}
# bm25 is lower for better matches.
_SQLITE_AFTER = f"""AND ({_SQLITE_SCORE} > :score
    OR ({_SQLITE_SCORE} = :score AND messages_search.rowid > :doc))"""

_POSTGRES_QUERY = f"websearch_to_tsquery('{TS_CONFIG}'::regconfig, :query)"
_POSTGRES_RANK = f"ts_rank_cd(m.search_vector, {_POSTGRES_QUERY}, 1)"
_POSTGRES_ANCHOR = (
    f"SELECT {_POSTGRES_RANK} FROM messages AS m WHERE m.id = :doc AND m.search_vector @@ {_POSTGRES_QUERY} "
    "{scope}"
)
# The owner's sessions by the index that starts with the owner; the planner reads their messages by
# session, or the GIN index, whichever its statistics say is cheaper.
_POSTGRES_OWNER_SCOPE = "AND m.session_id IN (SELECT id FROM sessions WHERE owner = :owner)"
_POSTGRES_PAGE = f"""
WITH page AS MATERIALIZED (
    SELECT hits.id AS doc, hits.score
    FROM (
        SELECT m.id, {_POSTGRES_RANK} AS score
        FROM messages AS m
        WHERE m.search_vector @@ {_POSTGRES_QUERY} {{scope}}
    ) AS hits
    WHERE true {{after}}
    ORDER BY hits.score DESC, hits.id
    LIMIT :limit
)
SELECT page.doc, page.score, m.id, m.session_id, m.seq, m.role, m.created_at, s.name,
       ts_headline(
           '{TS_CONFIG}'::regconfig, {PG_DOCUMENT.format(column="m.content")}, {_POSTGRES_QUERY}, :options
       ) AS snippet
FROM page
JOIN messages AS m ON m.id = page.doc
JOIN sessions AS s ON s.id = m.session_id
ORDER BY page.score DESC, page.doc
"""
# ts_rank_cd is higher for better matches; real, so the anchor's score is compared as a real.
_POSTGRES_AFTER = (
    "AND (hits.score < CAST(:score AS real) OR (hits.score = CAST(:score AS real) AND hits.id > :doc))"
)


async def search(
    db: Database, q: str, *, scope: OwnerScope, limit: int, cursor: str | None = None
) -> SearchPage:
    """One page of the messages of the scope's sessions matching ``q``, best first. Another owner's
    message is never a hit, nor an anchor for a cursor.

    The cursor names the last hit of the previous page by its (score, key): the rowid on SQLite,
    the message id on PostgreSQL. The next page is what ranks after it, so hits the client has seen
    are never repeated and none is skipped, whatever is inserted or deleted between pages. On
    SQLite a score also depends on statistics of the whole index (bm25's document count and average
    length), which every insert moves, so a score carried in the cursor would no longer line up
    with fresh ones; instead the last hit's score is computed again beside the page, with the same
    statistics. Only if that message is gone (or no longer matches) is the cursor's own score used.
    Messages stored after the first page appear on later pages if they rank below the cursor.

    On PostgreSQL a score depends on the message alone, and a user's search starts from the user's
    sessions. On SQLite the match is the user's query in ``content`` AND the owner's key in
    ``owner_key``, so FTS5 scores only the owner's matches; the owner column weighs nothing in bm25.
    bm25's statistics are still those of the whole index, every owner's messages included: the
    document count, the average length (which the owner token adds one to), and how many messages
    hold each word, which FTS5 counts by reading the word's whole list of rows once per query.
    They move the scores of a user's hits a little, never which messages are hits.
    """
    query = parse_query(q)
    dialect = db.dialect
    rendered = query.to_websearch() if dialect == "postgresql" else query.to_fts5()
    # A cursor is valid only for the query it was made for.
    kind = f"search:{dialect}:{hashlib.sha256(rendered.encode()).hexdigest()[:16]}"
    key_type = tuple[Score, Text] if dialect == "postgresql" else tuple[Score, RowId]
    after = decode_cursor(cursor, kind, key_type) if cursor else None
    # Highlight markers no message can contain (they differ per request), swapped for <mark> after
    # the rest of the text is HTML-escaped.
    nonce = secrets.token_hex(8)
    open_marker, close_marker = f"\ue000{nonce}\ue001", f"\ue002{nonce}\ue003"

    def select_page(connection: Connection) -> SearchPage:
        params: dict[str, Any] = {"query": rendered, "limit": limit + 1}
        if dialect == "postgresql":
            if scope.owner is not None:
                params["owner"] = scope.owner
            params["options"] = (
                f'StartSel="{open_marker}", StopSel="{close_marker}", '
                f"MaxWords={SNIPPET_WORDS}, MinWords={SNIPPET_WORDS // 2}, MaxFragments=2, "
                'FragmentDelimiter=" … "'
            )
            anchor_sql, page_sql, after_sql = _POSTGRES_ANCHOR, _POSTGRES_PAGE, _POSTGRES_AFTER
            parts = {"scope": _scope_condition(scope, _POSTGRES_OWNER_SCOPE)}
        else:
            params["query"] = _sqlite_match(rendered, scope.owner)
            params["open"], params["close"] = open_marker, close_marker
            anchor_sql, page_sql, after_sql = _SQLITE_ANCHOR, _SQLITE_PAGE, _SQLITE_AFTER
            parts = {"scope": _scope_condition(scope, "")}  # the owner is in the match
        if after is None:
            statement = page_sql.format(after="", words=SNIPPET_WORDS, **parts)
        else:
            score, doc = after
            fresh = connection.execute(text(anchor_sql.format(**parts)), {**params, "doc": doc}).scalar()
            params["score"] = score if fresh is None else fresh
            params["doc"] = doc
            statement = page_sql.format(after=after_sql, words=SNIPPET_WORDS, **parts)
        rows = connection.execute(text(statement).columns(**_RESULT_TYPES), params).all()
        more, rows = len(rows) > limit, rows[:limit]
        hits = [
            SearchHit(
                session_id=row.session_id,
                session_name=row.name,
                message_id=row.id,
                seq=row.seq,
                role=row.role,
                created_at=row.created_at,
                snippet=_highlight(
                    row.snippet.replace(PG_LESS_THAN, "<") if dialect == "postgresql" else row.snippet,
                    open_marker,
                    close_marker,
                ),
            )
            for row in rows
        ]
        next_cursor = encode_cursor(kind, [rows[-1].score, rows[-1].doc]) if more else None
        return SearchPage(results=hits, next_cursor=next_cursor)

    return await db.read(select_page)


def _sqlite_match(rendered: str, owner: str | None) -> str:
    """The user's query, in the content column only (an owner key is never one of their words), and
    for an owner, that owner's key too: FTS5 intersects the two."""
    match = f"{SQLITE_CONTENT_COLUMN} : ({rendered})"
    if owner is None:
        return match
    return f'{match} AND {SQLITE_OWNER_COLUMN} : "{sqlite_owner_key(owner)}"'


def _scope_condition(scope: OwnerScope, owner_condition: str) -> str:
    if scope.empty:
        return "AND 1 = 0"
    return "" if scope.owner is None else owner_condition


def _highlight(snippet: str, open_marker: str, close_marker: str) -> str:
    """HTML-escape the snippet, then turn the markers into ``<mark>`` tags: safe to render as HTML."""
    return html.escape(snippet).replace(open_marker, MARK_OPEN).replace(close_marker, MARK_CLOSE)
