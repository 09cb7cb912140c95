import pytest
from app import Note
from sqlalchemy import func, select

pytestmark = pytest.mark.anyio


async def test_create_note(sessionscope_async_client, sessionscope_async_session):
    response = await sessionscope_async_client.post("/notes", json={"text": "hello"})

    assert response.status_code == 201
    note = await sessionscope_async_session.get(Note, response.json()["id"])
    assert note.text == "hello"


async def test_starts_empty(sessionscope_async_session):
    count = select(func.count()).select_from(Note)
    assert await sessionscope_async_session.scalar(count) == 0


def test_sync_test_of_the_async_app(sessionscope_client):
    assert sessionscope_client.post("/notes", json={"text": "hi"}).status_code == 201
