from app import Note
from sqlalchemy import func, select


def test_create_note(sessionscope_client, sessionscope_session):
    response = sessionscope_client.post("/notes", json={"text": "hello"})

    assert response.status_code == 201
    note = sessionscope_session.get(Note, response.json()["id"])
    assert note.text == "hello"


def test_starts_empty(sessionscope_session):
    assert sessionscope_session.scalar(select(func.count()).select_from(Note)) == 0
