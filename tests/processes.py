"""Helpers of the tests that start the project's own processes (tests marked `processes`):
management commands run as `make run` runs them, a free port, a demo account's API token."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
COMMAND_TIMEOUT = 120  # migrate, seed_demo, drf_create_token


def manage(environment: dict[str, str], *arguments: str) -> str:
    """`DEBUG=1 python manage.py ARGUMENTS` as the Makefile runs it, in `environment`; its
    output (the test fails on a non-zero exit)."""
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env={**environment, "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (arguments, result.stdout, result.stderr)
    return result.stdout


def free_port() -> int:
    """A TCP port on HOST that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def token_for(environment: dict[str, str], username: str) -> str:
    """The API token seed_demo gave `username` (drf_create_token prints an existing one)."""
    output = manage(environment, "drf_create_token", username)
    match = re.search(r"Generated token (\w+) for user", output)
    assert match, output
    return match.group(1)
