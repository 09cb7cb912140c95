"""Keyset cursors: the ordering keys of the last row of a page, as an opaque string.

A cursor is ``base64url(JSON [fingerprint, [value, ...]])``, followed by ``.`` and a
truncated HMAC-SHA256 of that text when the paginator has a secret. Whatever a client sends
back, decoding either returns one value per ordering key, each of the key's Python type and
within what every supported database accepts for the column (so that binding it cannot fail
into a 500), or raises `InvalidCursorError`. The values only ever reach the database as bound
parameters of the paginator's own comparison; a cursor never carries SQL.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, SmallInteger, String
from sqlalchemy.types import TypeEngine

from ._errors import SessionScopeError

MAX_CURSOR_LENGTH = 1024
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?$"
"""Unpadded URL-safe base64, and a signature after a dot when cursors are signed."""
_SIGNATURE_BYTES = 16
_NOT_A_CURSOR = "not a cursor returned by this listing"


class InvalidCursorError(SessionScopeError, ValueError):
    """A cursor that this paginator did not produce: malformed, tampered with, signed with
    another secret, or taken from a listing with another ordering.

    It is a `ValueError`, so FastAPI answers 422 when it is raised while validating a request
    (the `Paginator.params` dependency does exactly that).
    """


@dataclass(frozen=True)
class KeyCodec:
    """How one ordering key's values go into a cursor and come back out."""

    name: str
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    if not text or not text.isascii():
        raise InvalidCursorError(_NOT_A_CURSOR)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursorError(_NOT_A_CURSOR) from None


def _sign(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
    return _b64encode(digest[:_SIGNATURE_BYTES])


def encode_cursor(
    codecs: Sequence[KeyCodec], fingerprint: str, values: Sequence[Any], secret: bytes | None
) -> str:
    """The cursor of the page that starts after a row with these key values."""
    encoded = [codec.encode(value) for codec, value in zip(codecs, values, strict=True)]
    payload = _b64encode(json.dumps([fingerprint, encoded], separators=(",", ":")).encode())
    return payload if secret is None else f"{payload}.{_sign(secret, payload)}"


def decode_cursor(
    codecs: Sequence[KeyCodec], fingerprint: str, cursor: object, secret: bytes | None
) -> tuple[Any, ...]:
    """The key values a cursor continues after; `InvalidCursorError` for anything else."""
    if not isinstance(cursor, str) or not 1 <= len(cursor) <= MAX_CURSOR_LENGTH:
        raise InvalidCursorError(_NOT_A_CURSOR)
    payload, dot, signature = cursor.partition(".")
    if secret is not None:
        if not dot or not hmac.compare_digest(signature.encode(), _sign(secret, payload).encode()):
            raise InvalidCursorError(_NOT_A_CURSOR)
    elif dot:
        raise InvalidCursorError(_NOT_A_CURSOR)
    try:
        document = json.loads(_b64decode(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidCursorError(_NOT_A_CURSOR) from None
    if (
        not isinstance(document, list)
        or len(document) != 2
        or document[0] != fingerprint
        or not isinstance(document[1], list)
        or len(document[1]) != len(codecs)
    ):
        raise InvalidCursorError(_NOT_A_CURSOR)
    try:
        return tuple(codec.decode(value) for codec, value in zip(codecs, document[1], strict=True))
    except (TypeError, ValueError, ArithmeticError):
        raise InvalidCursorError(_NOT_A_CURSOR) from None


def fingerprint_of(names_and_directions: Sequence[str]) -> str:
    """A short digest of the ordering: a cursor of another listing's order is refused."""
    text = ",".join(names_and_directions).encode()
    return hashlib.sha256(text).hexdigest()[:12]


# Bounds of the databases' integer types: the strictest of SQLite, PostgreSQL and MariaDB.
_INTEGER_BOUNDS = {SmallInteger: 2**15, BigInteger: 2**63}
_DEFAULT_INTEGER_BOUND = 2**31
_MAX_TEXT = 4096


def _integer(bound: int) -> Callable[[Any], int]:
    def decode(value: Any) -> int:
        if type(value) is not int or not -bound <= value < bound:
            raise ValueError("integer key out of range")
        return value

    return decode


def _text(length: int) -> Callable[[Any], str]:
    def decode(value: Any) -> str:
        if type(value) is not str or len(value) > length or "\x00" in value:
            raise ValueError("bad text key")
        value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
        return value

    return decode


def _float(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError("bad float key")
    return float(value)


def _decimal(value: Any) -> decimal.Decimal:
    if type(value) is not str or len(value) > 100:
        raise ValueError("bad decimal key")
    number = decimal.Decimal(value)
    if not number.is_finite():
        raise ValueError("bad decimal key")
    return number


def _from_iso(kind: type[dt.date] | type[dt.time]) -> Callable[[Any], Any]:
    def decode(value: Any) -> Any:
        if type(value) is not str or len(value) > 64:
            raise ValueError("bad date/time key")
        return kind.fromisoformat(value)

    return decode


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError("bad boolean key")
    return value


def _uuid(value: Any) -> uuid.UUID:
    if type(value) is not str or len(value) > 64:
        raise ValueError("bad UUID key")
    return uuid.UUID(value)


def _same(value: Any) -> Any:
    return value


def _isoformat(value: Any) -> str:
    return str(value.isoformat())


def codec_for(name: str, column_type: TypeEngine[Any]) -> KeyCodec:
    """The codec of a key column of this type; `TypeError` for a type cursors cannot carry."""
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        python_type = object
    if python_type is bool:
        return KeyCodec(name, _same, _bool)
    if python_type is int:
        bound = next(
            (limit for kind, limit in _INTEGER_BOUNDS.items() if isinstance(column_type, kind)),
            _DEFAULT_INTEGER_BOUND,
        )
        return KeyCodec(name, _same, _integer(bound))
    if python_type is str:
        length = column_type.length if isinstance(column_type, String) else None
        return KeyCodec(name, _same, _text(length or _MAX_TEXT))
    if python_type is float:
        return KeyCodec(name, _same, _float)
    if python_type is decimal.Decimal:
        return KeyCodec(name, str, _decimal)
    if python_type in (dt.datetime, dt.date, dt.time):
        return KeyCodec(name, _isoformat, _from_iso(python_type))
    if python_type is uuid.UUID:
        return KeyCodec(name, str, _uuid)
    raise TypeError(
        f"cannot order a keyset listing by {name} of type {column_type!r}: cursor keys "
        "must be integers, text, numbers, booleans, dates, times or UUIDs"
    )
