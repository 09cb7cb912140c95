"""A user's name is optional: a sign-up needs only an email address and a password.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _name_type() -> sa.types.TypeEngine[str]:
    return sa.String(100).with_variant(
        mysql.VARCHAR(100, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:
    with op.batch_alter_table("demo_users") as table:
        table.alter_column("name", existing_type=_name_type(), nullable=True)


def downgrade() -> None:
    # The older schema needs a name: users created without one get an empty name.
    op.execute(sa.text("UPDATE demo_users SET name = '' WHERE name IS NULL"))
    with op.batch_alter_table("demo_users") as table:
        table.alter_column("name", existing_type=_name_type(), nullable=False)
