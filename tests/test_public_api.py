"""The public surface: a sorted, complete ``__all__`` and one exception root."""

from __future__ import annotations

import inspect

import sessionscope
import sessionscope.pagination


def test_all_is_sorted_and_complete() -> None:
    assert sessionscope.__all__ == sorted(sessionscope.__all__)
    public = {
        name
        for name, value in vars(sessionscope).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(sessionscope.__all__) == public


def test_every_exception_derives_from_one_root() -> None:
    exceptions = [
        value
        for value in vars(sessionscope).values()
        if inspect.isclass(value) and issubclass(value, BaseException)
    ]
    assert len(exceptions) > 5
    for exception in exceptions:
        assert issubclass(exception, sessionscope.SessionScopeError), exception


def test_missing_driver_is_an_import_error() -> None:
    assert issubclass(sessionscope.MissingDriverError, ImportError)


def test_pagination_all_is_sorted_and_complete() -> None:
    module = sessionscope.pagination
    assert module.__all__ == sorted(module.__all__)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(module.__all__) == public
    assert issubclass(module.InvalidCursorError, sessionscope.SessionScopeError)
    assert issubclass(module.InvalidCursorError, ValueError)
