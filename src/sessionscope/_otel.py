"""OpenTelemetry: one span per request unit of work (extra ``otel``).

The span starts when the unit's session opens, backdated by the wait for a connection slot,
and ends after the COMMIT or ROLLBACK and the close. Its parent is whatever span is current
when the session opens: the request's server span under the ASGI or FastAPI instrumentation.
It is recorded when the unit
ends, with its start time and attributes given at once: the cheapest way through the SDK.
A request that is not traced (no recording span: no server instrumentation, or a trace not
sampled) gets no unit span, and costs one context lookup. It makes no span per statement:
`opentelemetry-instrumentation-sqlalchemy` does that, and the two work side by side.
"""

from __future__ import annotations

import time
from typing import Any

from ._errors import MissingExtraError
from ._observe import Observation

SPAN_NAME = "sessionscope unit of work"


def make_tracer() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise MissingExtraError(
            'opentelemetry=True needs the OpenTelemetry API: pip install "sessionscope[otel]"'
        ) from None
    from . import __version__

    return trace.get_tracer("sessionscope", __version__)


def unit_parent(observation: Observation) -> Any:
    """The span the unit's span will go under: the current one when the session opens, or
    ``None`` when the request is not traced (no recording span: no server instrumentation,
    or the trace was not sampled). A unit span outside a request's trace would be a trace of
    its own that nobody asked for."""
    from opentelemetry import trace

    parent = trace.get_current_span()
    if not parent.is_recording():
        return None
    # Backdated by the wait for a connection slot.
    observation.started_ns = time.time_ns() - int(observation.pool_wait * 1e9)
    return parent


def record_unit_span(
    tracer: Any, observation: Observation, committed: bool, failed_status: int | None
) -> None:
    """Record the unit's span once it has ended, with every attribute at once: the SDK
    checks a span's attributes each time they are set, so one set costs the least."""
    from opentelemetry import trace

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
    span = tracer.start_span(
        SPAN_NAME,
        context=trace.set_span_in_context(observation.span),
        start_time=observation.started_ns,
        attributes=attributes,
    )
    if failed_status is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, "COMMIT failed"))
    span.end()
