"""The request boundary: ends each request's unit of work before its response starts.

The wrapper sits around the app's router, inside Starlette's exception middleware and inside
every user middleware. It watches the ``http.response.start`` message: the status the client
is about to receive decides commit or rollback, and the COMMIT completes before that message
(the first byte) goes out. A failed COMMIT is raised as a `DatabaseHTTPError`, which the app's
own ``HTTPException`` handler renders, so CORS, logging and every other middleware see it.

A client that went away before the response starts gets no COMMIT (``rollback_on_disconnect``,
see `_disconnect`).

A route with ``unit_of_work(retries=N)`` whose statement or COMMIT fails with a serialization
failure or a deadlock before the response starts runs again here: a fresh unit of work, the
scope as it came in, the body messages replayed.

A route with ``unit_of_work(idempotency=True)`` that claimed the request's key has its
response held here until it is complete: it is stored in the unit of work, committed with
its work, then sent (`_idempotency`).
"""

from __future__ import annotations

import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _dependencies
from ._bookmarks import presented_bookmark
from ._dependencies import DEFAULT_SCOPE_KEY, apply_route_options
from ._disconnect import ClientWatch
from ._idempotency import StoredResponse, record_response
from ._observe import with_server_timing
from ._policy import http_error_for, should_commit
from ._retry import backoff_delay, is_retryable, is_statement_timeout, log_retry
from ._routing import (
    SAFE_METHODS,
    ResponseWatch,
    empty_body_then,
    failure_name,
    replica_is_down,
    should_retry_on_primary,
    with_replica_headers,
)
from ._runtime import Attachment, UnitMode
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
        self._bookmark_header = attachment.config.bookmark_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parameters = self.attachment.session_parameters
        if parameters is not None and not parameters.restored:
            # Before routing: an override of get_async_session set since start-up gives
            # the routes their session dependency back.
            parameters.check()
        if not _dependencies.retries_declared:
            # No route can run again: nothing to keep for a re-run.
            await self._run_once(scope, receive, send, 0)
            return
        # A route with unit_of_work(retries=N) may run again: keep what it needs for that, the
        # scope as it came in and the body messages it read.
        pristine = dict(scope)
        replay = _Replay(receive)
        attempt = 0
        while True:
            try:
                await self._run_once(scope, replay.receive, send, attempt)
                return
            except _RunAgain as again:
                delay = backoff_delay(attempt)
                log_retry(
                    f"{scope['method']} {scope['path']}", again.error, attempt, again.retries, delay
                )
                await anyio.sleep(delay)
                attempt += 1
                scope = dict(pristine)
                replay.rewind()

    async def _run_once(self, scope: Scope, receive: Receive, send: Send, attempt: int) -> None:
        unit = self._new_unit(scope)
        if not unit.config.replicas:
            await self._serve(scope, receive, send, unit, attempt)
            return
        watched = ResponseWatch(send)
        try:
            await self._serve(scope, receive, watched.send, unit, attempt)
        except _RunAgain:
            raise
        except Exception as error:
            if watched.started or not should_retry_on_primary(unit, scope, error):
                raise
            # A read of a safe method that failed on its replica (stopped, restarted, cut
            # off) before its response started: nothing was written and nothing sent, so it
            # runs again, on the primary, instead of failing.
            assert unit.replica is not None
            reason = failure_name(error)
            logger.warning(
                "%s failed a read (%s); it runs again on the primary", unit.replica.name, reason
            )
            if replica_is_down(error):
                unit.replica.mark_down(f"a request failed there: {reason}")
            retry = self._new_unit(scope)
            retry.primary = True
            await self._serve(scope, empty_body_then(receive), send, retry, attempt)

    def _new_unit(self, scope: Scope) -> UnitOfWork:
        attachment = self.attachment
        config = attachment.config
        method = scope["method"]
        mode: UnitMode = "read" if method in _READ_METHODS else "write"
        if config.replica_reads == "safe_methods" and method in SAFE_METHODS:
            mode = "readonly"
        unit = UnitOfWork(
            attachment.owner,
            config,
            mode=mode,
            policy=config.commit_policy,
            attachment=attachment,
        )
        if config.replicas:
            unit.min_lsn = presented_bookmark(
                scope["headers"], self._bookmark_header, config.bookmark_cookie
            )
        return unit

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, unit: UnitOfWork, attempt: int
    ) -> None:
        attachment = self.attachment
        config = attachment.config
        scope[attachment.scope_key] = unit
        if attachment.default:
            scope[DEFAULT_SCOPE_KEY] = unit
        started = False
        watch = ClientWatch(receive) if config.rollback_on_disconnect else None

        async def send_after_commit(message: Message) -> None:
            nonlocal started
            if not unit.ended:
                kind = message["type"]
                if kind == "http.response.start":
                    apply_route_options(unit, scope)
                if unit.idempotency is not None:
                    # An idempotent request's response is held until complete, stored in its
                    # unit of work, committed with it, and only then sent.
                    start = unit.idempotency.hold(message)
                    if start is None:
                        return
                    try:
                        await record_response(unit, unit.idempotency, start, message)
                    except Exception as error:
                        raise _CommitFailed(error) from None
                    await _end_or_raise(unit, start["status"], watch)
                    if config.server_timing and unit.observation is not None:
                        start = with_server_timing(start, unit.observation)
                    if config.replicas:
                        start = with_replica_headers(start, unit, config)
                    started = True
                    await send(start)
                elif kind == "http.response.start":
                    if not unit.keep_for_stream:
                        await _end_or_raise(unit, message["status"], watch)
                        if config.server_timing and unit.observation is not None:
                            message = with_server_timing(message, unit.observation)
                    else:
                        unit.stream_status = message["status"]
                    if config.replicas:
                        message = with_replica_headers(message, unit, config)
                    started = True
                elif kind == "http.response.body" and not message.get("more_body", False):
                    # A session kept for a stream ends before the stream's last chunk.
                    await _end_or_raise(unit, unit.stream_status, watch)
            await send(message)

        try:
            await self.app(scope, receive if watch is None else watch.receive, send_after_commit)
        except StoredResponse as stored:
            # The request's Idempotency-Key was answered before: its response again, without
            # the endpoint.
            await unit.end(commit=False)
            started = True
            await stored.send_to(send)
        except _CommitFailed as failed:
            if not started and _may_run_again(unit, failed.error, attempt, scope):
                raise _RunAgain(failed.error, unit.retries) from None
            http_error = http_error_for(
                failed.error, retry_after=config.retry_after, at_commit=True
            )
            logger.warning(
                "COMMIT failed (%s) in %s %s; the client receives an error response",
                type(failed.error).__name__,
                scope["method"],
                scope["path"],
                exc_info=failed.error,
            )
            if started or http_error is None:
                raise failed.error from None
            raise http_error from failed.error
        except BaseException as error:
            apply_route_options(unit, scope)
            await unit.end(commit=False)
            if not started and isinstance(error, Exception):
                if _may_run_again(unit, error, attempt, scope):
                    raise _RunAgain(error, unit.retries) from None
                http_error = http_error_for(error, retry_after=config.retry_after, at_commit=False)
                if http_error is not None and http_error is not error:
                    logger.log(
                        logging.INFO if http_error.status_code == 409 else logging.WARNING,
                        "%s in %s %s; the client receives %d",
                        "a statement cancelled by its timeout"
                        if is_statement_timeout(error)
                        else type(error).__name__,
                        scope["method"],
                        scope["path"],
                        http_error.status_code,
                        exc_info=error,
                    )
                    raise http_error from error
            raise
        finally:
            if not unit.ended:
                # The app returned without a complete response: nothing to commit to.
                await unit.end(commit=False)


class _RunAgain(Exception):
    """A retryable failure before the response started, with attempts left."""

    def __init__(self, error: BaseException, retries: int) -> None:
        super().__init__("run the unit of work again")
        self.error = error
        self.retries = retries


def _may_run_again(unit: UnitOfWork, error: BaseException, attempt: int, scope: Scope) -> bool:
    if attempt >= unit.retries or not is_retryable(
        error, lock_timeouts=unit.config.retry_lock_timeouts
    ):
        return False
    # Another database's unit of this request would not run again: it carries its first
    # run's work into the next, or has committed it already. Only a request whose database
    # work is all in this unit runs again.
    return not any(
        isinstance(other, UnitOfWork) and other is not unit and other.active
        for other in scope.values()
    )


class _Replay:
    """The request's ``receive``, recording the body messages so that a run again reads the
    same body."""

    __slots__ = ("_messages", "_position", "_receive")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._messages: list[Message] = []
        self._position = 0

    async def receive(self) -> Message:
        if self._position < len(self._messages):
            message = self._messages[self._position]
            self._position += 1
            return message
        message = await self._receive()
        if message["type"] == "http.request":
            self._messages.append(message)
            self._position += 1
        return message

    def rewind(self) -> None:
        self._position = 0


async def _end_or_raise(unit: UnitOfWork, status: int | None, watch: ClientWatch | None) -> None:
    if not unit.active:
        unit.end_unused()
        return
    commit = should_commit(status, None, unit.policy)
    if (
        commit
        and watch is not None
        and unit.mode != "readonly"
        and unit.would_commit()
        and await watch.client_gone()
    ):
        # Nobody will read the answer, and a client that gave up may well send it again.
        logger.warning(
            "the client of %s went away before COMMIT; the unit of work is rolled back",
            unit.route,
        )
        commit = False
    error = await unit.end(commit)
    if error is not None:
        raise _CommitFailed(error)
