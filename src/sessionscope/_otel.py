"""OpenTelemetry: one span per request unit of work (extra ``otel``).

The span starts when the unit's session opens, backdated by the wait for a connection slot,
and ends after the COMMIT or ROLLBACK and the close. Its parent is whatever span is current
when the session opens: the request's server span under the ASGI or FastAPI instrumentation.
The context current then is kept, and the span is recorded under it when the unit ends, with
its start time and attributes given at once: the cheapest way through the SDK (the SDK checks
a span's attributes each time some are set, and rebuilding a context for the parent costs a
copy of it). A request that is not traced (no recording span: no server instrumentation, or
a trace not sampled) gets no unit span, and costs one context lookup. It makes no span per
statement: `opentelemetry-instrumentation-sqlalchemy` does that, and the two work side by
side.
"""

from __future__ import annotations

import time
from typing import Any

from ._errors import MissingExtraError
from ._observe import Observation

SPAN_NAME = "sessionscope unit of work"


class UnitSpans:
    """The unit spans of one runtime: what `Observer` calls when a unit opens and ends."""

    __slots__ = ("_current_context", "_current_span", "_failed", "tracer")

    def __init__(self, tracer: Any) -> None:
        from opentelemetry.context import get_current
        from opentelemetry.trace import Status, StatusCode, get_current_span

        self.tracer = tracer
        # Bound once: a request pays no import nor attribute lookup for them.
        self._current_context = get_current
        self._current_span = get_current_span
        self._failed = Status(StatusCode.ERROR, "COMMIT failed")

    def parent(self, observation: Observation) -> Any:
        """The context the unit's span will go under: the one current when the session opens
        (its span is the request's), or ``None`` when the request is not traced (no recording
        span: no server instrumentation, or the trace was not sampled). A unit span outside a
        request's trace would be a trace of its own that nobody asked for."""
        context = self._current_context()
        if not self._current_span(context).is_recording():
            return None
        # Backdated by the wait for a connection slot.
        observation.started_ns = time.time_ns() - int(observation.pool_wait * 1e9)
        return context

    def record(self, observation: Observation, committed: bool, failed_status: int | None) -> None:
        """Record the unit's span once it has ended, with every attribute at once."""
        attributes: dict[str, Any] = {
            "http.request.method": observation.method,
            "http.route": observation.route,
            "sessionscope.outcome": "commit" if committed else "rollback",
            "sessionscope.pool_wait_ms": round(observation.pool_wait * 1000, 3),
            "db.statement_count": observation.statements,
            "sessionscope.db_time_ms": round(observation.db_time * 1000, 3),
        }
        if failed_status is not None:
            attributes["sessionscope.outcome"] = "commit_failed"
            attributes["sessionscope.commit_failure_status"] = failed_status
        span = self.tracer.start_span(
            SPAN_NAME,
            context=observation.span,
            start_time=observation.started_ns,
            attributes=attributes,
        )
        if failed_status is not None:
            span.set_status(self._failed)
        span.end()


def make_tracer() -> UnitSpans:
    try:
        from opentelemetry import trace
    except ImportError:
        raise MissingExtraError(
            'opentelemetry=True needs the OpenTelemetry API: pip install "sessionscope[otel]"'
        ) from None
    from . import __version__

    return UnitSpans(trace.get_tracer("sessionscope", __version__))
