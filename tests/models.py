"""Tables of the core tests (prefixed ``core_``: other suites share the database servers)."""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "core_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    counter: Mapped[int] = mapped_column(Integer, default=0)


class Parent(Base):
    __tablename__ = "core_parents"

    id: Mapped[int] = mapped_column(primary_key=True)


class Child(Base):
    """Its foreign key is checked at COMMIT where the database can defer it (SQLite,
    PostgreSQL); MariaDB checks it at flush."""

    __tablename__ = "core_children"
    __table_args__ = (
        ForeignKeyConstraint(
            ["parent_id"], ["core_parents.id"], deferrable=True, initially="DEFERRED"
        ).ddl_if(dialect=("sqlite", "postgresql")),
        ForeignKeyConstraint(["parent_id"], ["core_parents.id"]).ddl_if(dialect="mysql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(Integer)
