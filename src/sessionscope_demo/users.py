"""``/users``: create, list, read, update and delete users."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sessionscope import AsyncDbSession, unit_of_work
from sessionscope.pagination import Page, PageRequest, Paginator

from .models import INT32_MAX, Item, User
from .passwords import PasswordHasher
from .schemas import (
    BODY_ERRORS,
    CanonicalInteger,
    ErrorOut,
    Responses,
    UserCreate,
    UserOut,
    UserUpdate,
    idempotent,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/users", tags=["users"])

UserId = Annotated[int, Path(ge=1, le=INT32_MAX), CanonicalInteger]

NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "No such user"}}
CONFLICT: Responses = {409: {"model": ErrorOut, "description": "The email address is taken"}}
EMAIL_TAKEN = "a user with this email address already exists"

user_pages = Paginator(User.id)
UsersPage = Annotated[PageRequest, Depends(user_pages.params)]


async def get_user_or_404(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} not found")
    return user


async def _flush_unique_email(session: AsyncSession) -> None:
    """Flush, turning the unique-email violation of a concurrent sign-up into a clear 409.

    The check before the insert answers the common case; two requests racing past it both
    insert, and the database's unique index refuses the second one here.
    """
    try:
        await session.flush()
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, EMAIL_TAKEN) from None


async def _refuse_taken_email(session: AsyncSession, email: str) -> None:
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, EMAIL_TAKEN)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=idempotent({**CONFLICT, **BODY_ERRORS}),
    # A client that lost the answer (a timeout, a cut connection, a 503 whose outcome is
    # unknown) retries under its Idempotency-Key and gets the first answer, not a 409.
    dependencies=[unit_of_work(idempotency=True)],
)
async def create_user(
    body: UserCreate, session: AsyncDbSession, passwords: PasswordHasher
) -> UserOut:
    # Hash before the first query: on SQLite the write lock is taken at the first statement
    # and held until COMMIT, so the slow part stays outside it.
    password_hash = await passwords.hash(body.password)
    await _refuse_taken_email(session, body.email)
    user = User(email=body.email, name=body.name, password_hash=password_hash)
    session.add(user)
    await _flush_unique_email(session)
    logger.info("created user %d", user.id)
    return UserOut.model_validate(user)


@router.get("")
async def list_users(session: AsyncDbSession, page: UsersPage) -> Page[UserOut]:
    return await user_pages.apaginate(session, select(User), page, into=UserOut)


@router.get("/{user_id}", responses=NOT_FOUND)
async def read_user(user_id: UserId, session: AsyncDbSession) -> UserOut:
    return UserOut.model_validate(await get_user_or_404(session, user_id))


@router.patch("/{user_id}", responses={**NOT_FOUND, **CONFLICT, **BODY_ERRORS})
async def update_user(
    user_id: UserId, body: UserUpdate, session: AsyncDbSession, passwords: PasswordHasher
) -> UserOut:
    password_hash = await passwords.hash(body.password) if body.password is not None else None
    user = await get_user_or_404(session, user_id)
    if body.email is not None and body.email != user.email:
        await _refuse_taken_email(session, body.email)
        user.email = body.email
    if body.name is not None:
        user.name = body.name
    if password_hash is not None:
        user.password_hash = password_hash
    await _flush_unique_email(session)
    if password_hash is not None:
        logger.info("changed the password of user %d", user.id)
    return UserOut.model_validate(user)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_user(user_id: UserId, session: AsyncDbSession) -> None:
    """Delete the user and every item they own, in one transaction."""
    user = await get_user_or_404(session, user_id)
    # Explicit rather than left to ON DELETE CASCADE alone: the items go in this unit of work
    # whatever the database's foreign-key settings.
    await session.execute(delete(Item).where(Item.owner_id == user_id))
    await session.delete(user)
    await session.flush()
    logger.info("deleted user %d and their items", user_id)
