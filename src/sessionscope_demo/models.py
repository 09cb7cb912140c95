"""ORM models. Table names carry a ``demo_`` prefix so the service can share a database."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import idempotency_table

EMAIL_LENGTH = 254
NAME_LENGTH = 100
ITEM_NAME_LENGTH = 200
DESCRIPTION_LENGTH = 2000
HASH_LENGTH = 255
INT32_MAX = 2**31 - 1
"""Largest value of an ``INTEGER`` column on every supported database."""


def exact_string(length: int) -> String:
    """A VARCHAR compared byte for byte on MySQL/MariaDB too, where the default collation
    would make ``É`` equal ``e`` and so clash with a unique index that PostgreSQL and SQLite
    accept."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def utc_now() -> datetime:
    """Now, to the second: every supported database stores that exactly, so a row reads back
    as it was written (MariaDB's DATETIME drops fractions, SQLite's and MariaDB's drop the
    time zone)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "demo_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(exact_string(EMAIL_LENGTH), unique=True)
    name: Mapped[str | None] = mapped_column(exact_string(NAME_LENGTH))
    password_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    def __repr__(self) -> str:
        # Never the hash: reprs end up in logs and tracebacks.
        return f"<User id={self.id}>"


class Item(Base):
    __tablename__ = "demo_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("demo_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(exact_string(ITEM_NAME_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    def __repr__(self) -> str:
        return f"<Item id={self.id} owner_id={self.owner_id}>"


idempotency_keys = idempotency_table(Base.metadata)
"""The keys and stored responses of the POST routes, created by migration 0003."""
