"""The users/items reference service, built on sessionscope's public API only.

``create_app(settings)`` builds the FastAPI app; ``sessionscope-demo`` (see `cli`) migrates
the schema and serves it with uvicorn.

The service needs the ``demo`` extra. Its names are imported on first use, so that the
package itself imports without it and the console script can say what is missing
(`sessionscope_demo.command`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import create_app
    from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ServiceSettings":
        from .settings import ServiceSettings

        return ServiceSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
