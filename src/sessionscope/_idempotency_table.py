"""The table of idempotency keys (`_idempotency`) and the deletion of expired keys."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Session

TABLE_NAME = "sessionscope_idempotency_keys"
MAX_KEY_LENGTH = 255
"""The longest key accepted, in characters (Stripe's limit)."""

ROUTE_LENGTH = 255


def idempotency_table(metadata: MetaData) -> Table:
    """The table of idempotency keys (``sessionscope_idempotency_keys``), added to
    ``metadata`` so that ``metadata.create_all()`` and Alembic's autogenerate create it with
    the app's own tables. Returns the table already there when ``metadata`` has it."""
    existing = metadata.tables.get(TABLE_NAME)
    if existing is not None:
        return existing
    return Table(
        TABLE_NAME,
        metadata,
        # sha256 of the route and the key: fixed length, so MariaDB indexes it whole.
        Column("key_hash", String(64), primary_key=True),
        Column("route", String(ROUTE_LENGTH), nullable=False),
        Column("idempotency_key", String(MAX_KEY_LENGTH), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response_headers", Text, nullable=True),
        # Base64: aiomysql cannot send bytes parameters with PyMySQL >= 1.2.
        Column(
            "response_body",
            Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"),
            nullable=True,
        ),
        Column("created_at", DateTime, nullable=False),
        Column("expires_at", DateTime, nullable=False),
        Index(f"ix_{TABLE_NAME}_expires_at", "expires_at"),
    )


KEYS = idempotency_table(MetaData())


def utc_now() -> datetime:
    # Naive UTC to the second: what every supported database's DATETIME stores exactly.
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def delete_expired_idempotency_keys(connection: Connection | Session) -> int:
    """Delete the expired idempotency keys; returns how many. Expired keys are treated as
    new already: this only keeps the table small. Run it from a scheduled job, e.g.
    ``with db.transaction() as session: delete_expired_idempotency_keys(session)``, or with
    ``sessionscope db purge-idempotency-keys``."""
    result = connection.execute(delete(KEYS).where(KEYS.c.expires_at <= utc_now()))
    return int(result.rowcount)  # type: ignore[attr-defined]
