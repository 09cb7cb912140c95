"""A pytest plugin that gives every `Database` built from a PostgreSQL URL the replicas named
in ``SESSIONSCOPE_TEST_REPLICA_URLS``: the project's contract tests, run with it, show that
configuring replicas changes none of their guarantees. Used by `test_contract`."""

from __future__ import annotations

import os
from typing import Any

import pytest

import sessionscope

REPLICA_URLS = os.environ.get("SESSIONSCOPE_TEST_REPLICA_URLS", "")


@pytest.fixture(autouse=True)
def _replicas_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    if not REPLICA_URLS:
        return
    original = sessionscope.Database.__init__

    def with_replicas(self: Any, url: Any = None, /, **options: Any) -> None:
        postgres = str(url).startswith("postgresql")
        if postgres and options.get("config") is None and "replicas" not in options:
            options["replicas"] = REPLICA_URLS.split(",")
            options.setdefault("served_by_header", "X-Served-By")
        original(self, url, **options)

    monkeypatch.setattr(sessionscope.Database, "__init__", with_replicas)
