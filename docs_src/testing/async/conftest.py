import pytest
from app import Base, app, db


@pytest.fixture(scope="session")
def sessionscope_app():
    Base.metadata.create_all(db.sync_engine)  # or run your migrations
    return app


@pytest.fixture
def anyio_backend():
    return "asyncio"  # the database drivers are asyncio libraries
