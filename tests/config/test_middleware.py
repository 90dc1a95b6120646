"""Under /api/, a URL or a header too long is refused as JSON (414, 431) before any other work,
below the limits of the gunicorn config the project ships, so gunicorn never answers first.
Every request gets an id its log records carry and its answer echoes. Outside the API, the
store's lock timeout and a lost connection answer a 503 page."""

import logging
import re
import runpy
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError

from config.middleware import StoreUnavailableMiddleware
from eventstore.observability.logs import (
    LogContextFilter,
    current_context,
    end_request,
    start_request,
)
from eventstore.recorders import recorder
from eventstore.store import ConcurrencyError
from httpapi.caller import command_metadata
from httpapi.errors import CONNECTION_RETRY_AFTER_SECONDS
from httpapi.headers import HEADER_CONTROL_CHARACTERS

pytestmark = pytest.mark.django_db

GUNICORN_CONFIG = Path(__file__).resolve().parents[2] / "config" / "gunicorn.py"


def test_an_over_long_api_url_answers_json_414(staff_client):
    query = "x" * settings.API_MAX_URL_LENGTH

    response = staff_client.get(f"/api/orders/?status={query}")

    assert response.status_code == 414
    assert response.json() == {
        "detail": f"The URL is too long: the limit is {settings.API_MAX_URL_LENGTH} characters."
    }


def test_an_api_url_at_the_limit_is_served(staff_client):
    path = "/api/orders/?padding="
    query = "x" * (settings.API_MAX_URL_LENGTH - len(path))

    assert staff_client.get(path + query).status_code == 200


def test_an_over_long_api_header_answers_json_431(staff_client):
    response = staff_client.get(
        "/api/orders/", headers={"X-Padding": "x" * settings.API_MAX_HEADER_FIELD_SIZE}
    )

    assert response.status_code == 431
    assert response.json() == {
        "detail": "The X-Padding header is too large: the limit is "
        f"{settings.API_MAX_HEADER_FIELD_SIZE} bytes for its name and value."
    }


def test_an_api_header_at_the_limit_is_served(staff_client):
    value = "x" * (settings.API_MAX_HEADER_FIELD_SIZE - len("X-Padding: "))

    assert staff_client.get("/api/orders/", headers={"X-Padding": value}).status_code == 200


@pytest.mark.parametrize("header", ["X-Request-ID", "X-Correlation-ID", "User-Agent"])
def test_an_api_header_with_a_control_character_answers_json_400(staff_client, header):
    response = staff_client.get("/api/orders/", headers={header: "abc\x00def"})

    assert response.status_code == 400
    [(name, messages)] = response.json().items()
    assert name.lower() == header.lower()
    assert messages == ["Must not contain control characters (NUL, DEL, ...)."]
    # The refused request still gets an id of its own, not the one it sent.
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_a_tab_inside_an_api_header_is_served_as_http_allows(staff_client):
    assert staff_client.get("/api/orders/", headers={"X-Note": "a\tb"}).status_code == 200


def test_gunicorn_refuses_the_same_control_characters_before_django():
    from gunicorn.http.message import RFC9110_5_5_INVALID_AND_DANGEROUS

    assert RFC9110_5_5_INVALID_AND_DANGEROUS.pattern == HEADER_CONTROL_CHARACTERS.pattern


def test_long_urls_outside_the_api_are_left_to_django(client):
    response = client.get("/no-such-page/?q=" + "x" * settings.API_MAX_URL_LENGTH)

    assert response.status_code == 404


def test_the_shipped_gunicorn_config_lets_django_answer_first():
    gunicorn = runpy.run_path(str(GUNICORN_CONFIG))

    # gunicorn's request line is "GET <url> HTTP/1.1"; its header limit counts "Name: value".
    assert gunicorn["limit_request_line"] >= settings.API_MAX_URL_LENGTH + len("OPTIONS  HTTP/1.1")
    assert gunicorn["limit_request_field_size"] > settings.API_MAX_HEADER_FIELD_SIZE


# --- request ids ---------------------------------------------------------------------------------


@pytest.fixture
def captured(caplog):
    """caplog, its handler filtered as the project's console handler is."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(LogContextFilter())
    return caplog


def test_a_requests_records_carry_the_request_id_it_sent_and_the_answer_echoes_it(
    anonymous_client, captured
):
    def log_inside():
        logging.getLogger("tests.inside").info("inside the view")

    with patch.object(recorder(), "horizon", side_effect=log_inside):
        response = anonymous_client.get("/api/health/", headers={"X-Request-ID": "req-42"})

    assert response["X-Request-ID"] == "req-42"
    [inside] = [r for r in captured.records if r.name == "tests.inside"]
    assert inside.request_id == "req-42"
    assert current_context()["request_id"] == ""


def test_a_request_without_an_id_gets_a_new_one_also_on_djangos_own_log_of_a_4xx(
    anonymous_client, captured
):
    first = anonymous_client.get("/api/no-such-page/")
    second = anonymous_client.get("/api/no-such-page/")

    assert first.status_code == 404
    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]
    not_found = [r for r in captured.records if r.name == "django.request"]
    assert [r.request_id for r in not_found] == [first["X-Request-ID"], second["X-Request-ID"]]


@pytest.mark.parametrize("sent", ["", "x" * 129, "two words", "line\nbreak"])
def test_an_unusable_request_id_is_replaced(anonymous_client, sent):
    response = anonymous_client.get("/api/health/", headers={"X-Request-ID": sent})

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_a_command_that_names_its_order_puts_the_correlation_id_on_the_requests_records():
    request = SimpleNamespace(user=SimpleNamespace(pk=7))
    start_request("req-1")
    try:
        metadata = command_metadata(request, correlation_id="order-9")
        assert current_context()["correlation_id"] == "order-9"
    finally:
        end_request()

    assert metadata == {"actor": "user:7", "correlation_id": "order-9"}
    assert current_context()["correlation_id"] == ""


@pytest.mark.parametrize(
    ("path", "answered"), [("/admin/eventstore/event/", True), ("/api/orders/", False)]
)
def test_a_lost_connection_outside_the_api_answers_a_503_page(rf, path, answered):
    # As the driver raises it when it lost the server before any answer.
    error = OperationalError("consuming input failed: server closed the connection unexpectedly")
    error.__cause__ = psycopg.OperationalError("consuming input failed")

    response = StoreUnavailableMiddleware(lambda request: None).process_exception(
        rf.get(path), error
    )

    if not answered:  # the API's exception handler answers it as JSON
        assert response is None
        return
    assert response.status_code == 503
    assert response["Retry-After"] == str(CONNECTION_RETRY_AFTER_SECONDS)
    assert b"Service unavailable" in response.content


def test_other_errors_outside_the_api_are_left_to_django(rf):
    middleware = StoreUnavailableMiddleware(lambda request: None)
    request = rf.get("/admin/")

    assert middleware.process_exception(request, ValueError("a bug")) is None
    assert middleware.process_exception(request, ConcurrencyError("order", "o-1", 1, 2)) is None
