from app import Note
from sqlalchemy import select


def test_signature_is_overridden(client, sessionscope_session):
    response = client.post("/notes", json={"text": "hello"})

    assert response.json() == {"text": "hello -- sent from a test"}
    assert sessionscope_session.scalars(select(Note.text)).all() == [response.json()["text"]]


def test_starts_empty(sessionscope_session):
    assert sessionscope_session.scalars(select(Note)).all() == []
