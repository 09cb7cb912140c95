"""Listing parameters: limit/offset with a total, or an opaque keyset cursor."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import PlainValidator, StringConstraints

from .models import INT32_MAX
from .schemas import CanonicalInteger

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_CURSOR_PREFIX = "after:"
_CURSOR_TEXT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Unpadded URL-safe base64, as `encode_cursor` writes it (the decoder would skip others)."""


def encode_cursor(after_id: int) -> str:
    """The cursor of the page that starts after the row ``after_id``."""
    raw = f"{_CURSOR_PREFIX}{after_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(value: object) -> int:
    """The row id a cursor continues after; a ValueError (so a 422) for anything else."""
    if not isinstance(value, str) or not _CURSOR_TEXT.fullmatch(value):
        raise ValueError("not a cursor returned by this service")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor returned by this service") from None
    number = raw.removeprefix(_CURSOR_PREFIX)
    if raw == number or not number.isdigit() or not 0 <= int(number) <= INT32_MAX:
        raise ValueError("not a cursor returned by this service")
    return int(number)


CursorText = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=_CURSOR_TEXT.pattern)
]
"""A cursor as the schema describes it. An empty ``cursor=`` is refused (422), as its
``minLength`` says, rather than read as the first page: a client that sends back an empty
``next_cursor`` would loop forever."""

Cursor = Annotated[int, PlainValidator(decode_cursor, json_schema_input_type=CursorText)]


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int
    after_id: int | None


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT), CanonicalInteger] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX), CanonicalInteger] = 0,
    cursor: Annotated[
        Cursor | None,
        Query(description="`next_cursor` of the previous page (keyset pagination)."),
    ] = None,
) -> PageRequest:
    """Dependency: the page a listing asks for."""
    if cursor is not None and offset:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "offset"),
                    "msg": "offset cannot be combined with cursor; a cursor already says where "
                    "the page starts",
                    "type": "value_error",
                }
            ]
        )
    return PageRequest(limit=limit, offset=offset, after_id=cursor)


Pagination = Annotated[PageRequest, Depends(page_request)]
