"""One page of rows: the total, the rows, and the cursor of the next page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from .pagination import PageRequest, encode_cursor


@dataclass(frozen=True)
class PageRows:
    rows: Sequence[Any]
    total: int
    limit: int
    offset: int
    next_cursor: str | None


async def fetch_page(
    session: AsyncSession,
    query: Select[Any],
    id_column: InstrumentedAttribute[int],
    page: PageRequest,
) -> PageRows:
    """Run ``query`` for one page, ordered by ``id_column``.

    One row more than the limit is read to know whether a next page exists without a second
    query. The total counts every row that matches the query's filters.
    """
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    ordered = query.order_by(id_column)
    if page.after_id is not None:
        ordered = ordered.where(id_column > page.after_id)
    else:
        ordered = ordered.offset(page.offset)
    rows = (await session.scalars(ordered.limit(page.limit + 1))).all()
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    return PageRows(
        rows=rows,
        total=total or 0,
        limit=page.limit,
        offset=page.offset,
        next_cursor=encode_cursor(rows[-1].id) if has_more else None,
    )
