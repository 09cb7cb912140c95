"""Create the ``items`` table (``--create``) and/or reset it to 10,000 known rows.

Run by the benchmark runner with the core venv's Python: ``python seed_items.py URL [--create]``.
Resetting keeps the table (TRUNCATE on PostgreSQL) so servers' cached prepared statements stay
valid between runs.
"""

from __future__ import annotations

import sys

from items_model import Base, Item
from sqlalchemy import create_engine, insert, text

ROWS = 10_000


def main(url: str, create: bool) -> None:
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        if create:
            Base.metadata.drop_all(connection)
            Base.metadata.create_all(connection)
        if postgres:
            connection.execute(text("TRUNCATE items RESTART IDENTITY"))
            connection.execute(
                text(
                    "INSERT INTO items (name, description) SELECT 'item-' || n, "
                    "'seeded row ' || n FROM generate_series(1, :rows) AS n"
                ),
                {"rows": ROWS},
            )
        else:
            connection.execute(text("DELETE FROM items"))
            connection.execute(
                insert(Item),
                [
                    {"id": n, "name": f"item-{n}", "description": f"seeded row {n}"}
                    for n in range(1, ROWS + 1)
                ],
            )
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE items"))
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], "--create" in sys.argv[2:])
