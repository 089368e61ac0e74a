"""Opaque cursors for keyset pagination.

A cursor names the last item of a page by its sort key, so the next page starts right after it
however many items were added or removed meanwhile: no item is seen twice or skipped (except
one whose own sort key changed). It is base64url of a small JSON document; clients must treat it
as opaque.
"""

import base64
import binascii
from typing import Any

import msgspec

from chatstore.services.errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor"]


class _Cursor(msgspec.Struct, array_like=True):
    kind: str
    key: list[Any]


def encode_cursor(kind: str, key: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(_Cursor(kind, key))).decode().rstrip("=")


def decode_cursor(raw: str, kind: str, key_type: Any) -> Any:
    """The key of a cursor made by ``encode_cursor(kind, …)``, converted to ``key_type``."""
    try:
        document = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        cursor = msgspec.json.decode(document, type=_Cursor)
        if cursor.kind != kind:
            raise ValueError(cursor.kind)
        return msgspec.convert(cursor.key, key_type)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidInput("cursor", "not a cursor this listing gave out", source="query") from None
