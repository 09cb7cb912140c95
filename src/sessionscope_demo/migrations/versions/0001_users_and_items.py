"""Users and their items.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# MySQL/MariaDB: 4-byte UTF-8 (emoji) and exact comparisons, as on PostgreSQL and SQLite.
TABLE_OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def exact_string(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:
    op.create_table(
        "demo_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", exact_string(254), nullable=False),
        sa.Column("name", exact_string(100), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("email", name="uq_demo_users_email"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "demo_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "owner_id",
            sa.Integer(),
            sa.ForeignKey("demo_users.id", name="fk_demo_items_owner", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", exact_string(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_demo_items_owner_id", "demo_items", ["owner_id"])


def downgrade() -> None:
    # The index goes with its table (MariaDB refuses to drop it alone: the foreign key uses it).
    op.drop_table("demo_items")
    op.drop_table("demo_users")
