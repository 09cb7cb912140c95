"""A small app as many start: the get_db pattern, SQLModel, startup handlers, commits by hand."""

from __future__ import annotations

import os
from collections.abc import Iterator

from fastapi import Depends, FastAPI, HTTPException
from sqlmodel import Field, Session, SQLModel, create_engine, select


class Team(SQLModel, table=True):
    __tablename__ = "migrating_teams"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=50)


# --8<-- [start:engine]
engine = create_engine(os.environ.get("DATABASE_URL", "sqlite:///./teams.db"))


def get_db() -> Iterator[Session]:
    with Session(engine) as session:
        yield session
    # --8<-- [end:engine]


app = FastAPI()


@app.on_event("startup")
def create_tables() -> None:
    SQLModel.metadata.create_all(engine)


# --8<-- [start:create_team]
@app.post("/teams", status_code=201)
def create_team(name: str, session: Session = Depends(get_db)) -> Team:
    # --8<-- [end:create_team]
    team = Team(name=name)
    session.add(team)
    session.commit()
    session.refresh(team)
    return team


@app.put("/teams/{team_id}")
def rename_team(team_id: int, name: str, session: Session = Depends(get_db)) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise HTTPException(404, "no such team")
    team.name = name
    session.commit()
    if name.startswith("!"):
        raise HTTPException(400, "a team name cannot start with '!'")  # too late: committed
    session.refresh(team)
    return team


@app.get("/teams")
def list_teams(session: Session = Depends(get_db)) -> list[Team]:
    return list(session.exec(select(Team).order_by(Team.id)))
