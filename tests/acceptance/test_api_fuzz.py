"""Scenario: the API fuzzed against its own OpenAPI schema, as an outside tester would.

gunicorn serves the project as in production (DEBUG off, config/gunicorn.py) on a database of
this test's own, seeded by `seed_demo`: a SQLite file, or a fresh PostgreSQL database when the
suite runs on PostgreSQL (where the date-offset 500s were found). Schemathesis then sends
generated requests to every operation, as a customer and as staff, bounded in examples and
with a fixed seed so a run repeats. It must end with no failure: no 5xx at all, every status,
content type, header and body as the schema documents them.

Every check runs, positive_data_acceptance and negative_data_rejection included: the API
refuses what the schema refuses (a 400) and takes what it allows. `schemathesis.toml` beside
this file names the answers a valid request may get from a rule the schema cannot state (an
unknown product or a product on two lines: 422; short stock: 409; a declined card: 402).

Every process started here is stopped, pass or fail."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.processes import HOST, ROOT, free_port, manage, token_for

pytestmark = pytest.mark.processes

BIN = Path(sys.executable).parent
MAX_EXAMPLES = 10  # per operation and phase: a few thousand requests per user in all
SEED = 20261129  # a fixed seed: a failure repeats with `st run ... --seed`
CONFIG = Path(__file__).with_name("schemathesis.toml")
START_TIMEOUT = 60
FUZZ_TIMEOUT = 600


@contextmanager
def _database(tmp_path: Path) -> Iterator[str]:
    """A database URL of this test's own: on the suite's PostgreSQL server when it runs there
    (dropped afterwards), else a SQLite file in the temporary folder."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'fuzz.sqlite3'}"
        return
    settings = connection.settings_dict
    server = (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 5432}"
    )
    name = f"fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _environment(database_url: str) -> dict[str, str]:
    """Production settings on plain http, with rates no fuzzing run reaches and emails handed
    to a backend that sends nothing."""
    environment = dict(os.environ)
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment.update(
        DATABASE_URL=database_url,
        DEBUG="0",
        SECRET_KEY="fuzzing-only-secret-key-" + "x" * 30,
        ALLOWED_HOSTS=HOST,
        SECURE_SSL_REDIRECT="0",
        THROTTLE_ANON="1000000/min",
        THROTTLE_USER="1000000/min",
        THROTTLE_ORDERS="1000000/min",
        EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
        LOG_LEVEL="ERROR",
    )
    return environment


@contextmanager
def _served(environment: dict[str, str], log_path: Path) -> Iterator[str]:
    """gunicorn with the project's config on a free port; yields the API's base URL."""
    port = free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-c",
                "config/gunicorn.py",
                "config.wsgi",
                f"--bind={HOST}:{port}",
                "--workers=2",
            ],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            with (
                suppress(OSError),
                urllib.request.urlopen(f"{base}/api/health/", timeout=2) as answer,
            ):
                if answer.status == 200:
                    break
            time.sleep(0.2)
        yield base
    finally:
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _fuzz(base: str, token: str, workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(BIN / "st"),
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/api/schema/",
            "--header",
            f"Authorization: Token {token}",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--no-color",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("user", ["alice", "admin"], ids=["customer", "staff"])
def test_fuzzing_the_api_against_its_schema_finds_no_failure_and_no_server_error(tmp_path, user):
    with _database(tmp_path) as database_url:
        environment = _environment(database_url)
        manage(environment, "migrate", "--noinput")
        manage(environment, "seed_demo", "--force")  # DEBUG is off, as in `make cluster`
        token = token_for(environment, user)
        with _served(environment, tmp_path / "gunicorn.log") as base:
            result = _fuzz(base, token, tmp_path)

    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-20000:]
    generated = re.search(r"(\d+) generated", report)
    assert generated and int(generated.group(1)) > 200, report[-5000:]
