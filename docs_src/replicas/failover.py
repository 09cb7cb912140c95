from __future__ import annotations

from sessionscope import Database

# Both servers in the primary URL (libpq style, psycopg and asyncpg alike): connections go to
# the one that accepts writes, so after a promotion new connections find the new primary.
# --8<-- [start:failover]
PRIMARY = (
    "postgresql+asyncpg://app:secret@/shop"
    "?host=db1.internal:5432&host=db2.internal:5432&target_session_attrs=read-write"
)
REPLICA = "postgresql+asyncpg://app:secret@db2.internal:5432/shop"

db = Database(PRIMARY, replicas=[REPLICA], max_replica_lag=2.0)
# --8<-- [end:failover]
