from __future__ import annotations

import httpx

BOOKMARK = "X-DB-Bookmark"


def save_then_show(client: httpx.Client, text: str) -> str:
    """Write, then read it back: the bookmark of the write sends the read to a database that
    has it (a replica that caught up, else the primary)."""
    # --8<-- [start:bookmark]
    created = client.post("/notes", json={"text": text})
    created.raise_for_status()
    shown = client.get(f"/notes/{created.json()}", headers={BOOKMARK: created.headers[BOOKMARK]})
    # --8<-- [end:bookmark]
    shown.raise_for_status()
    return str(shown.json())
