"""A client of docs_src/idempotency/app.py that retries a payment safely."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx


# --8<-- [start:client]
def pay(client: httpx.Client, amount_cents: int, attempts: int = 5) -> dict[str, Any]:
    # One key per payment, the same for each of its retries.
    key = str(uuid.uuid4())
    for _ in range(attempts):
        try:
            response = client.post(
                "/payments", json={"amount_cents": amount_cents}, headers={"Idempotency-Key": key}
            )
        except httpx.TransportError:
            continue  # the answer was lost, not necessarily the payment: retry under the key
        if response.status_code in (409, 503):
            # 409: the first attempt is still running; 503: busy, or the outcome is unknown.
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        response.raise_for_status()
        payment: dict[str, Any] = response.json()
        return payment
    raise RuntimeError(f"the payment did not go through in {attempts} attempts")


# --8<-- [end:client]
