"""Helpers of the tests that start the project's own processes (tests marked `processes`):
management commands run as `make run` runs them, a free port, a demo account's API token; for
celery mode, checks that PostgreSQL and RabbitMQ answer, a database and a vhost of a test's
own, long-running processes logging to files, and plain HTTP requests; for a cache shared
by several processes, a check that Redis answers and a key prefix of a test's own."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
COMMAND_TIMEOUT = 120  # migrate, seed_demo, drf_create_token


def manage(environment: dict[str, str], *arguments: str) -> str:
    """`python manage.py ARGUMENTS` as the Makefile runs it (the development settings unless
    `environment` says otherwise); its output (the test fails on a non-zero exit)."""
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=environment,
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


# --- the services celery mode needs: PostgreSQL and RabbitMQ ------------------------------------

SERVICE_TIMEOUT = 3  # seconds a service may take to answer before tests that need it skip


def postgres_server() -> str:
    """postgres://user[:password]@host:port of the PostgreSQL server the suite runs on (its
    DATABASE_URL), to create databases of a test's own beside the suite's."""
    from django.db import connection

    settings = connection.settings_dict
    credentials = quote(settings["USER"] or "postgres", safe="")
    if settings.get("PASSWORD"):
        credentials += ":" + quote(settings["PASSWORD"], safe="")
    return f"postgres://{credentials}@{settings['HOST'] or HOST}:{settings['PORT'] or 5432}"


@contextmanager
def held_transaction(application_name: str, database_url: str | None = None) -> Iterator[int]:
    """A transaction on a connection of its own carrying `application_name` (to the suite's
    database, or `database_url`) that has taken a transaction id and stays open, idle, until
    the block ends (then rolls back); yields its backend's pid."""
    import psycopg
    from django.db import connection

    url = database_url or f"{postgres_server()}/{connection.settings_dict['NAME']}"
    with psycopg.connect(url, application_name=application_name) as held:
        held.execute("SELECT pg_current_xact_id()")
        try:
            yield held.info.backend_pid
        finally:
            held.rollback()


def postgres_missing(server: str) -> str | None:
    """Why the PostgreSQL server at `server` (postgres://user@host:port) cannot be used, or
    None when it answers."""
    import psycopg

    try:
        psycopg.connect(f"{server}/postgres", connect_timeout=SERVICE_TIMEOUT).close()
    except psycopg.Error as error:
        return f"PostgreSQL at {_without_password(server)} does not answer: {error}".strip()
    return None


def rabbitmq_missing(broker_url: str) -> str | None:
    """Why the AMQP broker at `broker_url` cannot be used, or None when it answers."""
    from kombu import Connection

    try:
        with Connection(broker_url, connect_timeout=SERVICE_TIMEOUT) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # kombu's OperationalError, socket errors
        return f"RabbitMQ at {_without_password(broker_url)} does not answer: {error}"
    return None


REDIS = "redis://127.0.0.1:6379/0"  # the Redis server tests that need one use


def redis_missing(url: str = REDIS) -> str | None:
    """Why the Redis server at `url` cannot be used, or None when it answers."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=SERVICE_TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as error:
        return f"Redis at {_without_password(url)} does not answer: {error}"
    finally:
        client.close()
    return None


@contextmanager
def redis_key_prefix(prefix: str, url: str = REDIS) -> Iterator[str]:
    """A key prefix of a unique name (CACHE_KEY_PREFIX) on the Redis server at `url`; yields it
    and deletes the keys under it afterwards, and only those."""
    import redis

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        client = redis.Redis.from_url(url, socket_connect_timeout=SERVICE_TIMEOUT)
        try:
            keys = list(client.scan_iter(match=f"{name}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def postgres_database(server: str, prefix: str, template: str | None = None) -> Iterator[str]:
    """A fresh database of a unique name on `server` (a copy of `template` if given); yields
    its URL and drops it afterwards, with whatever is still connected to it."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f" TEMPLATE {template}" if template else ""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}{copy}")
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class RabbitmqctlUnavailable(Exception):
    """rabbitmqctl is not installed, or cannot manage the broker from here."""


RABBITMQCTL_MISSING = "rabbitmqctl is missing: it creates each test's own RabbitMQ vhost"


def rabbitmqctl_missing() -> str | None:
    """Why rabbitmqctl cannot be run (not on PATH), or None."""
    return None if shutil.which("rabbitmqctl") else RABBITMQCTL_MISSING


def _rabbitmqctl(*arguments: str) -> None:
    try:
        result = subprocess.run(
            ["rabbitmqctl", *arguments],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise RabbitmqctlUnavailable(RABBITMQCTL_MISSING) from None
    if result.returncode != 0:
        raise RabbitmqctlUnavailable(
            f"rabbitmqctl {' '.join(arguments)} failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()}"
        )


@contextmanager
def rabbitmq_vhost(prefix: str, user: str = "guest") -> Iterator[str]:
    """A RabbitMQ vhost of a unique name that `user` may use in full; yields its name and
    deletes it (with its queues and exchanges) afterwards. Raises RabbitmqctlUnavailable when
    rabbitmqctl cannot create it. The server itself is never stopped."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield name
    finally:
        with suppress(RabbitmqctlUnavailable):
            _rabbitmqctl("delete_vhost", name)


# --- processes that log to a file ---------------------------------------------------------------


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ("" when there is none)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Service:
    """One long-running process of the project (a server, a worker), its output in a log file.

    Each is started in a session of its own, so that its process group (a Celery worker's pool
    children, gunicorn's workers) is signalled as one: `kill` is a crash, `stop` a shutdown.
    `start` again after either starts a new incarnation, logging to a new file.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.logs = logs
        self.process: subprocess.Popen | None = None
        self.incarnation = 0
        self.log_path = logs / f"{name}.log"

    def start(self) -> Service:
        self.incarnation += 1
        suffix = "" if self.incarnation == 1 else f".{self.incarnation}"
        self.log_path = self.logs / f"{self.name}{suffix}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in this incarnation's log, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log(), re.MULTILINE)
            if match:
                return match
            assert self.alive, (
                f"{self.name} exited before logging {pattern!r}:\n{tail(self.log_path)}"
            )
            assert time.monotonic() < deadline, (
                f"{self.name} did not log {pattern!r} in {timeout} s:\n{tail(self.log_path)}"
            )
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash of its machine would."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(KILL_TIMEOUT)

    def terminate(self) -> None:
        """SIGTERM the process itself, which stops its children as it shuts down (a Celery
        worker finishes its task first: its warm shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        """SIGTERM the process; SIGKILL its whole group after KILL_TIMEOUT seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.terminate()
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(KILL_TIMEOUT)
        # The leader may be gone while its children are not: the group is killed either way.
        self._signal(signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(KILL_TIMEOUT)

    def _signal(self, signum: int) -> None:
        if self.process is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)


KILL_TIMEOUT = 10  # seconds from SIGTERM until SIGKILL


# --- HTTP -----------------------------------------------------------------------------------------


@dataclass
class Answer:
    """One HTTP answer: status, headers and the body read as JSON (None if it is not)."""

    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Answer:
    """One request to the server on HOST:port, on a connection of its own."""
    sent = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    if token:
        sent["Authorization"] = f"Token {token}"
    started = time.monotonic()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, None if body is None else json.dumps(body), sent)
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = content.decode(errors="replace")
    return Answer(response.status, dict(response.getheaders()), parsed, time.monotonic() - started)


# --- honcho's console: make run and make cluster ----------------------------------------------

# honcho's line for each process it started: "HH:MM:SS name.1 | started (pid=123)".
STARTED = re.compile(r"\| (\w+)(?:\.\d+)? started \(pid=(\d+)\)")


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to a process group that may be gone already."""
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Console:
    """A command that runs honcho (honcho itself, or make), started in a session of its own as
    the foreground job a terminal's Ctrl+C signals; its console (a file) and the server's port.
    """

    process: subprocess.Popen
    console_path: Path
    port: int

    def console(self) -> str:
        return self.console_path.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        """Process name -> the pid honcho started it with. honcho starts each in a session of
        its own, so the pid is also the process group of the process and its children
        (gunicorn's workers, Celery's pool, runserver's autoreloaded child)."""
        return {name: int(pid) for name, pid in STARTED.findall(self.console())}

    def wait_for_console(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.console(), re.MULTILINE)
            if match or time.monotonic() > deadline:
                assert match, f"{pattern!r} not in the console:\n{self.console()}"
                return match
            time.sleep(0.1)

    def request(self, method: str, path: str, token: str | None = None, body: Any = None):
        """(status, JSON answer or None) of one request to the server."""
        answer = http_request(self.port, method, path, token=token, body=body, timeout=10)
        return answer.status, None if isinstance(answer.body, str) else answer.body

    def get(self, path: str, token: str) -> Any:
        status, answer = self.request("GET", path, token)
        assert status == 200, (path, status, answer)
        return answer

    def wait_until_serving(self, timeout: float) -> None:
        """Until /api/health/ answers 200; fails if the command stops first."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"{self.process.args[0]} stopped:\n{self.console()}"
            assert time.monotonic() < deadline, f"no answer in {timeout} s:\n{self.console()}"
            with suppress(OSError):
                if self.request("GET", "/api/health/")[0] == 200:
                    return
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM the command's group (honcho stops its processes); SIGKILL after KILL_TIMEOUT,
        and kill whatever is left of every process honcho started (orphans in groups of their
        own once honcho is gone)."""
        if self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(KILL_TIMEOUT)
            except subprocess.TimeoutExpired:
                signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait()
        signal_group(self.process.pid, signal.SIGKILL)  # honcho, had it outlived make
        for pgid in self.children().values():
            signal_group(pgid, signal.SIGKILL)
