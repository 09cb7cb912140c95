"""FastAPI's SQL tutorial (SQLModel, heroes) on sessionscope, async endpoints.

What changed from the tutorial: the engine, ``get_session`` and ``SessionDep`` are gone
(`sessionscope.sqlmodel.AsyncDbSession` is SQLModel's ``AsyncSession``, ``exec()`` included); every
``commit()`` is gone (the response decides: below 400 commits before the response is sent,
an error rolls back); ``commit()`` + ``refresh()`` became ``flush()``, which assigns the id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query
from sqlmodel import Field, SQLModel, select

from sessionscope import Database
from sessionscope.sqlmodel import AsyncDbSession


class HeroBase(SQLModel):
    name: str = Field(index=True)
    age: int | None = Field(default=None, index=True)


class Hero(HeroBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    secret_name: str


class HeroPublic(HeroBase):
    id: int


class HeroCreate(HeroBase):
    secret_name: str


class HeroUpdate(HeroBase):
    name: str | None = None  # type: ignore[assignment]
    age: int | None = None
    secret_name: str | None = None


db = Database.from_env(default_url="sqlite:///./heroes.db")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with db.async_engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    yield


app = FastAPI(lifespan=lifespan)
db.init_app(app)  # the database's lifespan runs around the app's own


@app.post("/heroes/", response_model=HeroPublic)
async def create_hero(hero: HeroCreate, session: AsyncDbSession) -> Hero:
    db_hero = Hero.model_validate(hero)
    session.add(db_hero)
    await session.flush()  # assigns db_hero.id; the COMMIT happens before the response is sent
    return db_hero


@app.get("/heroes/", response_model=list[HeroPublic])
async def read_heroes(
    session: AsyncDbSession,
    offset: int = 0,
    limit: Annotated[int, Query(le=100)] = 100,
) -> list[Hero]:
    return list((await session.exec(select(Hero).offset(offset).limit(limit))).all())


@app.get("/heroes/{hero_id}", response_model=HeroPublic)
async def read_hero(hero_id: int, session: AsyncDbSession) -> Hero:
    hero = await session.get(Hero, hero_id)
    if not hero:
        raise HTTPException(status_code=404, detail="Hero not found")
    return hero


@app.patch("/heroes/{hero_id}", response_model=HeroPublic)
async def update_hero(hero_id: int, hero: HeroUpdate, session: AsyncDbSession) -> Hero:
    hero_db = await session.get(Hero, hero_id)
    if not hero_db:
        raise HTTPException(status_code=404, detail="Hero not found")
    hero_db.sqlmodel_update(hero.model_dump(exclude_unset=True))
    await session.flush()
    return hero_db


@app.delete("/heroes/{hero_id}")
async def delete_hero(hero_id: int, session: AsyncDbSession) -> dict[str, bool]:
    hero = await session.get(Hero, hero_id)
    if not hero:
        raise HTTPException(status_code=404, detail="Hero not found")
    await session.delete(hero)
    return {"ok": True}
