"""Scenario: gunicorn with two workers, the production settings and CACHE_URL naming Redis. One
anonymous caller's requests, answered by both workers in turn, are counted once: THROTTLE_ANON
of them are allowed in all and every later one answers 429, whichever worker takes it. With
each worker's own LocMemCache every one of them would be allowed.

Marked `processes`; needs Redis at REDIS (skipped, naming it, otherwise). Its keys live under a
prefix of the test's own, deleted afterwards."""

from __future__ import annotations

import http.client
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import (
    HOST,
    REDIS,
    Service,
    free_port,
    http_request,
    redis_key_prefix,
    redis_missing,
)

pytestmark = pytest.mark.processes

RATE = 5  # THROTTLE_ANON, per minute: every request below is sent well within one
WORKERS = 2
THROTTLED = "/api/schema/?format=json"  # anonymous callers may read it, at THROTTLE_ANON
STARTUP_TIMEOUT = 30
# gunicorn's access log: the answering worker's pid, the status, the request line.
ACCESS_FORMAT = '%(p)s %(s)s "%(r)s"'
ANSWERED = re.compile(r'^<(\d+)> (\d{3}) "GET /api/schema/', re.MULTILINE)


@pytest.fixture
def cache_prefix() -> Iterator[str]:
    """A Redis key prefix of the test's own; skips the test when Redis does not answer."""
    missing = redis_missing(REDIS)
    if missing:
        pytest.skip(missing)
    with redis_key_prefix("throttle_test", REDIS) as prefix:
        yield prefix


@pytest.fixture
def gunicorn(tmp_path: Path, cache_prefix: str) -> Iterator[tuple[int, Service]]:
    """gunicorn with two workers sharing the Redis cache; its port, and the server (whose log
    is its access log)."""
    environment = {
        **{key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": "shared-throttle-test-key",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",  # never written: no migrate
        "CACHE_URL": REDIS,
        "CACHE_KEY_PREFIX": cache_prefix,
        "THROTTLE_ANON": f"{RATE}/min",
    }
    port = free_port()
    server = Service(
        "gunicorn",
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-c",
            "config/gunicorn.py",
            "config.wsgi",
            f"--workers={WORKERS}",
            f"--bind=127.0.0.1:{port}",
            "--access-logfile=-",
            f"--access-logformat={ACCESS_FORMAT}",
        ],
        environment,
        tmp_path,
    ).start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(re.findall(r"Booting worker with pid", server.log())) < WORKERS:
            assert server.alive and time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        yield port, server
    finally:
        server.stop()


def answered_by(server: Service, count: int) -> list[tuple[int, int]]:
    """(worker pid, status) of `count` requests to THROTTLED in the access log, waiting for
    gunicorn to write them."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while len(answers := ANSWERED.findall(server.log())) < count:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    return [(int(pid), int(status)) for pid, status in answers[:count]]


def both_workers_answer(port: int) -> tuple[int, int]:
    """The statuses of two requests to THROTTLED, one after the other, each answered by another
    worker. A sync worker serves one connection at a time: a connection opened first, with
    nothing sent yet, holds whichever worker accepts it, so the second request, sent meanwhile
    on a connection of its own, is taken by the other; then the first is sent."""
    held = http.client.HTTPConnection(HOST, port, timeout=STARTUP_TIMEOUT)
    try:
        held.connect()
        other = http_request(port, "GET", THROTTLED, timeout=STARTUP_TIMEOUT).status
        held.request("GET", THROTTLED, headers={"Accept": "application/json"})
        response = held.getresponse()
        response.read()
        return other, response.status
    finally:
        held.close()


def test_two_workers_count_one_callers_requests_together_in_redis(gunicorn):
    port, server = gunicorn

    statuses = [status for _ in range(RATE) for status in both_workers_answer(port)]

    # One after the other, so no two requests race: exactly the rate is allowed.
    assert statuses == [200] * RATE + [429] * RATE
    # Each worker answered RATE of them (gunicorn's access log; two processes write it, so its
    # order may differ from the requests'): counting on its own, each would have allowed all.
    answers = answered_by(server, 2 * RATE)
    assert sorted(Counter(pid for pid, _ in answers).values()) == [RATE] * WORKERS, answers
    assert Counter(status for _, status in answers) == Counter(statuses), answers
