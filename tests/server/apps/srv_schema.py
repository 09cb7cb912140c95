"""Tables of the probe app, named with a per-server prefix so concurrent runs never collide.

Shared by the app (which maps them) and the tests (which create and drop them). Constraints
are deferred wherever the backend can defer them, so a violation surfaces at COMMIT, after
the endpoint returned: PostgreSQL defers the foreign key and the unique code, SQLite the
foreign key; MariaDB defers nothing, so its violations surface at flush.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, UniqueConstraint


def make_metadata(prefix: str, backend: str) -> MetaData:
    """The probe app's tables for ``backend`` (``sqlite``, ``postgresql`` or ``mysql``)."""
    deferred_fk = {"deferrable": True, "initially": "DEFERRED"} if backend != "mysql" else {}
    deferred_unique = (
        {"deferrable": True, "initially": "DEFERRED"} if backend == "postgresql" else {}
    )
    metadata = MetaData()
    Table(
        f"{prefix}items",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(100), nullable=False, unique=True),
        Column("touched", Integer, nullable=False, default=0),
    )
    Table(f"{prefix}parents", metadata, Column("id", Integer, primary_key=True))
    Table(
        f"{prefix}children",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(100), nullable=False),
        Column("parent_id", Integer, ForeignKey(f"{prefix}parents.id", **deferred_fk)),
    )
    Table(
        f"{prefix}codes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("code", String(100), nullable=False),
        Column("name", String(100), nullable=False),
        UniqueConstraint("code", name=f"{prefix}codes_code_key", **deferred_unique),
    )
    Table(
        f"{prefix}counters",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("value", Integer, nullable=False),
    )
    return metadata
