"""Opaque cursors for keyset pagination.

A cursor names the last item of a page by its sort key, so the next page starts right after it
however many items were added or removed meanwhile: no item is seen twice or skipped (except
one whose own sort key changed). It is base64url of a small JSON document; clients must treat it
as opaque.

A cursor comes back from the client, so it may be forged: its key is checked against what the
columns behind it can hold (the key types below) before any SQL sees it, and anything else is a
400 naming ``cursor``.
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from chatstore.services.errors import InvalidInput

__all__ = ["RowId", "Score", "Seq", "Text", "Timestamp", "decode_cursor", "encode_cursor"]

# messages.seq is a 32-bit column: a session holds at most 2**31 - 1 messages.
Seq = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
# SQLite's rowid, a 64-bit integer.
RowId = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# A search rank: PostgreSQL's ts_rank is a 32-bit float (a real).
_FLOAT32_MAX = 3.4028234663852886e38
Score = Annotated[float, msgspec.Meta(ge=-_FLOAT32_MAX, le=_FLOAT32_MAX)]
# Text PostgreSQL can store (it refuses NUL); ids are far shorter than this.
Text = Annotated[str, msgspec.Meta(max_length=200, pattern="^[^\x00]*$")]
# Times are given out in UTC; one that leaves the calendar when converted to UTC is refused below.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


class _Cursor(msgspec.Struct, array_like=True):
    kind: str
    # Scalars only: a nested key is refused at once instead of being decoded level by level.
    key: list[str | int | float]


def encode_cursor(kind: str, key: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(_Cursor(kind, key))).decode().rstrip("=")


def decode_cursor(raw: str, kind: str, key_type: Any) -> Any:
    """The key of a cursor made by ``encode_cursor(kind, …)``, converted to ``key_type`` (a tuple of
    the types above), with its times in UTC."""
    try:
        document = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        cursor = msgspec.json.decode(document, type=_Cursor)
        if cursor.kind != kind:
            raise ValueError(cursor.kind)
        key = msgspec.convert(cursor.key, key_type)
        return tuple(part.astimezone(UTC) if isinstance(part, datetime) else part for part in key)
    except (binascii.Error, ValueError, OverflowError, msgspec.DecodeError, msgspec.ValidationError):
        # OverflowError: a time past year 9999 (or before year 1) once in UTC.
        raise InvalidInput("cursor", "not a cursor this listing gave out", source="query") from None
