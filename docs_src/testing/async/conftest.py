import pytest
from app import Base, app, db


@pytest.fixture(scope="session")
def sessionscope_app():
    Base.metadata.create_all(db.sync_engine)  # or run your migrations
    return app


# --8<-- [start:anyio_backend]
@pytest.fixture
def anyio_backend():
    return "asyncio"  # the database drivers are asyncio libraries
    # --8<-- [end:anyio_backend]
