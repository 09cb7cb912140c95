"""A test module with its own app: the three session-scoped fixtures that depend on the app,
overridden at module scope."""

# --8<-- [start:overrides]
import pytest

from apps import make_app
from sessionscope.testing import app_flavour, database_of


@pytest.fixture(scope="module")
def sessionscope_app():
    return make_app("a")


@pytest.fixture(scope="module")
def sessionscope_database(sessionscope_app):
    db = database_of(sessionscope_app)
    with db:  # at the module's end, close the connections its tests opened
        yield db


@pytest.fixture(scope="module")
def sessionscope_flavour(sessionscope_app, sessionscope_database):
    return app_flavour(sessionscope_app, sessionscope_database)
    # --8<-- [end:overrides]


def test_its_own_app(sessionscope_client):
    assert sessionscope_client.get("/label").json() == "a"
