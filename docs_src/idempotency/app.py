"""Idempotency keys: a payment endpoint that clients can retry without paying twice."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import (
    AsyncDbSession,
    Database,
    DbSession,
    delete_expired_idempotency_keys,
    idempotency_table,
    unit_of_work,
)


class Base(DeclarativeBase):
    pass


class Payment(Base):
    __tablename__ = "docs_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    amount_cents: Mapped[int]


# --8<-- [start:table]
# The key table joins the app's own tables: `Base.metadata.create_all()` creates it, and
# `sessionscope db revision --autogenerate` writes its migration.
idempotency_keys = idempotency_table(Base.metadata)
# --8<-- [end:table]


class PaymentIn(BaseModel):
    amount_cents: int


class PaymentOut(BaseModel):
    id: int
    amount_cents: int


db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)


# --8<-- [start:route]
@app.post("/payments", status_code=201, dependencies=[unit_of_work(idempotency=True)])
async def pay(body: PaymentIn, session: AsyncDbSession) -> PaymentOut:
    payment = Payment(amount_cents=body.amount_cents)
    session.add(payment)
    await session.flush()
    return PaymentOut(id=payment.id, amount_cents=payment.amount_cents)


# A `def` endpoint works the same way, on DbSession; "required" refuses a request
# without the header (400).
@app.post("/refunds", status_code=201, dependencies=[unit_of_work(idempotency="required")])
def refund(body: PaymentIn, session: DbSession) -> PaymentOut:
    payment = Payment(amount_cents=-body.amount_cents)
    session.add(payment)
    session.flush()
    return PaymentOut(id=payment.id, amount_cents=payment.amount_cents)


# --8<-- [end:route]


# --8<-- [start:purge]
# A scheduled job (or `sessionscope db purge-idempotency-keys`): expired keys are treated
# as new anyway; deleting them keeps the table small.
async def purge_expired_keys() -> int:
    async with db.transaction() as session:
        return await session.run_sync(delete_expired_idempotency_keys)


# --8<-- [end:purge]
