"""Prints what each feature of docs/observability.md shows, on a fresh SQLite file.

python -m docs_src.observability.capture
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sessionscope-observability-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{folder / 'books.db'}")
    logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")

    from fastapi.testclient import TestClient

    from docs_src.observability.app import Author, Base, Book, app, db

    Base.metadata.create_all(db.sync_engine)
    with db.transaction() as session:
        for number in range(12):
            books = [Book(title=f"Book {number}.{k}") for k in range(2)]
            session.add(Author(name=f"Author {number}", books=books))
    db.close()

    with TestClient(app) as client:
        print("$ GET /authors/n-plus-one")
        response = client.get("/authors/n-plus-one")
        print("server-timing:", response.headers["server-timing"])
        print("$ GET /authors")
        response = client.get("/authors")
        print("server-timing:", response.headers["server-timing"])
        print("$ GET /authors/export")
        print(client.get("/authors/export").json())
        stats = db.stats()
        print("$ db.stats()")
        print("pools:", dict(stats.pools))
        print("commits:", stats.commits, "rollbacks:", stats.rollbacks)
        for route in stats.routes:
            print(
                f"{route.method} {route.route}: units={route.units} "
                f"statements={route.statements} hold_sum={route.hold.sum:.4f}s "
                f"wait_sum={route.pool_wait.sum:.4f}s"
            )
        print("$ GET /report")
        print(client.get("/report").json())
        print("$ GET /metrics (excerpt)")
        scrape = client.get("/metrics/").text
        for line in scrape.splitlines():
            shown = line.startswith("sessionscope_") and (
                '/authors"' in line or "_pool_" in line or "units_total" in line
            )
            if shown and ("_bucket" not in line or 'le="0.005"' in line or 'le="+Inf"' in line):
                print(line)

    print("$ OpenTelemetry spans of GET /authors (docs_src/observability/tracing.py)")
    show_spans()


def show_spans() -> None:
    from fastapi.testclient import TestClient

    from docs_src.observability import app as books
    from docs_src.observability import tracing

    tracing.app.include_router(books.app.router)
    tracing.exporter.clear()
    with TestClient(tracing.app) as client:
        client.get("/authors")
    spans = tracing.exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans if span.context is not None}

    def depth(span: object) -> int:
        parent = getattr(span, "parent", None)
        if parent is None or parent.span_id not in by_id:
            return 0
        return 1 + depth(by_id[parent.span_id])

    prefixes = ("sessionscope.", "db.statement_count", "http.route")
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        attributes = dict(span.attributes or {})
        shown = {k: v for k, v in attributes.items() if k.startswith(prefixes)}
        line = f"{'  ' * depth(span)}{span.kind.name.lower()} {span.name[:60]} {shown or ''}"
        print(line.rstrip())


if __name__ == "__main__":
    main()
