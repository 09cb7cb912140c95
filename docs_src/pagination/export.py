from __future__ import annotations

from sqlalchemy import select

from sessionscope import Database
from sessionscope.pagination import PageRequest, Paginator

from .app import Note

by_id = Paginator(Note.id, max_limit=1000, count_total=False)


def export_notes(db: Database, batch: int = 1000) -> list[str]:
    """Every note, ``batch`` rows per transaction, each row exactly once."""
    lines: list[str] = []
    page = PageRequest(limit=batch)
    while True:
        with db.transaction(readonly=True) as session:
            result = by_id.paginate(session, select(Note), page)
        lines += [f"{note.id}\t{note.author}\t{note.text}" for note in result.items]
        if result.next_cursor is None:
            return lines
        page = PageRequest(limit=batch, cursor=result.next_cursor)
