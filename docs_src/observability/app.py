"""An app with every visibility feature on: the examples of docs/observability.md.

Run it with ``uvicorn docs_src.observability.app:app`` (``DATABASE_URL`` picks the database);
``/metrics`` serves the Prometheus metrics.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import make_asgi_app
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from sessionscope import Database, DbSession, query_stats, unit_of_work

# --8<-- [start:configured]
db = Database.from_env(
    server_timing=True,  # Server-Timing: db;dur=...;desc="N queries"
    query_budget=10,  # warn when a request runs more than 10 statements
    slow_query_threshold=0.25,  # log statements slower than 250 ms
    prometheus=True,  # export to prometheus_client's registry
)
app = FastAPI(lifespan=db.lifespan)
app.mount("/metrics", make_asgi_app())
# --8<-- [end:configured]


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    books: Mapped[list[Book]] = relationship(order_by="Book.id")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    title: Mapped[str] = mapped_column(String(200))


class AuthorOut(BaseModel):
    name: str
    books: list[str]


@app.get("/authors/n-plus-one")
def authors_n_plus_one(session: DbSession) -> list[AuthorOut]:
    authors = session.scalars(select(Author).order_by(Author.id))
    # Each author's books load on first access: one SELECT per author.
    return [AuthorOut(name=a.name, books=[b.title for b in a.books]) for a in authors]


@app.get("/authors")
def authors(session: DbSession) -> list[AuthorOut]:
    query = select(Author).options(selectinload(Author.books)).order_by(Author.id)
    authors = session.scalars(query)
    return [AuthorOut(name=a.name, books=[b.title for b in a.books]) for a in authors]


# --8<-- [start:route_budget]
@app.get("/authors/export", dependencies=[unit_of_work(query_budget=1000)])
def export(session: DbSession) -> dict[str, int]:
    """A route known to run many statements sets its own budget."""
    count = sum(len(a.books) for a in session.scalars(select(Author)))
    stats = query_stats()  # this request's statements so far
    return {"books": count, "statements": stats.statements if stats else 0}
    # --8<-- [end:route_budget]


@app.get("/report")
def report(session: DbSession, depth: int = 2_000_000) -> dict[str, int]:
    """A slow statement (a long recursive count) for the slow-query log."""
    sql = text(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :depth) "
        "SELECT count(*) FROM n"
    )
    return {"rows": session.scalar(sql, {"depth": depth}) or 0}
