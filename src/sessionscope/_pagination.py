"""Offset and keyset pagination over a ``select()``, for sync and async sessions.

This module does not use ``from __future__ import annotations``: FastAPI reads the
annotations of the ``params`` dependency, whose bounds belong to each paginator.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, overload

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ._cursor import (
    CURSOR_PATTERN,
    MAX_CURSOR_LENGTH,
    InvalidCursorError,
    decode_cursor,
    encode_cursor,
    fingerprint_of,
)
from ._errors import ConfigurationError
from ._keyset import keys_of, rows_after

ItemT = TypeVar("ItemT")
ModelT = TypeVar("ModelT", bound=BaseModel)

INT32_MAX = 2**31 - 1


class Page(BaseModel, Generic[ItemT]):
    """One page of a listing, as a response model: ``Page[ItemOut]``."""

    items: list[ItemT]
    total: int | None = Field(
        description="Rows matching the listing's filters; null when the paginator does not "
        "count them."
    )
    limit: int
    offset: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the rows after this page (keyset pagination); "
        "null on the last page."
    )


@dataclass(frozen=True)
class PageRequest:
    """Which page to read: ``limit`` rows after ``offset`` rows, or after ``cursor``."""

    limit: int
    offset: int = 0
    cursor: str | None = None


class Paginator:
    """Offset and keyset pagination of ``select()`` queries in one stable order.

    ``order_by``: mapped, NOT NULL columns, each ascending or ``.desc()``, that include a
    unique tiebreaker (the primary key or a unique column). ``secret``: when given, cursors
    are signed and any other cursor is refused; without it they are strictly validated.
    ``count_total``: count the matching rows (one more query per page) for ``Page.total``.
    """

    def __init__(
        self,
        *order_by: Any,
        default_limit: int = 20,
        max_limit: int = 100,
        max_offset: int = INT32_MAX,
        count_total: bool = True,
        secret: str | bytes | None = None,
    ) -> None:
        if not 1 <= default_limit <= max_limit:
            raise ConfigurationError("need 1 <= default_limit <= max_limit")
        self._keys = keys_of(order_by)
        self._codecs = [key.codec for key in self._keys]
        self._fingerprint = fingerprint_of(
            [f"{key.codec.name} {'desc' if key.descending else 'asc'}" for key in self._keys]
        )
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.max_offset = max_offset
        self.count_total = count_total
        self.params = self._dependency()
        """A FastAPI dependency: the `PageRequest` of the query parameters ``limit``,
        ``offset`` and ``cursor``; a bad cursor or a cursor with an offset answers 422."""

    def __repr__(self) -> str:
        names = ", ".join(
            f"{key.codec.name}{' desc' if key.descending else ''}" for key in self._keys
        )
        return f"<Paginator order_by=({names}) max_limit={self.max_limit}>"

    def request(
        self, limit: int | None = None, offset: int = 0, cursor: str | None = None
    ) -> PageRequest:
        """A validated `PageRequest` (outside FastAPI); `ValueError` when it is not valid,
        `InvalidCursorError` for a cursor this paginator did not produce."""
        limit = self.default_limit if limit is None else limit
        if not 1 <= limit <= self.max_limit:
            raise ValueError(f"limit must be between 1 and {self.max_limit}")
        if not 0 <= offset <= self.max_offset:
            raise ValueError(f"offset must be between 0 and {self.max_offset}")
        if cursor is not None:
            if offset:
                raise ValueError(
                    "offset cannot be combined with cursor; a cursor already says where the "
                    "page starts"
                )
            self.decode(cursor)
        return PageRequest(limit=limit, offset=offset, cursor=cursor)

    def decode(self, cursor: object) -> tuple[Any, ...]:
        """The key values a cursor continues after; `InvalidCursorError` if it is not one of
        this paginator's cursors."""
        return decode_cursor(self._codecs, self._fingerprint, cursor, self._secret)

    def cursor_after(self, values: Sequence[Any]) -> str:
        """The cursor of the page after a row with these key values (in ``order_by`` order)."""
        if any(value is None for value in values):
            raise ValueError("a keyset cursor cannot hold NULL key values")
        return encode_cursor(self._codecs, self._fingerprint, values, self._secret)

    @overload
    def paginate(self, session: Session, query: Select[Any], page: PageRequest) -> Page[Any]: ...

    @overload
    def paginate(
        self, session: Session, query: Select[Any], page: PageRequest, *, into: type[ModelT]
    ) -> Page[ModelT]: ...

    def paginate(
        self,
        session: Session,
        query: Select[Any],
        page: PageRequest,
        *,
        into: type[BaseModel] | None = None,
    ) -> Page[Any]:
        """Read one page of ``query`` with a sync session.

        The query's own ORDER BY is replaced by the paginator's. Items are the query's
        entities (or rows, for several columns), or ``into.model_validate`` of each.
        """
        rows_statement = self._rows_statement(query, page)
        total = session.scalar(self._count_statement(query)) if self.count_total else None
        rows = session.execute(rows_statement).all()
        return self._page(query, page, rows, total, into)

    @overload
    async def apaginate(
        self, session: AsyncSession, query: Select[Any], page: PageRequest
    ) -> Page[Any]: ...

    @overload
    async def apaginate(
        self,
        session: AsyncSession,
        query: Select[Any],
        page: PageRequest,
        *,
        into: type[ModelT],
    ) -> Page[ModelT]: ...

    async def apaginate(
        self,
        session: AsyncSession,
        query: Select[Any],
        page: PageRequest,
        *,
        into: type[BaseModel] | None = None,
    ) -> Page[Any]:
        """`paginate` with an async session."""
        rows_statement = self._rows_statement(query, page)
        total = await session.scalar(self._count_statement(query)) if self.count_total else None
        rows = (await session.execute(rows_statement)).all()
        return self._page(query, page, rows, total, into)

    def _count_statement(self, query: Select[Any]) -> Select[Any]:
        return select(func.count()).select_from(query.order_by(None).subquery())

    def _rows_statement(self, query: Select[Any], page: PageRequest) -> Select[Any]:
        statement = query.order_by(None).order_by(
            *(key.column.desc() if key.descending else key.column.asc() for key in self._keys)
        )
        statement = statement.add_columns(
            *(key.column.label(f"sessionscope_key_{n}") for n, key in enumerate(self._keys))
        )
        if page.cursor is not None:
            if page.offset:
                raise ValueError("offset cannot be combined with cursor")
            statement = statement.where(rows_after(self._keys, self.decode(page.cursor)))
        elif page.offset:
            statement = statement.offset(page.offset)
        # One row more than the page: whether a next page exists, without a second query.
        return statement.limit(page.limit + 1)

    def _page(
        self,
        query: Select[Any],
        page: PageRequest,
        rows: Sequence[Row[Any]],
        total: int | None,
        into: type[BaseModel] | None,
    ) -> Page[Any]:
        selected = len(query.column_descriptions)
        has_more = len(rows) > page.limit
        rows = rows[: page.limit]
        next_cursor = self.cursor_after(tuple(rows[-1][selected:])) if has_more else None
        items: list[Any] = [row[0] if selected == 1 else tuple(row[:selected]) for row in rows]
        if into is not None:
            items = [into.model_validate(item, from_attributes=True) for item in items]
            page_type: type[Page[Any]] = Page[into]  # type: ignore[valid-type]
        else:
            page_type = Page[Any]
        return page_type(
            items=items,
            total=total,
            limit=page.limit,
            offset=page.offset,
            next_cursor=next_cursor,
        )

    def _dependency(self) -> Callable[..., PageRequest]:
        paginator = self

        def page_params(
            limit: Annotated[
                int,
                Query(ge=1, le=self.max_limit, description="Rows per page."),
                _CANONICAL_INTEGER,
            ] = self.default_limit,
            offset: Annotated[
                int,
                Query(ge=0, le=self.max_offset, description="Rows to skip."),
                _CANONICAL_INTEGER,
            ] = 0,
            cursor: Annotated[
                str | None,
                Query(
                    description="`next_cursor` of the previous page (keyset pagination).",
                    min_length=1,
                    max_length=MAX_CURSOR_LENGTH,
                    pattern=CURSOR_PATTERN,
                ),
            ] = None,
        ) -> PageRequest:
            if cursor is not None:
                try:
                    paginator.decode(cursor)
                except InvalidCursorError as error:
                    raise _invalid("cursor", str(error)) from None
                if offset:
                    raise _invalid(
                        "offset",
                        "offset cannot be combined with cursor; a cursor already says where "
                        "the page starts",
                    )
            return PageRequest(limit=limit, offset=offset, cursor=cursor)

        return page_params


def _canonical_integer(value: object) -> object:
    """Refuse the spellings ``int()`` reads but no client means (``+1``, ``1_0``, ``01``,
    `` 1``, ``1.0``): one spelling per number, so one URL per page."""
    if isinstance(value, str) and not re.fullmatch(r"-?(?:0|[1-9][0-9]*)", value):
        raise ValueError("must be an integer in plain decimal digits")
    return value


_CANONICAL_INTEGER = BeforeValidator(_canonical_integer)


def _invalid(parameter: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", parameter), "msg": message, "type": "value_error"}]
    )
