"""Instructions of one OpenTelemetry unit span, alone: sessionscope's against the SDK's floor.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/span_cost.py --mode unit --spans 2000     # and --spans 8000

Under callgrind, the difference of the totals of two span counts divided by the difference of
the counts is the cost of one span (start-up cancels). Modes, each under a recording request
span of an SDK tracer provider without processors (as ``items_app`` with ``BENCH_OTEL_SDK``):
``unit`` is sessionscope's unit span as a request makes it (the parent context taken when the
session opens, the span recorded with its attributes when the unit ends); ``empty`` is the
floor, a span without attributes started and ended through the same tracer under the same
context; ``none`` is the loop alone.
"""

from __future__ import annotations

import argparse

from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider

from sessionscope._observe import Observation
from sessionscope._otel import make_tracer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("unit", "empty", "none"), required=True)
    parser.add_argument("--spans", type=int, default=2000)
    args = parser.parse_args()
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    unit_spans = make_tracer()
    observation = Observation("GET", "/items/{item_id}", 0.0001, None)
    observation.statements = 1
    observation.db_time = 0.0012
    with provider.get_tracer("bench").start_as_current_span("GET /items/{item_id}"):
        parent = context.get_current()
        tracer = unit_spans.tracer
        for _ in range(args.spans):
            if args.mode == "unit":
                observation.span = unit_spans.parent(observation)
                unit_spans.record(observation, True, None)
            elif args.mode == "empty":
                tracer.start_span("empty", context=parent).end()


if __name__ == "__main__":
    main()
