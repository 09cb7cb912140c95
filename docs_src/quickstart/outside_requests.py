# Scripts, workers, CLI commands, background tasks: the same unit of work outside requests.
from __future__ import annotations

from .app import Note, db


def add_from_a_script(text: str) -> None:
    # --8<-- [start:transactions]
    with db.transaction() as session:  # sync Session: committed at the end, or rolled back
        session.add(Note(text=text))
    # --8<-- [end:transactions]


async def add_from_a_worker(text: str) -> None:
    # --8<-- [start:async_transactions]
    async with db.transaction() as session:  # AsyncSession
        session.add(Note(text=text))
    # --8<-- [end:async_transactions]
