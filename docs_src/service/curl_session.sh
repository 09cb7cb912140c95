#!/usr/bin/env bash
# The curl session of docs/service.md, run against a fresh service by the test suite.
set -euo pipefail
BASE="${BASE:-http://127.0.0.1:8000}"

curl -s -X POST "$BASE/users" -H 'content-type: application/json' \
    -d '{"email": "ada@example.com", "name": "Ada", "password": "correct horse battery"}'
echo
curl -s -X POST "$BASE/users/1/items" -H 'content-type: application/json' \
    -d '{"name": "Notebook", "description": "A5, dotted", "price_cents": 450}'
echo
curl -s "$BASE/items?owner_id=1&q=note"
echo
