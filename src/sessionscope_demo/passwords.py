"""Password hashing with Argon2 (pwdlib), off the event loop and bounded in parallelism."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic import SecretStr

from .settings import ServiceSettings

HASHES_AT_ONCE = 2
"""Each Argon2 hash takes tens of MiB and a core for a noticeable time; a burst of sign-ups
queues here instead of taking every worker thread and all the memory."""


class Passwords:
    """Hashes and verifies passwords. Plain passwords only ever travel as `SecretStr`."""

    def __init__(self, settings: ServiceSettings) -> None:
        hasher = Argon2Hasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
        )
        self._hash = PasswordHash((hasher,))
        self._limiter: anyio.CapacityLimiter | None = None

    async def hash(self, password: SecretStr) -> str:
        """The Argon2id hash of ``password``, computed in a worker thread."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(HASHES_AT_ONCE)
        return await anyio.to_thread.run_sync(
            self._hash.hash, password.get_secret_value(), limiter=self._limiter
        )

    def verify(self, password: str, password_hash: str) -> bool:
        return self._hash.verify(password, password_hash)


def get_passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


PasswordHasher = Annotated[Passwords, Depends(get_passwords)]
