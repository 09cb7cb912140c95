"""sessionscope.pagination: offset and keyset pages on every database, sync and async, and
cursors that cannot be forged."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Annotated, Any

import anyio
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Time,
    Uuid,
    func,
    inspect,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import ConfigurationError, Database, DbSession
from sessionscope.pagination import InvalidCursorError, Page, PageRequest, Paginator


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "core_paged_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(60))
    note: Mapped[str | None] = mapped_column(String(20), nullable=True)
    stamp: Mapped[datetime] = mapped_column(DateTime, default=datetime(2026, 1, 1))


class RowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rank: int
    label: str


SEEDED = 30
RANKS = 5  # many rows share a rank: only the tiebreaker makes the order total
_labels = itertools.count()


def new_rows(count: int, rank: int) -> list[Row]:
    return [Row(rank=rank, label=f"row {next(_labels):04d}") for _ in range(count)]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    Base.metadata.drop_all(database.sync_engine)
    Base.metadata.create_all(database.sync_engine)
    with database.transaction() as session:
        for n in range(SEEDED):
            session.add_all(new_rows(1, rank=n % RANKS))
    yield database
    Base.metadata.drop_all(database.sync_engine)
    database.sync_engine.dispose()


ORDERS = {
    "id": (Row.id,),
    "rank,id": (Row.rank, Row.id),
    "rank desc,id desc": (Row.rank.desc(), Row.id.desc()),
}


def sort_key(order: str, row: RowOut) -> tuple[Any, ...]:
    return {
        "id": (row.id,),
        "rank,id": (row.rank, row.id),
        "rank desc,id desc": (-row.rank, -row.id),
    }[order]


def inserts_between_pages(order: str) -> list[Row]:
    """Rows another transaction commits while the listing is being read: some sort before
    the current position (an offset walk would then repeat rows), some after it."""
    if order == "rank desc,id desc":
        return new_rows(2, rank=RANKS + 1) + new_rows(1, rank=-1)
    return new_rows(2, rank=-1) + new_rows(1, rank=RANKS + 1)


def walk_sync(
    db: Database, paginator: Paginator, order: str, *, keyset: bool
) -> tuple[list[RowOut], set[int]]:
    seen: list[RowOut] = []
    page = PageRequest(limit=4)
    for _ in range(100):
        with db.transaction(readonly=True) as session:
            result = paginator.paginate(session, select(Row), page, into=RowOut)
        seen += result.items
        if result.next_cursor is None:
            break
        with db.transaction() as session:
            session.add_all(inserts_between_pages(order))
        if keyset:
            page = PageRequest(limit=4, cursor=result.next_cursor)
        else:
            page = PageRequest(limit=4, offset=page.offset + 4)
    with db.transaction(readonly=True) as session:
        original = set(session.scalars(select(Row.id).where(Row.id <= SEEDED)))
    return seen, original


def walk_async(db: Database, paginator: Paginator, order: str) -> tuple[list[RowOut], set[int]]:
    async def main() -> tuple[list[RowOut], set[int]]:
        try:
            seen: list[RowOut] = []
            page = PageRequest(limit=4)
            for _ in range(100):
                async with db.transaction(readonly=True) as session:
                    result = await paginator.apaginate(session, select(Row), page, into=RowOut)
                seen += result.items
                if result.next_cursor is None:
                    break
                async with db.transaction() as session:
                    session.add_all(inserts_between_pages(order))
                page = PageRequest(limit=4, cursor=result.next_cursor)
            async with db.transaction(readonly=True) as session:
                original = set(await session.scalars(select(Row.id).where(Row.id <= SEEDED)))
            return seen, original
        finally:
            await db.async_engine.dispose()

    return anyio.run(main)


@pytest.mark.parametrize("order", ["id", "rank,id", "rank desc,id desc"])
def test_keyset_pages_hold_every_row_once_under_concurrent_inserts(
    db: Database, flavour: str, order: str
) -> None:
    paginator = Paginator(*ORDERS[order])
    if flavour == "sync":
        seen, original = walk_sync(db, paginator, order, keyset=True)
    else:
        seen, original = walk_async(db, paginator, order)
    ids = [row.id for row in seen]
    assert len(ids) == len(set(ids)), "a row came twice"
    assert original <= set(ids), "a row present all along was skipped"
    assert len(original) == SEEDED
    keys = [sort_key(order, row) for row in seen]
    assert keys == sorted(keys)  # one order across pages, rows inserted meanwhile included


def test_offset_pages_repeat_rows_under_the_same_inserts(db: Database) -> None:
    """What the keyset test guards against: an offset walk sees a row twice when rows are
    inserted before its position."""
    seen, _ = walk_sync(db, Paginator(Row.rank, Row.id), "rank,id", keyset=False)
    ids = [row.id for row in seen]
    assert len(ids) > len(set(ids))


def test_offset_pages_total_and_last_page(db: Database) -> None:
    paginator = Paginator(Row.rank, Row.id, max_limit=50)
    query = select(Row).where(Row.rank == 1)
    with db.transaction(readonly=True) as session:
        first = paginator.paginate(session, query, PageRequest(limit=4), into=RowOut)
        last = paginator.paginate(session, query, PageRequest(limit=4, offset=4), into=RowOut)
        empty = paginator.paginate(session, query, PageRequest(limit=4, offset=50))
        everything = paginator.paginate(session, query, PageRequest(limit=50))
    assert isinstance(first, Page)
    assert (first.total, first.limit, first.offset) == (SEEDED // RANKS, 4, 0)
    assert first.next_cursor is not None
    assert [row.rank for row in first.items] == [1] * 4
    assert [row.id for row in last.items] == [22, 27]
    assert (len(last.items), last.offset, last.next_cursor) == (2, 4, None)
    assert (empty.items, empty.total, empty.next_cursor) == ([], 6, None)
    assert [row.id for row in everything.items] == [2, 7, 12, 17, 22, 27]
    assert all(isinstance(row, Row) for row in everything.items)
    assert [item.id for item in first.items + last.items] == [2, 7, 12, 17, 22, 27]


def test_several_columns_come_back_as_tuples_and_the_count_can_be_skipped(
    db: Database,
) -> None:
    paginator = Paginator(Row.id.desc(), count_total=False)
    with db.transaction(readonly=True) as session:
        page = paginator.paginate(session, select(Row.id, Row.label), PageRequest(limit=2))
        after = paginator.paginate(
            session, select(Row.id, Row.label), PageRequest(limit=2, cursor=page.next_cursor)
        )
    assert page.total is None
    assert [item[0] for item in page.items + after.items] == [30, 29, 28, 27]
    assert isinstance(page.items[0][1], str)


# -- cursors that are not ours ------------------------------------------------------------


def _b64(document: object) -> str:
    raw = json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _fingerprint(paginator: Paginator) -> str:
    cursor = paginator.cursor_after((1,))
    return str(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[0])


def forged_cursors(paginator: Paginator) -> list[str]:
    fingerprint = _fingerprint(paginator)
    return [
        "",
        "not a cursor",
        "!!!!",
        "x" * 2000,
        "é" * 10,
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _b64({"after": 1}),
        _b64([fingerprint]),
        _b64([fingerprint, []]),
        _b64([fingerprint, [1, 2]]),
        _b64([fingerprint, ["1"]]),
        _b64([fingerprint, [True]]),
        _b64([fingerprint, [1.5]]),
        _b64([fingerprint, [None]]),
        _b64([fingerprint, [2**31]]),
        _b64([fingerprint, [-(2**31) - 1]]),
        _b64([fingerprint, ["1; DROP TABLE core_paged_rows"]]),
        _b64(["another listing", [1]]),
        paginator.cursor_after((1,)) + ".c2lnbmF0dXJl",
    ]


def test_forged_cursors_are_refused_before_any_query(db: Database) -> None:
    paginator = Paginator(Row.id)
    with db.transaction(readonly=True) as session:
        for cursor in forged_cursors(paginator):
            with pytest.raises(InvalidCursorError, match="not a cursor returned by this listing"):
                paginator.paginate(session, select(Row), PageRequest(limit=2, cursor=cursor))
            with pytest.raises(ValueError, match="not a cursor"):
                paginator.request(cursor=cursor)
        assert paginator.decode(paginator.cursor_after((7,))) == (7,)


def test_a_text_key_reaches_the_database_only_as_a_bound_value(db: Database) -> None:
    """Without a secret a client can choose the key values, but they are typed values
    compared by the paginator's own WHERE clause: SQL in them is just text."""
    paginator = Paginator(Row.label, Row.id)
    sql = "zzz' OR 1=1; DROP TABLE core_paged_rows; --"
    cursor = _b64([_fingerprint_two(paginator), [sql, 0]])
    with db.transaction(readonly=True) as session:
        page = paginator.paginate(session, select(Row), PageRequest(limit=5, cursor=cursor))
    assert page.items == []  # every label sorts before "zzz"
    assert inspect(db.sync_engine).has_table("core_paged_rows")
    for bad in (["a\x00b", 0], ["x" * 61, 0], ["\ud800", 0]):
        with pytest.raises(InvalidCursorError):
            paginator.decode(_b64([_fingerprint_two(paginator), bad]))


def _fingerprint_two(paginator: Paginator) -> str:
    cursor = paginator.cursor_after(("a", 1))
    return str(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[0])


def test_a_signed_paginator_accepts_only_its_own_cursors(db: Database) -> None:
    signed = Paginator(Row.id, secret="s3cret")
    other_secret = Paginator(Row.id, secret="another")
    unsigned = Paginator(Row.id)
    with db.transaction(readonly=True) as session:
        first = signed.paginate(session, select(Row), PageRequest(limit=3))
        assert first.next_cursor is not None
        second = signed.paginate(
            session, select(Row), PageRequest(limit=3, cursor=first.next_cursor)
        )
    assert [row.id for row in second.items] == [4, 5, 6]
    payload, _, signature = first.next_cursor.partition(".")
    tampered = _b64([_fingerprint(unsigned), [100]]) + "." + signature
    for cursor in (payload, tampered, unsigned.cursor_after((3,)), other_secret.cursor_after((3,))):
        with pytest.raises(InvalidCursorError):
            signed.decode(cursor)
    with pytest.raises(InvalidCursorError):
        unsigned.decode(first.next_cursor)


def test_a_cursor_of_another_order_is_refused() -> None:
    by_id = Paginator(Row.id)
    with pytest.raises(InvalidCursorError):
        Paginator(Row.id.desc()).decode(by_id.cursor_after((3,)))


class Typed(Base):
    __tablename__ = "core_paged_typed"

    id: Mapped[int] = mapped_column(primary_key=True)
    small: Mapped[int] = mapped_column(SmallInteger)
    big: Mapped[int] = mapped_column(BigInteger)
    flag: Mapped[bool] = mapped_column(Boolean)
    ratio: Mapped[float] = mapped_column(Float)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    day: Mapped[date] = mapped_column(Date)
    moment: Mapped[time] = mapped_column(Time)
    stamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    uid: Mapped[uuid.UUID] = mapped_column(Uuid)
    blob: Mapped[bytes] = mapped_column(LargeBinary)


TYPED_KEYS: list[tuple[Any, Any, list[Any]]] = [
    (Typed.small, -(2**15), [2**15, "1", 1.0]),
    (Typed.big, 2**63 - 1, [2**63, True]),
    (Typed.flag, True, [1, "true"]),
    (Typed.ratio, 0.25, [float("inf"), "0.25"]),
    (Typed.price, Decimal("12.50"), ["NaN", "abc", 12.5, "9" * 101]),
    (Typed.day, date(2026, 12, 2), ["2026-13-01", 20261202]),
    (Typed.moment, time(9, 30, 15), ["25:00", None]),
    (Typed.stamp, datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc), ["yesterday", "x" * 65]),
    (Typed.uid, uuid.UUID(int=7), ["not-a-uuid", 7]),
]


@pytest.mark.parametrize(("column", "value", "refused"), TYPED_KEYS)
def test_typed_keys_round_trip_and_refuse_other_values(
    column: Any, value: Any, refused: list[Any]
) -> None:
    paginator = Paginator(column, Typed.id)
    cursor = paginator.cursor_after((value, 4))
    assert paginator.decode(cursor) == (value, 4)
    fingerprint = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[0]
    for bad in refused:
        with pytest.raises(InvalidCursorError):
            paginator.decode(_b64([fingerprint, [bad, 4]]))


def test_keys_a_cursor_cannot_carry_and_null_values_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="cannot order a keyset listing by"):
        Paginator(Typed.blob, Typed.id)
    with pytest.raises(ValueError, match="NULL"):
        Paginator(Row.id).cursor_after((None,))


def test_page_requests_are_checked() -> None:
    paginator = Paginator(Row.id, default_limit=5, max_limit=10, max_offset=100)
    assert paginator.request() == PageRequest(limit=5)
    assert "order_by=(core_paged_rows.id)" in repr(paginator)
    assert "core_paged_rows.rank desc" in repr(Paginator(Row.rank.desc(), Row.id))
    for limit, offset in ((0, 0), (11, 0), (5, -1), (5, 101)):
        with pytest.raises(ValueError, match="must be between"):
            paginator.request(limit=limit, offset=offset)
    cursor = paginator.cursor_after((3,))
    with pytest.raises(ValueError, match="cannot be combined"):
        paginator.request(offset=2, cursor=cursor)
    assert paginator.request(limit=3, cursor=cursor) == PageRequest(limit=3, cursor=cursor)
    with pytest.raises(ConfigurationError, match="default_limit"):
        Paginator(Row.id, default_limit=0)


def test_a_page_request_with_both_an_offset_and_a_cursor_is_refused(db: Database) -> None:
    paginator = Paginator(Row.id)
    page = PageRequest(limit=2, offset=2, cursor=paginator.cursor_after((3,)))
    with db.transaction(readonly=True) as session, pytest.raises(ValueError, match="offset"):
        paginator.paginate(session, select(Row), page)


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        ((), "at least one column"),
        ((Row.rank,), "unique tiebreaker"),
        ((Row.note, Row.id), "nullable"),
        ((func.lower(Row.label), Row.id), "mapped columns"),
    ],
)
def test_an_order_that_cannot_be_a_keyset_fails_at_once(
    order_by: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Paginator(*order_by)


# -- through FastAPI --------------------------------------------------------------------


row_pages = Paginator(Row.id, default_limit=5, max_limit=10)
RowsPage = Annotated[PageRequest, Depends(row_pages.params)]


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/rows")
    def list_rows(session: DbSession, page: RowsPage) -> Page[RowOut]:
        return row_pages.paginate(session, select(Row), page, into=RowOut)

    with TestClient(app) as test_client:
        yield test_client


def test_the_dependency_pages_and_answers_422_for_bad_parameters(client: TestClient) -> None:
    first = client.get("/rows", params={"limit": 10}).json()
    assert (len(first["items"]), first["total"], first["limit"], first["offset"]) == (10, 30, 10, 0)
    second = client.get("/rows", params={"limit": 10, "cursor": first["next_cursor"]}).json()
    assert [row["id"] for row in second["items"]] == list(range(11, 21))
    for cursor in forged_cursors(Paginator(Row.id)):
        response = client.get("/rows", params={"cursor": cursor})
        assert response.status_code == 422, cursor
        assert response.json()["detail"][0]["loc"] == ["query", "cursor"]
    both = client.get("/rows", params={"cursor": first["next_cursor"], "offset": 1})
    assert both.status_code == 422
    assert both.json()["detail"][0]["loc"] == ["query", "offset"]
    assert client.get("/rows", params={"limit": 11}).status_code == 422
