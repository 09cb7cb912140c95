"""Requests whose session is committed by hand.

A request's unit of work commits when its response is a success and rolls back otherwise; a
``session.commit()`` in the handler makes the work before it permanent whatever the response
turns out to be, so a 4xx or 5xx no longer rolls it back. ``manual_commit`` decides what
happens: ``"warn"`` (once per route and app), ``"raise"``, or ``"allow"``.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.types import Scope

from ._errors import ManualCommitWarning, SessionScopeError
from ._sessions import UNIT_KEY, ScopedSession

_warned: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def route_label(scope: Scope) -> str:
    """``METHOD /path/template`` of the route serving a request, for messages."""
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("path", "?")
    return f"{scope.get('method', '?')} {path}"


def _message(label: str, mode: str) -> str:
    allow = "To allow it" if mode == "raise" else "To commit by hand without this warning"
    return (
        f"the session of `{label}` was committed by hand (session.commit()): what the request "
        "wrote before that commit stays even when its response is an error, so a 4xx no "
        "longer rolls it back. Delete the commit() call: the response commits (before it is "
        "sent). Need generated ids or defaults? session.flush(). A route that must keep its "
        f"work on a 4xx declares dependencies=[unit_of_work(commit='below_500')]. {allow}: "
        "Database(..., manual_commit='allow') (DATABASE_MANUAL_COMMIT=allow)."
    )


@event.listens_for(ScopedSession, "before_commit")
def _before_commit(session: Session) -> None:
    unit = session.info.get(UNIT_KEY)
    # Units outside requests (db.transaction()) and the unit's own commit at its end pass.
    if unit is None or unit.attachment is None or unit.ended:
        return
    mode = unit.config.manual_commit
    if mode == "allow":
        return
    label = unit.route or "this request"
    if mode == "raise":
        raise SessionScopeError(_message(label, mode))
    with _lock:
        seen = _warned.setdefault(unit.attachment, set())
        if label in seen:
            return
        seen.add(label)
    warnings.warn(_message(label, mode), ManualCommitWarning, stacklevel=2)
