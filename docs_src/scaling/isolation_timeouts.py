"""Isolation levels and statement timeouts, per database, per route and per transaction."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

from sessionscope import Database, DbSession, unit_of_work

# No statement of this app runs longer than 5 s (DATABASE_STATEMENT_TIMEOUT=5) ...
# --8<-- [start:section_four]
db = Database.from_env(statement_timeout=5)
# --8<-- [end:section_four]
app = FastAPI(lifespan=db.lifespan)


# ... but a route can ask for less (or more), and for another isolation level.
# --8<-- [start:section_three]
@app.get("/report", dependencies=[unit_of_work(isolation="REPEATABLE READ", statement_timeout=1)])
def report(session: DbSession) -> dict[str, int]:
    # --8<-- [end:section_three]
    # Both statements see the same snapshot of the data.
    first = session.execute(text("SELECT 1")).scalar_one()
    second = session.execute(text("SELECT 2")).scalar_one()
    return {"first": first, "second": second}


# --8<-- [start:section_five]
def nightly_cleanup() -> None:
    with db.transaction(statement_timeout=60) as session:
        # --8<-- [end:section_five]
        session.execute(text("SELECT 1"))
