"""Static files in production: after `collectstatic`, gunicorn with the production settings
serves the admin's styles and the API docs' scripts itself (WhiteNoise), compressed and under
names made from their content, so browsers may keep them for ever."""

from __future__ import annotations

import gzip
import os
import re
import sys
import time
from pathlib import Path

import pytest

from tests.processes import Service, free_port, http_request, manage

pytestmark = pytest.mark.processes

STARTUP_TIMEOUT = 30


@pytest.fixture
def production(tmp_path: Path) -> dict[str, str]:
    """The production settings on a database of the test's own, its files collected."""
    environment = {
        **{key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": "static-files-test-key",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "STATIC_ROOT": str(tmp_path / "static"),
        "LOG_FORMAT": "text",
    }
    manage(environment, "migrate", "--noinput", "--verbosity", "0")
    manage(environment, "collectstatic", "--noinput", "--verbosity", "0")
    return environment


@pytest.fixture
def gunicorn(production, tmp_path):
    """gunicorn serving the production settings; its port."""
    port = free_port()
    server = Service(
        "gunicorn",
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "config.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
        ],
        production,
        tmp_path,
    ).start()
    try:
        server.wait_for_log(r"Booting worker", STARTUP_TIMEOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                http_request(port, "GET", "/api/health/", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.1)
        yield port
    finally:
        server.stop()


def assets(page: str, suffix: str) -> list[str]:
    """The static files of one kind a page links to."""
    return re.findall(rf'(/static/[^"\']+\.{suffix})["\']', page)


def fetched(port: int, path: str, **headers: str):
    answer = http_request(port, "GET", path, headers={"Accept": "*/*", **headers})
    assert answer.status == 200, (path, answer.status)
    return answer


def test_the_admins_styles_are_served_compressed_and_cacheable_for_ever(gunicorn):
    page = http_request(gunicorn, "GET", "/admin/login/", headers={"Accept": "text/html"}).body

    styles = assets(page, "css")
    assert any(re.search(r"/admin/css/base\.[0-9a-f]{12}\.css$", path) for path in styles), styles
    for path in styles:
        answer = fetched(gunicorn, path, **{"Accept-Encoding": "gzip"})
        assert answer.headers["Content-Type"].startswith("text/css")
        assert answer.headers.get("Content-Encoding") == "gzip"
        assert "immutable" in answer.headers["Cache-Control"]


def test_the_api_docs_scripts_and_styles_are_served(gunicorn):
    page = http_request(gunicorn, "GET", "/api/docs/", headers={"Accept": "text/html"}).body

    scripts = assets(page, "js")
    assert any("swagger-ui-bundle" in path for path in scripts), scripts
    for path in scripts + assets(page, "css"):
        body = fetched(gunicorn, path).body
        assert len(body) > 1000, path


def test_a_file_that_does_not_exist_is_a_404(gunicorn):
    assert http_request(gunicorn, "GET", "/static/admin/css/nothing.css").status == 404


def test_collectstatic_writes_each_file_compressed_beside_it(production):
    base = next(Path(production["STATIC_ROOT"]).glob("admin/css/base.*.css"))
    compressed = base.with_name(base.name + ".gz")

    assert gzip.decompress(compressed.read_bytes()) == base.read_bytes()
