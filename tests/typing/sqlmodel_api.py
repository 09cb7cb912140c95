"""Realistic user code on SQLModel: ``exec()`` on sessionscope's sessions type-checks."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import ScalarResult
from sqlmodel import Field, Session, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession
from typing_extensions import assert_type

from sessionscope import Database
from sessionscope.sqlmodel import AsyncDbSession, DbSession, transaction


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str


db = Database.from_env(session_class="sqlmodel")
app = FastAPI()
db.init_app(app)


@app.get("/heroes")
def read_heroes(session: DbSession) -> list[str]:
    assert_type(session, Session)
    heroes = session.exec(select(Hero))
    assert_type(heroes, ScalarResult[Hero])
    return [hero.name for hero in heroes]


@app.get("/heroes/async")
async def read_heroes_async(session: AsyncDbSession) -> list[str]:
    assert_type(session, AsyncSession)
    heroes = await session.exec(select(Hero))
    return [hero.name for hero in heroes]


def script() -> None:
    with db, transaction(db) as session:
        assert_type(session, Session)
        session.add(Hero(name="Ada"))


async def worker() -> list[Hero]:
    async with db, transaction(db, readonly=True) as session:
        assert_type(session, AsyncSession)
        return list(await session.exec(select(Hero)))
