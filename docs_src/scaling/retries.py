"""Retry-safe units of work: a transfer between two accounts under SERIALIZABLE."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import ForeignKey, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sessionscope import Database, DbSession, after_commit, unit_of_work


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "scaling_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    balance: Mapped[int]


class Transfer(Base):
    __tablename__ = "scaling_transfers"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[int] = mapped_column(ForeignKey("scaling_accounts.id"))
    target: Mapped[int] = mapped_column(ForeignKey("scaling_accounts.id"))
    amount: Mapped[int]


db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)
sent: list[int] = []


def move(session: Session, source: int, target: int, amount: int) -> int:
    """Everything the transaction does, from its first read: safe to run again whole."""
    balance = session.scalars(select(Account.balance).where(Account.id == source)).one()
    if balance < amount:
        raise ValueError("insufficient funds")
    session.execute(update(Account).where(Account.id == source).values(balance=balance - amount))
    session.execute(
        update(Account).where(Account.id == target).values(balance=Account.balance + amount)
    )
    transfer = Transfer(source=source, target=target, amount=amount)
    session.add(transfer)
    session.flush()
    # Side effects wait for the COMMIT: they happen once, for the run that committed.
    after_commit(lambda: sent.append(transfer.id))
    return transfer.id


# A script or a worker: decorate a function that takes the session ...
# --8<-- [start:retried]
@db.transaction(isolation="SERIALIZABLE", retries=5)
def transfer_money(session: Session, source: int, target: int, amount: int) -> int:
    return move(session, source, target, amount)


# ... or loop over attempts, each a `with` block.
def transfer_money_inline(source: int, target: int, amount: int) -> int:
    for attempt in db.transaction(isolation="SERIALIZABLE", retries=5):
        with attempt as session:
            transfer_id = move(session, source, target, amount)
    return transfer_id
    # --8<-- [end:retried]


class TransferIn(BaseModel):
    source: int
    target: int
    amount: int


# A route: the endpoint runs again with a fresh session and the same body.
# --8<-- [start:section_two]
@app.post("/transfers", dependencies=[unit_of_work(isolation="SERIALIZABLE", retries=5)])
def create_transfer(body: TransferIn, session: DbSession) -> int:
    return move(session, body.source, body.target, body.amount)


# --8<-- [end:section_two]
