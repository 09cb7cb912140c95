import pytest
from app import Base, app, db


@pytest.fixture(scope="session")
def sessionscope_app():
    Base.metadata.create_all(db.sync_engine)  # or run your migrations
    return app


@pytest.fixture(scope="session")
def sessionscope_flavour():
    return "sync"  # the app uses both: sessionscope_client binds its sync routes


@pytest.fixture
def anyio_backend():
    return "asyncio"
