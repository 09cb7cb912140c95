"""A script outside any app (a cron job, a CLI command, a worker).

`with db:` disposes of the engines the script used when the block ends: every connection is
closed, none is left for the garbage collector (Python 3.13 reports that as a ResourceWarning).
"""

from __future__ import annotations

from sqlalchemy import func, select

from docs_src.quickstart.app import Base, Note
from sessionscope import Database

db = Database.from_env(default_url="sqlite:///./sessionscope.db")  # the Quick start's


def main() -> None:
    # --8<-- [start:script]
    with db:  # at the end of the block, every connection is closed
        with db.transaction() as session:
            Base.metadata.create_all(session.connection())
        with db.transaction() as session:  # commits when the block ends without an error
            session.add(Note(text="from a script"))
        with db.transaction(readonly=True) as session:
            print(session.scalar(select(func.count()).select_from(Note)), "notes")
    # --8<-- [end:script]


if __name__ == "__main__":
    main()
