import pytest
from app import Base, app, db


@pytest.fixture(scope="session")
def sessionscope_app():
    Base.metadata.create_all(db.sync_engine)  # or run your migrations
    return app
