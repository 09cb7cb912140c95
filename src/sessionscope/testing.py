"""Test helpers for apps built on sessionscope; pytest-free (the pytest plugin wraps them).

Each test runs inside one outer transaction that is rolled back at the end, whatever the
test did: the app's requests, its ``db.transaction()`` blocks and the test's own sessions all
share that transaction's connection, and their ``commit()`` / ``rollback()`` work on
SAVEPOINTs. Sync::

    with rollback_after(db) as bound, app_client(app) as client:
        client.post("/items", json={"name": "x"})
        assert bound.session().scalar(select(func.count()).select_from(Item)) == 1

Async::

    async with async_rollback_after(db) as bound, async_app_client(app) as client:
        await client.post("/items", json={"name": "x"})
        assert await bound.session().scalar(select(func.count()).select_from(Item)) == 1

Bind before the client starts: the app's lifespan then runs inside the test transaction too.

``with fail_on_query_budget():`` turns exceeded query budgets (N+1 patterns) into a
`QueryBudgetExceededError` at the end of the block.
"""

from ._binding import (
    AsyncBoundTransaction,
    BoundTransaction,
    async_rollback_after,
    rollback_after,
)
from ._discovery import Flavour, app_flavour, database_of, session_flavours
from ._observe import fail_on_query_budget
from ._testclient import app_client, async_app_client

__all__ = [
    "AsyncBoundTransaction",
    "BoundTransaction",
    "Flavour",
    "app_client",
    "app_flavour",
    "async_app_client",
    "async_rollback_after",
    "database_of",
    "fail_on_query_budget",
    "rollback_after",
    "session_flavours",
]
