"""A model and a sync and an async app whose endpoints commit and roll back on their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sessionscope import AsyncDbSession, Database, DbSession


@dataclass
class Schema:
    """One table of a test's own (named per test: other suites share the servers)."""

    metadata: MetaData
    items: Table

    def create_sync(self, db: Database) -> None:
        self.metadata.create_all(db.sync_engine)

    async def create_async(self, db: Database) -> None:
        async with db.async_engine.begin() as connection:
            await connection.run_sync(self.metadata.create_all)


def schema(table: str) -> Schema:
    metadata = MetaData()
    items = Table(
        table,
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(50), nullable=False, unique=True),
    )
    return Schema(metadata, items)


def names_sync(session: Session, items: Table) -> list[str]:
    return list(session.scalars(select(items.c.name).order_by(items.c.name)))


async def names_async(session: AsyncSession, items: Table) -> list[str]:
    return list(await session.scalars(select(items.c.name).order_by(items.c.name)))


def count_sync(session: Session, items: Table) -> int:
    return session.scalar(select(func.count()).select_from(items)) or 0


def sync_app(db: Database, items: Table) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/twice/{name}")
    def commit_twice_roll_back_once(name: str, session: DbSession) -> dict[str, Any]:
        session.execute(items.insert().values(name=f"{name}-1"))
        session.commit()
        session.execute(items.insert().values(name=f"{name}-undone"))
        session.rollback()
        session.execute(items.insert().values(name=f"{name}-2"))
        session.commit()
        return {"names": names_sync(session, items)}

    @app.post("/reject/{name}")
    def write_then_reject(name: str, session: DbSession) -> None:
        session.execute(items.insert().values(name=name))
        raise HTTPException(400, "rejected")

    @app.post("/items/{name}", status_code=201)
    def create(name: str, session: DbSession) -> None:
        session.execute(items.insert().values(name=name))

    @app.get("/items")
    def names(session: DbSession) -> list[str]:
        return names_sync(session, items)

    return app


def async_app(db: Database, items: Table) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/twice/{name}")
    async def commit_twice_roll_back_once(name: str, session: AsyncDbSession) -> dict[str, Any]:
        await session.execute(items.insert().values(name=f"{name}-1"))
        await session.commit()
        await session.execute(items.insert().values(name=f"{name}-undone"))
        await session.rollback()
        await session.execute(items.insert().values(name=f"{name}-2"))
        await session.commit()
        return {"names": await names_async(session, items)}

    @app.post("/reject/{name}")
    async def write_then_reject(name: str, session: AsyncDbSession) -> None:
        await session.execute(items.insert().values(name=name))
        raise HTTPException(400, "rejected")

    @app.post("/items/{name}", status_code=201)
    async def create(name: str, session: AsyncDbSession) -> None:
        await session.execute(items.insert().values(name=name))

    @app.get("/items")
    async def names(session: AsyncDbSession) -> list[str]:
        return await names_async(session, items)

    return app
