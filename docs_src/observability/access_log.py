"""The access log line with each request's database figures."""

from __future__ import annotations

import logging

from sessionscope import QueryStatsLogFilter


def add_database_figures_to_the_access_log() -> logging.Handler:
    # --8<-- [start:access_log]
    handler = logging.StreamHandler()
    handler.addFilter(QueryStatsLogFilter())
    handler.setFormatter(logging.Formatter("%(message)s db=%(db_statements)d/%(db_time_ms).1fms"))
    logging.getLogger("uvicorn.access").addHandler(handler)
    # --8<-- [end:access_log]
    return handler
