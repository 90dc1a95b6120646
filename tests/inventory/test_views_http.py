"""The inventory API as HTTP: malformed and oversized bodies, the schema, the browsable API."""

import json

import pytest

from tests.inventory.endpoints import (
    LIST_URL,
    RELEASE_URL,
    RESERVE_URL,
    detail_url,
    reserve_body,
    restock_url,
)

pytestmark = pytest.mark.django_db

# --- malformed and oversized bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    "url", [LIST_URL, restock_url("p1"), RESERVE_URL, RELEASE_URL], ids=lambda url: url
)
def test_malformed_json_answers_400_and_writes_nothing(
    staff_client, make_product, event_count, url
):
    make_product("p1", stock=10)
    count = event_count()

    response = staff_client.post(url, '{"reservation_id": ', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert event_count() == count


@pytest.mark.parametrize("body", ["[]", '"text"', "42", "null"])
def test_a_json_body_that_is_not_an_object_answers_400(
    staff_client, make_product, event_count, body
):
    make_product("p1", stock=10)
    count = event_count()

    response = staff_client.post(RESERVE_URL, body, content_type="application/json")

    assert response.status_code == 400
    assert event_count() == count


def test_an_oversized_body_answers_413_and_writes_nothing(
    staff_client, make_product, event_count, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    make_product("p1", stock=10)
    count = event_count()
    body = json.dumps(reserve_body("order-1", ("p1", 1)) | {"padding": "x" * 2000})

    response = staff_client.post(RESERVE_URL, body, content_type="application/json")

    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert event_count() == count


# --- schema and browsable API --------------------------------------------------------------------


@pytest.fixture
def schema(staff_client):
    response = staff_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/api/inventory/", "post", {"201", "400", "403", "409"}),
        ("/api/inventory/", "get", {"200"}),
        ("/api/inventory/{product_id}/", "get", {"200", "404"}),
        ("/api/inventory/{product_id}/restock/", "post", {"200", "400", "403", "404", "422"}),
        ("/api/inventory/{product_id}/", "patch", {"200", "400", "403", "404"}),
        ("/api/inventory/{product_id}/", "delete", {"200", "400", "403", "404"}),
        ("/api/inventory/{product_id}/restore/", "post", {"200", "400", "403", "404"}),
        (
            "/api/inventory/{product_id}/adjust/",
            "post",
            {"200", "400", "403", "404", "409", "422"},
        ),
        ("/api/inventory/{product_id}/history/", "get", {"200", "403", "404"}),
        ("/api/inventory/reserve/", "post", {"200", "400", "403", "409"}),
        ("/api/inventory/release/", "post", {"200", "400", "403", "404", "409"}),
    ],
)
def test_schema_documents_each_endpoint_with_its_response_codes(schema, path, method, codes):
    assert codes <= set(schema["paths"][path][method]["responses"])


def test_schema_documents_the_list_filters_and_page(schema):
    parameters = {p["name"] for p in schema["paths"]["/api/inventory/"]["get"]["parameters"]}

    assert {"name", "in_stock", "status", "discontinued", "page"} <= parameters


@pytest.mark.parametrize("action", ["restock", "adjust"])
def test_schema_documents_the_idempotency_key_header_of_stock_commands(schema, action):
    [header] = [
        p
        for p in schema["paths"][f"/api/inventory/{{product_id}}/{action}/"]["post"]["parameters"]
        if p["in"] == "header"
    ]

    assert header["name"] == "Idempotency-Key"
    assert header.get("required", False) is False


@pytest.mark.parametrize(
    "path",
    [
        "/api/inventory/{product_id}/restock/",
        "/api/inventory/{product_id}/adjust/",
        "/api/inventory/{product_id}/restore/",
        "/api/inventory/reserve/",
        "/api/inventory/release/",
    ],
)
def test_schema_shows_no_list_parameters_on_command_actions(schema, path):
    parameters = {p["name"] for p in schema["paths"][path]["post"].get("parameters", [])}

    assert not parameters & {"name", "in_stock", "page"}


def test_schema_documents_the_shortage_answer_of_reserve(schema):
    conflict = schema["paths"]["/api/inventory/reserve/"]["post"]["responses"]["409"]
    reference = conflict["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]

    assert {"success", "reason", "details"} <= set(component["properties"])


def test_browsable_api_renders_the_product_list(client, staff_user, make_product):
    make_product("p1", name="Blue widget")
    client.force_login(staff_user)

    response = client.get(LIST_URL, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Blue widget" in response.content.decode()


def test_browsable_api_renders_a_product_and_the_command_forms(client, staff_user, make_product):
    make_product("p1", name="Blue widget")
    client.force_login(staff_user)

    detail = client.get(detail_url("p1"), HTTP_ACCEPT="text/html")
    reserve = client.get(RESERVE_URL, HTTP_ACCEPT="text/html")

    assert detail.status_code == 200
    assert "Blue widget" in detail.content.decode()
    # GET is not allowed on a command, but the page with its POST form still renders.
    assert reserve.status_code == 405
    assert reserve["Content-Type"].startswith("text/html")
