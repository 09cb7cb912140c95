"""The observability page's access-log snippet installs a handler whose filter adds the
request's database figures to each record."""

from __future__ import annotations

import logging

from docs_src.observability.access_log import add_database_figures_to_the_access_log

from sessionscope import QueryStatsLogFilter


def test_the_access_log_snippet_adds_the_figures() -> None:
    handler = add_database_figures_to_the_access_log()
    try:
        assert handler in logging.getLogger("uvicorn.access").handlers
        assert any(isinstance(f, QueryStatsLogFilter) for f in handler.filters)
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "GET /", (), None)
        assert handler.filter(record)
        # Outside a request the figures are zero, so the format never fails.
        assert handler.format(record) == "GET / db=0/0.0ms"
    finally:
        logging.getLogger("uvicorn.access").removeHandler(handler)
