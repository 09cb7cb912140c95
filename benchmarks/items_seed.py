"""The items service the seed's way: a sync ``get_db`` generator dependency that only closes
the session, ``def`` endpoints that commit and refresh themselves.

``DATABASE_URL`` must name a sync driver (e.g. ``postgresql+psycopg://``).
"""

from __future__ import annotations

import os

from fastapi import Depends, FastAPI, HTTPException
from items_model import Item, ItemOut
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ["DATABASE_URL"]
connect_args = {"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {}
engine = create_engine(DATABASE_URL, connect_args=connect_args)
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

app = FastAPI()


def get_db():  # type: ignore[no-untyped-def]
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


@app.post("/items/", response_model=ItemOut)
def create_item(name: str, description: str, db: Session = Depends(get_db)) -> Item:
    db_item = Item(name=name, description=description)
    db.add(db_item)
    db.commit()
    db.refresh(db_item)
    return db_item


@app.get("/items/{item_id}", response_model=ItemOut)
def read_item(item_id: int, db: Session = Depends(get_db)) -> Item:
    item = db.query(Item).filter(Item.id == item_id).first()
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item
