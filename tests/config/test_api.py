"""Every 4xx under /api/ is JSON; oversized bodies are refused with 413."""

import json

import pytest
from django.test import override_settings
from django.urls import path
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from config.api import bad_request, server_error
from config.settings import API_MAX_JSON_DEPTH
from eventstore.models import Event
from eventstore.store import AppendTimeout, ConcurrencyError


class Echo(APIView):
    authentication_classes = []
    permission_classes = []

    def post(self, request):
        return Response({"received": len(json.dumps(request.data))})


urlpatterns = [path("api/echo/", Echo.as_view())]
handler400 = "config.api.bad_request"


@pytest.mark.urls(__name__)
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_json_body_over_the_limit_is_refused_with_413(client):
    body = json.dumps({"blob": "x" * 2000})

    response = client.post("/api/echo/", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is too large: the limit is 1000 bytes."}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_json_body_within_the_limit_is_parsed():
    request = APIRequestFactory().post("/api/echo/", {"blob": "x" * 10}, format="json")

    response = Echo.as_view()(request)

    assert response.status_code == 200
    assert response.data == {"received": len(json.dumps({"blob": "x" * 10}))}


def test_malformed_json_is_a_json_400():
    request = APIRequestFactory().post("/api/echo/", "{not json", content_type="application/json")

    response = Echo.as_view()(request)

    assert response.status_code == 400
    assert "JSON parse error" in response.data["detail"]


def nested(depth: int) -> str:
    """A JSON object holding arrays and objects `depth` levels deep in all."""
    inner = "[]"
    for level in range(depth - 2):
        inner = f"[{inner}]" if level % 2 else f'{{"a": {inner}}}'
    return f'{{"blob": {inner}}}'


def test_a_body_nested_as_deep_as_the_limit_is_parsed():
    body = nested(API_MAX_JSON_DEPTH)
    request = APIRequestFactory().post("/api/echo/", body, content_type="application/json")

    response = Echo.as_view()(request)

    assert response.status_code == 200


@pytest.mark.parametrize("depth", [API_MAX_JSON_DEPTH + 1, 5000])
def test_a_body_nested_deeper_than_the_limit_is_a_json_400(depth):
    body = nested(depth)
    request = APIRequestFactory().post("/api/echo/", body, content_type="application/json")

    response = Echo.as_view()(request)

    assert response.status_code == 400
    assert response.data["detail"] == (
        f"JSON parse error - nested deeper than {API_MAX_JSON_DEPTH} levels."
    )


@pytest.mark.django_db
def test_an_unknown_api_path_answers_json_404(client):
    response = client.get("/api/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No endpoint at /api/no-such-thing/."}


@pytest.mark.django_db
def test_an_unknown_path_outside_the_api_keeps_the_html_page(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("handler", "status"),
    [(lambda request: bad_request(request, Exception()), 400), (server_error, 500)],
)
def test_error_pages_are_json_under_the_api_and_html_elsewhere(rf, handler, status):
    api = handler(rf.get("/api/orders/"))
    page = handler(rf.get("/admin/"))

    assert (api.status_code, page.status_code) == (status, status)
    assert "detail" in json.loads(api.content)
    assert page["Content-Type"].startswith("text/html")


class Contended(APIView):
    permission_classes = []

    def post(self, request):
        raise ConcurrencyError("product", "sku-1", expected=3, actual=4)


def test_a_command_that_keeps_losing_races_answers_409_not_500():
    request = APIRequestFactory().post("/api/contended/", {}, format="json")
    response = Contended.as_view()(request)
    assert response.status_code == 409
    assert "retry" in response.data["detail"]


class Busy(APIView):
    permission_classes = []

    def post(self, request):
        raise AppendTimeout("database is locked")


def test_a_write_that_waited_too_long_for_its_turn_answers_503_with_retry_after():
    request = APIRequestFactory().post("/api/busy/", {}, format="json")
    response = Busy.as_view()(request)
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "nothing was written" in response.data["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("customer_id=c1&type=promotion&message=Hi", "application/x-www-form-urlencoded"),
        (
            '--b\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\nc1\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ],
    ids=["form", "multipart"],
)
def test_a_form_body_answers_415_and_writes_nothing(staff_client, body, content_type):
    response = staff_client.post("/api/notifications/send/", body, content_type=content_type)

    assert response.status_code == 415
    assert "detail" in response.json()
    assert not Event.objects.exists()


def test_the_home_page_links_the_api_its_docs_the_admin_and_health(anonymous_client):
    response = anonymous_client.get("/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    for link in ("/api/", "/api/docs/", "/api/redoc/", "/api/schema/", "/admin/", "/api/health/"):
        assert f'href="{link}"' in page, link
