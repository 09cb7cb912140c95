"""Everything the contract tests promise still holds with replicas configured (F1): the
in-process request and transaction tests, on PostgreSQL, run again with every `Database`
given the streaming replica (`with_replicas`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .clusters import Replication

pytestmark = pytest.mark.replicas

ROOT = Path(__file__).parent.parent.parent
CONTRACT_TESTS = ["tests/test_requests.py", "tests/test_transactions.py"]


def test_contract_tests_pass_with_a_replica_configured(replication: Replication) -> None:
    env = {
        **os.environ,
        "SESSIONSCOPE_TEST_POSTGRES_URL": replication.primary.url(),
        "SESSIONSCOPE_TEST_REPLICA_URLS": replication.replica.url(),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
    command += ["-p", "tests.replicas.with_replicas", "-k", "postgres", *CONTRACT_TESTS]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary
    assert "skipped" not in summary, summary
    assert "error" not in summary, summary
