"""PgBouncer in transaction pooling mode in front of PostgreSQL.

Run with ``DATABASE_URL=postgresql+asyncpg://app@pgbouncer-host:6432/app`` and
``DATABASE_PGBOUNCER=true``.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

from sessionscope import AsyncDbSession, Database

# --8<-- [start:section_one]
db = Database.from_env()  # DATABASE_PGBOUNCER=true, or Database(url, pgbouncer=True)
# --8<-- [end:section_one]
app = FastAPI(lifespan=db.lifespan)


@app.get("/answer")
async def answer(session: AsyncDbSession) -> int:
    # Executed many times on every connection: never a named prepared statement.
    return int((await session.execute(text("SELECT :n * 2"), {"n": 21})).scalar_one())
