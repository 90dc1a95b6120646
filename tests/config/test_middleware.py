"""Under /api/, a URL or a header too long is refused as JSON (414, 431) before any other work,
below the limits of the gunicorn config the project ships, so gunicorn never answers first."""

import runpy
from pathlib import Path

import pytest
from django.conf import settings

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


def test_long_urls_outside_the_api_are_left_to_django(client):
    response = client.get("/no-such-page/?q=" + "x" * settings.API_MAX_URL_LENGTH)

    assert response.status_code == 404


def test_the_shipped_gunicorn_config_lets_django_answer_first():
    gunicorn = runpy.run_path(str(GUNICORN_CONFIG))

    # gunicorn's request line is "GET <url> HTTP/1.1"; its header limit counts "Name: value".
    assert gunicorn["limit_request_line"] >= settings.API_MAX_URL_LENGTH + len("OPTIONS  HTTP/1.1")
    assert gunicorn["limit_request_field_size"] > settings.API_MAX_HEADER_FIELD_SIZE
