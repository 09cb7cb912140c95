#!/usr/bin/env bash
# The session of docs/operations.md, run by the test suite in a fresh directory against a
# fresh database. The app is docs_src/quickstart/app.py; DATABASE_URL names the database.
set -euo pipefail
APP="${APP:-docs_src.quickstart.app}"

sessionscope check --app "$APP:app"
sessionscope db init --app "$APP:app" --metadata "$APP:Base.metadata"
sessionscope db revision --autogenerate -m "create notes"
sessionscope db upgrade
sessionscope db current
sessionscope db downgrade base
