"""``/items`` and ``/users/{id}/items``: create, list, search, read, update and delete items."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import AfterValidator, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sessionscope import AsyncDbSession, unit_of_work
from sessionscope.pagination import Page, PageRequest, Paginator

from .models import INT32_MAX, ITEM_NAME_LENGTH, Item
from .schemas import (
    BODY_ERRORS,
    NO_NUL,
    CanonicalInteger,
    ErrorOut,
    ItemCreate,
    ItemOut,
    ItemUpdate,
    Responses,
    idempotent,
    storable,
)
from .users import NOT_FOUND as USER_NOT_FOUND
from .users import UserId, get_user_or_404

logger = logging.getLogger(__name__)

router = APIRouter(tags=["items"])

ItemId = Annotated[int, Path(ge=1, le=INT32_MAX), CanonicalInteger]
SearchText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ITEM_NAME_LENGTH),
    NO_NUL,
    AfterValidator(storable),
]

NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "No such item"}}

item_pages = Paginator(Item.id)
ItemsPage = Annotated[PageRequest, Depends(item_pages.params)]


async def get_item_or_404(session: AsyncSession, item_id: int) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return item


@router.post(
    "/users/{user_id}/items",
    status_code=status.HTTP_201_CREATED,
    responses=idempotent({**USER_NOT_FOUND, **BODY_ERRORS}),
    # A retry under the same Idempotency-Key gets the first answer instead of a second item.
    dependencies=[unit_of_work(idempotency=True)],
)
async def create_item(user_id: UserId, body: ItemCreate, session: AsyncDbSession) -> ItemOut:
    owner = await get_user_or_404(session, user_id)
    item = Item(
        owner_id=owner.id,
        name=body.name,
        description=body.description,
        price_cents=body.price_cents,
    )
    session.add(item)
    await session.flush()
    logger.info("user %d created item %d", owner.id, item.id)
    return ItemOut.model_validate(item)


@router.get("/items")
async def list_items(
    session: AsyncDbSession,
    page: ItemsPage,
    owner_id: Annotated[int | None, Query(ge=1, le=INT32_MAX), CanonicalInteger] = None,
    q: Annotated[
        SearchText | None, Query(description="Only items whose name contains this text.")
    ] = None,
) -> Page[ItemOut]:
    query = select(Item)
    if owner_id is not None:
        query = query.where(Item.owner_id == owner_id)
    if q is not None:
        # autoescape: a client's % and _ are searched for, not used as wildcards.
        query = query.where(Item.name.icontains(q, autoescape=True))
    return await item_pages.apaginate(session, query, page, into=ItemOut)


@router.get("/items/{item_id}", responses=NOT_FOUND)
async def read_item(item_id: ItemId, session: AsyncDbSession) -> ItemOut:
    return ItemOut.model_validate(await get_item_or_404(session, item_id))


@router.patch("/items/{item_id}", responses={**NOT_FOUND, **BODY_ERRORS})
async def update_item(item_id: ItemId, body: ItemUpdate, session: AsyncDbSession) -> ItemOut:
    item = await get_item_or_404(session, item_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(item, field, value)
    await session.flush()
    return ItemOut.model_validate(item)


@router.delete("/items/{item_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_item(item_id: ItemId, session: AsyncDbSession) -> None:
    await session.delete(await get_item_or_404(session, item_id))
    await session.flush()
    logger.info("deleted item %d", item_id)
