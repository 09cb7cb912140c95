import anyio
import pytest
from app import Base, create_app, get_signature

from sessionscope import Database


# --8<-- [start:database_and_app]
@pytest.fixture(scope="session")
def sessionscope_database(sessionscope_url):
    db = Database(sessionscope_url or "sqlite:///./test.db")
    Base.metadata.create_all(db.sync_engine)
    yield db
    anyio.run(db.shutdown)


@pytest.fixture(scope="session")
def sessionscope_app(sessionscope_database):
    return create_app(sessionscope_database)
    # --8<-- [end:database_and_app]


# --8<-- [start:overrides]
@pytest.fixture
def client(sessionscope_app, sessionscope_client):
    sessionscope_app.dependency_overrides[get_signature] = lambda: "-- sent from a test"
    yield sessionscope_client
    sessionscope_app.dependency_overrides.clear()
    # --8<-- [end:overrides]
