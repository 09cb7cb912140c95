"""An async script: `async with db:` disposes of its engines when the block ends."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from docs_src.quickstart.app import Base, Note
from sessionscope import Database

db = Database.from_env(default_url="sqlite:///./sessionscope.db")  # the Quick start's


async def main() -> None:
    async with db:  # at the end of the block, every connection is closed
        async with db.transaction() as session:
            await session.run_sync(lambda sync: Base.metadata.create_all(sync.connection()))
        async with db.transaction() as session:
            session.add(Note(text="from an async script"))
        async with db.transaction(readonly=True) as session:
            print(await session.scalar(select(func.count()).select_from(Note)), "notes")


if __name__ == "__main__":
    asyncio.run(main())
