"""The request boundary: ends each request's unit of work before its response starts.

The wrapper sits around the app's router, inside Starlette's exception middleware and inside
every user middleware. It watches the ``http.response.start`` message: the status the client
is about to receive decides commit or rollback, and the COMMIT completes before that message
(the first byte) goes out. A failed COMMIT is raised as a `DatabaseHTTPError`, which the app's
own ``HTTPException`` handler renders, so CORS, logging and every other middleware see it.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._dependencies import DEFAULT_SCOPE_KEY
from ._observe import with_server_timing
from ._policy import http_error_for, should_commit
from ._runtime import Attachment
from ._unit import UnitOfWork

logger = logging.getLogger("sessionscope")

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class _CommitFailed(Exception):
    """Raised out of ``send`` so the app stops (background tasks of a failed write never run);
    turned into the error response by `UnitOfWorkBoundary`."""

    def __init__(self, error: BaseException) -> None:
        super().__init__("commit failed")
        self.error = error


class UnitOfWorkBoundary:
    """ASGI wrapper around a router that gives each HTTP request one `UnitOfWork`."""

    def __init__(self, app: ASGIApp, attachment: Attachment) -> None:
        self.app = app
        self.attachment = attachment

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        attachment = self.attachment
        config = attachment.config
        unit = UnitOfWork(
            attachment.owner,
            config,
            mode="read" if scope["method"] in _READ_METHODS else "write",
            policy=config.commit_policy,
            attachment=attachment,
        )
        scope[attachment.scope_key] = unit
        if attachment.default:
            scope[DEFAULT_SCOPE_KEY] = unit
        started = False

        async def send_after_commit(message: Message) -> None:
            nonlocal started
            if not unit.ended:
                kind = message["type"]
                if kind == "http.response.start":
                    if not unit.keep_for_stream:
                        await _end_or_raise(unit, message["status"])
                        if config.server_timing and unit.observation is not None:
                            message = with_server_timing(message, unit.observation)
                    else:
                        unit.stream_status = message["status"]
                    started = True
                elif kind == "http.response.body" and not message.get("more_body", False):
                    # A session kept for a stream ends before the stream's last chunk.
                    await _end_or_raise(unit, unit.stream_status)
            await send(message)

        try:
            await self.app(scope, receive, send_after_commit)
        except _CommitFailed as failed:
            http_error = http_error_for(
                failed.error, retry_after=config.retry_after, at_commit=True
            )
            logger.warning(
                "COMMIT failed (%s); the client receives an error response",
                type(failed.error).__name__,
                exc_info=failed.error,
            )
            if started or http_error is None:
                raise failed.error from None
            raise http_error from failed.error
        except BaseException as error:
            await unit.end(commit=False)
            if not started and isinstance(error, Exception):
                http_error = http_error_for(error, retry_after=config.retry_after, at_commit=False)
                if http_error is not None and http_error is not error:
                    logger.log(
                        logging.INFO if http_error.status_code == 409 else logging.WARNING,
                        "%s in the endpoint; the client receives %d",
                        type(error).__name__,
                        http_error.status_code,
                        exc_info=error,
                    )
                    raise http_error from error
            raise
        finally:
            if not unit.ended:
                # The app returned without a complete response: nothing to commit to.
                await unit.end(commit=False)


async def _end_or_raise(unit: UnitOfWork, status: int | None) -> None:
    if not unit.active:
        unit.end_unused()
        return
    commit = should_commit(status, None, unit.policy)
    error = await unit.end(commit)
    if error is not None:
        raise _CommitFailed(error)
