import pytest
from app import Note, db
from sqlalchemy import delete

from sessionscope.testing import app_client


# Tests that stay in one flavour run inside the test's rolled-back transaction.
@pytest.mark.anyio
async def test_create_note(sessionscope_async_client, sessionscope_async_session):
    response = await sessionscope_async_client.post("/notes", json={"text": "hello"})
    assert response.status_code == 201
    note = await sessionscope_async_session.get(Note, response.json()["id"])
    assert note.text == "hello"


def test_read_note(sessionscope_client, sessionscope_session):
    note = Note(text="written by the test")
    sessionscope_session.add(note)
    sessionscope_session.flush()
    assert sessionscope_client.get(f"/notes/{note.id}").json() == {"text": note.text}


# A test that crosses flavours (an async write read back by a sync route) cannot share one
# rolled-back transaction: it commits for real, on a test database, and cleans up after itself.
@pytest.fixture
def committing_client(sessionscope_app):
    with app_client(sessionscope_app) as client:
        yield client
    with db, db.transaction() as session:
        session.execute(delete(Note))


def test_note_written_async_is_read_sync(committing_client):
    created = committing_client.post("/notes", json={"text": "across"})
    assert created.status_code == 201
    assert committing_client.get(f"/notes/{created.json()['id']}").json() == {"text": "across"}
