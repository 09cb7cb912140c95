"""The users/items reference service, built on sessionscope's public API only.

``create_app(settings)`` builds the FastAPI app; ``sessionscope-demo`` (see `cli`) migrates
the schema and serves it with uvicorn.
"""

from .app import create_app
from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
