"""The same app on sessionscope (docs/migrating.md walks through each change)."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from sqlmodel import Field, SQLModel, select

from sessionscope import Database
from sessionscope.sqlmodel import DbSession


class Team(SQLModel, table=True):
    __tablename__ = "migrating_teams"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=50)


# --8<-- [start:database]
db = Database.from_env(default_url="sqlite:///./teams.db")  # 1. no engine at import
# --8<-- [end:database]
# --8<-- [start:startup]
app = FastAPI()


@app.on_event("startup")
def create_tables() -> None:
    SQLModel.metadata.create_all(db.sync_engine)  # the engine of the running app


db.init_app(app)  # 2. not FastAPI(lifespan=...): that would skip the startup handler
# --8<-- [end:startup]


# --8<-- [start:create_team]
@app.post("/teams", status_code=201)
def create_team(name: str, session: DbSession) -> Team:  # 3. DbSession, no get_db
    # --8<-- [end:create_team]
    # --8<-- [start:flush]
    team = Team(name=name)
    session.add(team)
    session.flush()  # 4. commit() + refresh() -> flush(): assigns team.id
    return team
    # --8<-- [end:flush]


@app.put("/teams/{team_id}")
def rename_team(team_id: int, name: str, session: DbSession) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise HTTPException(404, "no such team")
    team.name = name  # 5. no commit(): the response decides
    if name.startswith("!"):
        raise HTTPException(400, "a team name cannot start with '!'")  # rolled back
    return team


@app.get("/teams")
def list_teams(session: DbSession) -> list[Team]:
    return list(session.exec(select(Team).order_by(Team.id)))
