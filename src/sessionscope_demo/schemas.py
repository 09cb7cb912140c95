"""Request and response bodies. Every input is bounded so that nothing a client sends can
reach the database in a form it refuses (which would be a 500 instead of a 422)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from .models import (
    DESCRIPTION_LENGTH,
    EMAIL_LENGTH,
    INT32_MAX,
    ITEM_NAME_LENGTH,
    NAME_LENGTH,
)

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256
"""Argon2 takes any length, but hashing megabytes per request is a denial of service."""


def storable(value: str) -> str:
    """Refuse what the databases cannot store: PostgreSQL rejects NUL characters in text, and
    a lone surrogate (valid in JSON escapes) cannot be encoded to UTF-8 by any driver."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


_CANONICAL_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")


def _canonical_integer(value: object) -> object:
    """Refuse the spellings ``int()`` reads but no client means: ``+1``, ``1_0`` (10),
    ``01``, `` 1``, ``1.0``. Path and query values arrive as strings."""
    if isinstance(value, str) and not _CANONICAL_INTEGER.fullmatch(value):
        raise ValueError("must be an integer in plain decimal digits")
    return value


CanonicalInteger = BeforeValidator(_canonical_integer)
"""For integer path and query parameters: one spelling per number, so one URL per resource."""


def _normalise_email(value: str) -> str:
    # email-validator already lowercases the domain; the whole address is lowercased so that
    # uniqueness means the same thing on every database, whatever its collation.
    value = storable(value.lower())
    if len(value) > EMAIL_LENGTH:
        raise ValueError(f"must be at most {EMAIL_LENGTH} characters")
    return value


def _hashable(value: SecretStr) -> SecretStr:
    # Only the hash is stored, so any character goes, NUL included; a lone surrogate cannot
    # be encoded to the bytes Argon2 hashes.
    try:
        value.get_secret_value().encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


NO_NUL = Field(json_schema_extra={"pattern": "^[^\\x00]*$"})
"""Documents the NUL rule of `storable` in the schema (clients and schema-based fuzzers see it);
`storable` enforces it with a clearer message than a pattern mismatch."""


def _any_case(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


_SPECIAL_USE_DOMAINS = "|".join(map(_any_case, email_validator.SPECIAL_USE_DOMAIN_NAMES))
NOT_SPECIAL_USE = Field(json_schema_extra={"pattern": f"^(?!.*[@.](?:{_SPECIAL_USE_DOMAINS})$)"})
"""Documents in the schema that email-validator refuses addresses in special-use domains
(RFC 6761: ``.test``, ``.local``, ``localhost``...), which no mail can reach."""

Email = Annotated[EmailStr, NOT_SPECIAL_USE, AfterValidator(_normalise_email)]
Password = Annotated[
    SecretStr,
    Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH),
    AfterValidator(_hashable),
]
UserName = Annotated[
    str, StringConstraints(min_length=1, max_length=NAME_LENGTH), NO_NUL, AfterValidator(storable)
]
ItemName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ITEM_NAME_LENGTH),
    NO_NUL,
    AfterValidator(storable),
]
Description = Annotated[
    str, StringConstraints(max_length=DESCRIPTION_LENGTH), NO_NUL, AfterValidator(storable)
]


def _json_integer(value: object) -> object:
    # Lax int parsing reads true as 1 and "450" as 450. JSON Schema's integer is a number
    # without a fractional part, 450.0 included (and the int validation accepts it).
    if isinstance(value, (bool, str)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


PriceCents = Annotated[int, Field(ge=0, le=INT32_MAX), BeforeValidator(_json_integer)]
"""A JSON integer: ``true`` and ``"450"`` are refused, not read as numbers."""
Timestamp = Annotated[
    datetime,
    # SQLite and MariaDB hand back naive datetimes; the service only ever stores UTC.
    AfterValidator(lambda value: value if value.tzinfo else value.replace(tzinfo=timezone.utc)),
]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Patch(Input):
    """A partial update: absent fields stay as they are; ``null`` is refused where the column
    cannot be empty (the schema does not offer it either)."""

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name not in cls.nullable_fields():
            raise ValueError("must not be null; leave the field out to keep its value")
        return value

    @classmethod
    def nullable_fields(cls) -> frozenset[str]:
        return frozenset()


class UserCreate(Input):
    email: Email
    name: UserName | None = None
    password: Password


class UserUpdate(Patch):
    email: Email | SkipJsonSchema[None] = None
    name: UserName | SkipJsonSchema[None] = None
    password: Password | SkipJsonSchema[None] = None


class UserOut(BaseModel):
    """A user as clients see it: never the password or its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str | None
    created_at: Timestamp


class ItemCreate(Input):
    name: ItemName
    description: Description | None = None
    price_cents: PriceCents = 0


class ItemUpdate(Patch):
    name: ItemName | SkipJsonSchema[None] = None
    description: Description | None = None
    price_cents: PriceCents | SkipJsonSchema[None] = None

    @classmethod
    def nullable_fields(cls) -> frozenset[str]:
        return frozenset({"description"})


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    name: str
    description: str | None
    price_cents: int
    created_at: Timestamp


class ErrorOut(BaseModel):
    detail: str


Responses = dict[int | str, dict[str, Any]]

BODY_ERRORS: Responses = {
    400: {"model": ErrorOut, "description": "The body is not JSON"},
    413: {"model": ErrorOut, "description": "The body is larger than MAX_REQUEST_BODY_BYTES"},
}

_IDEMPOTENCY_ANSWERS = {
    400: "the Idempotency-Key header is empty, too long or not printable ASCII",
    409: "a request with the same Idempotency-Key is still being processed",
}


def idempotent(responses: Responses) -> Responses:
    """``responses`` and the answers of a route declared ``unit_of_work(idempotency=True)``.

    (A key reused for another request is a 422 with a text ``detail``; FastAPI's own 422 entry,
    the validation error, stays the documented one.)"""
    merged = dict(responses)
    for status_code, description in _IDEMPOTENCY_ANSWERS.items():
        known = merged.get(status_code)
        if known is None:
            merged[status_code] = {"model": ErrorOut, "description": description.capitalize()}
        else:
            merged[status_code] = {
                **known,
                "description": f"{known['description']}, or {description}",
            }
    return merged
