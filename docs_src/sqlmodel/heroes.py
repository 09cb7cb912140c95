"""FastAPI's SQL tutorial (SQLModel, heroes) on sessionscope, sync endpoints.

What changed from the tutorial: the engine, ``get_session`` and ``SessionDep`` are gone
(`sessionscope.sqlmodel.DbSession` is SQLModel's ``Session``, ``exec()`` included); every
``commit()`` is gone (the response decides: below 400 commits before the response is sent,
an error rolls back); ``commit()`` + ``refresh()`` became ``flush()``, which assigns the id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Field, SQLModel, select

from sessionscope import Database

# --8<-- [start:import]
from sessionscope.sqlmodel import DbSession

# --8<-- [end:import]


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
    await run_in_threadpool(SQLModel.metadata.create_all, db.sync_engine)
    yield


app = FastAPI(lifespan=lifespan)
db.init_app(app)  # the database's lifespan runs around the app's own


@app.post("/heroes/", response_model=HeroPublic)
def create_hero(hero: HeroCreate, session: DbSession) -> Hero:
    db_hero = Hero.model_validate(hero)
    session.add(db_hero)
    session.flush()  # assigns db_hero.id; the COMMIT happens before the response is sent
    return db_hero


# --8<-- [start:read_heroes]
@app.get("/heroes/", response_model=list[HeroPublic])
def read_heroes(
    session: DbSession,
    offset: int = 0,
    limit: Annotated[int, Query(le=100)] = 100,
) -> list[Hero]:
    return list(session.exec(select(Hero).offset(offset).limit(limit)).all())
    # --8<-- [end:read_heroes]


@app.get("/heroes/{hero_id}", response_model=HeroPublic)
def read_hero(hero_id: int, session: DbSession) -> Hero:
    hero = session.get(Hero, hero_id)
    if not hero:
        raise HTTPException(status_code=404, detail="Hero not found")
    return hero


@app.patch("/heroes/{hero_id}", response_model=HeroPublic)
def update_hero(hero_id: int, hero: HeroUpdate, session: DbSession) -> Hero:
    hero_db = session.get(Hero, hero_id)
    if not hero_db:
        raise HTTPException(status_code=404, detail="Hero not found")
    hero_db.sqlmodel_update(hero.model_dump(exclude_unset=True))
    session.flush()
    return hero_db


@app.delete("/heroes/{hero_id}")
def delete_hero(hero_id: int, session: DbSession) -> dict[str, bool]:
    hero = session.get(Hero, hero_id)
    if not hero:
        raise HTTPException(status_code=404, detail="Hero not found")
    session.delete(hero)
    return {"ok": True}
