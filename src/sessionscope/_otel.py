"""OpenTelemetry: one span per request unit of work (extra ``otel``).

The span starts when the unit's session opens, backdated by the wait for a connection slot,
and ends after the COMMIT or ROLLBACK and the close. Its parent is whatever span is current
when the session opens: the request's server span under the ASGI or FastAPI instrumentation.
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


def start_unit_span(tracer: Any, observation: Observation) -> Any:
    """The unit's span, under the current one; ``None`` when the request is not traced (no
    recording span: no server instrumentation, or the trace was not sampled). A unit span
    outside a request's trace would be a trace of its own that nobody asked for."""
    from opentelemetry import trace

    if not trace.get_current_span().is_recording():
        return None
    waited_ns = int(observation.pool_wait * 1e9)
    return tracer.start_span(
        SPAN_NAME,
        start_time=time.time_ns() - waited_ns,
        attributes={
            "http.request.method": observation.method,
            "http.route": observation.route,
            "sessionscope.pool_wait_ms": round(observation.pool_wait * 1000, 3),
        },
    )


def end_unit_span(
    span: Any, observation: Observation, committed: bool, failed_status: int | None
) -> None:
    attributes: dict[str, Any] = {
        "sessionscope.outcome": "commit" if committed else "rollback",
        "db.statement_count": observation.statements,
        "sessionscope.db_time_ms": round(observation.db_time * 1000, 3),
    }
    if failed_status is not None:
        from opentelemetry.trace import Status, StatusCode

        attributes["sessionscope.outcome"] = "commit_failed"
        attributes["sessionscope.commit_failure_status"] = failed_status
        span.set_status(Status(StatusCode.ERROR, "COMMIT failed"))
    span.set_attributes(attributes)  # one call: the SDK takes its lock once
    span.end()
