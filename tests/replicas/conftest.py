"""Fixtures of the replica tests: a real primary and streaming replica for the session.

They need Debian's ``pg_createcluster`` tools and root (see `clusters`): without them the
tests skip, under ``CI=true`` they fail. The clusters are dropped at the end of the session,
on failure too, and those an earlier, killed run left are dropped first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .clusters import (
    PRIMARY_PORT,
    REPLICA_PORT,
    Replication,
    build_pair,
    drop_leftovers,
    tools_problem,
    wait_for_replay,
)

NOTES_TABLE = """
CREATE TABLE notes (
    id serial PRIMARY KEY,
    body text NOT NULL
)
"""


def require_tools() -> None:
    problem = tools_problem()
    if problem is not None:
        message = f"cannot build a streaming replica: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: replicas are required)", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def replication() -> Iterator[Replication]:
    """A primary on 5441 and its streaming replica on 5442, with a ``notes`` table."""
    require_tools()
    drop_leftovers(range(PRIMARY_PORT, REPLICA_PORT + 1))
    pair = build_pair(PRIMARY_PORT, REPLICA_PORT)
    replication = next(pair)
    try:
        replication.primary.execute(NOTES_TABLE)
        wait_for_replay(replication.primary, replication.replica)
        yield replication
    finally:
        pair.close()
