"""The OpenAPI schema documents every endpoint without a generator warning."""

import json
import re

import pytest
from django.core.management import call_command

from httpapi.headers import HEADER_VALUE_PATTERN
from inventory.models import ProductStock


def test_the_schema_generates_and_validates_without_warnings(tmp_path):
    # --fail-on-warn turns any drf-spectacular warning (an undocumented view, colliding
    # component or operation names) into an error.
    out = tmp_path / "schema.json"
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--format",
        "openapi-json",
        "--file",
        str(out),
    )
    schema = json.loads(out.read_text())
    assert {
        "/api/inventory/",
        "/api/inventory/{product_id}/restock/",
        "/api/inventory/reserve/",
        "/api/inventory/release/",
        "/api/payments/charge/",
        "/api/payments/refund/",
        "/api/payments/{payment_id}/",
        "/api/notifications/send/",
        "/api/notifications/{customer_id}/",
        "/api/events/",
    } <= set(schema["paths"])


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/api/inventory/reserve/", "post", {"200", "400", "403", "409"}),
        ("/api/inventory/{product_id}/restock/", "post", {"200", "400", "404", "422"}),
        ("/api/payments/charge/", "post", {"200", "400", "402", "504"}),
        ("/api/payments/refund/", "post", {"200", "404"}),
        ("/api/notifications/send/", "post", {"201", "400", "403"}),
    ],
)
def test_command_endpoints_document_their_error_answers(tmp_path, path, method, codes):
    out = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out))
    responses = json.loads(out.read_text())["paths"][path][method]["responses"]
    assert codes <= set(responses)


# --- the schema is as strict as the API ----------------------------------------------------------


@pytest.fixture(scope="module")
def schema():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema, method=None):
    """(path, method, operation) of every operation, or of every one of `method`."""
    return [
        (path, verb, operation)
        for path, verbs in schema["paths"].items()
        for verb, operation in verbs.items()
        if method is None or verb == method
    ]


def test_post_bodies_are_json_only(schema):
    posts = operations(schema, "post")

    assert posts
    for path, _, operation in posts:
        assert set(operation["requestBody"]["content"]) == {"application/json"}, path


def test_the_limits_of_an_order_are_in_the_schema(schema):
    place = schema["paths"]["/api/orders/"]["post"]
    items = schema["components"]["schemas"]["PlaceOrderInput"]["properties"]["items"]
    [key] = [p for p in place["parameters"] if p["name"] == "Idempotency-Key"]

    assert (items["minItems"], items["maxItems"]) == (1, 100)
    assert key["in"] == "header"
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    assert key["schema"]["pattern"] == "^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$"


def test_placing_an_order_documents_202_and_the_prefer_wait_headers(schema):
    place = schema["paths"]["/api/orders/"]["post"]
    [prefer] = [p for p in place["parameters"] if p["name"] == "Prefer"]

    assert prefer["in"] == "header"
    assert "wait=N" in prefer["description"]
    # Only control characters are refused: a preference it cannot read is ignored, not a 400.
    assert prefer["schema"]["pattern"] == HEADER_VALUE_PATTERN
    for code in ("201", "202"):
        answer = place["responses"][code]
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/OrderOutput")
        assert answer["headers"]["Location"]["required"] is True
        assert {"Preference-Applied", "Idempotent-Replayed"} <= set(answer["headers"])


def test_a_notifications_message_length_is_in_the_schema(schema):
    message = schema["components"]["schemas"]["SendInput"]["properties"]["message"]

    assert (message["minLength"], message["maxLength"]) == (1, 2000)


def test_list_operations_document_a_bad_filter_and_a_bad_page(schema):
    # The paginated, filterable lists (an order's events are one answer, not pages).
    lists = [
        (path, operation)
        for path, _, operation in operations(schema, "get")
        if {"page", "cursor"} & {p["name"] for p in operation.get("parameters", [])}
    ]

    assert {path for path, _ in lists} >= {"/api/orders/", "/api/events/", "/api/inventory/"}
    for path, operation in lists:
        assert {"400", "404"} <= set(operation["responses"]), path


def test_post_operations_document_every_answer_of_their_body_and_their_caller(schema):
    for path, _, operation in operations(schema, "post"):
        assert {"400", "401", "403", "413", "415", "429"} <= set(operation["responses"]), path


def test_every_authenticated_operation_documents_429_with_retry_after(schema):
    for path, verb, operation in operations(schema):
        if path == "/api/health/":
            assert "429" not in operation["responses"]
            continue
        throttled = operation["responses"]["429"]
        assert throttled["headers"]["Retry-After"]["schema"]["type"] == "integer", (path, verb)


@pytest.mark.django_db
def test_filters_sent_empty_are_documented_as_allowed_and_are_ignored(schema, staff_client):
    """django-filter ignores an empty filter (the browsable API's filter form sends every
    field), so the schema allows it rather than promising a 400."""
    orders = schema["paths"]["/api/orders/"]["get"]["parameters"]
    created_after = next(p for p in orders if p["name"] == "created_after")

    assert created_after["allowEmptyValue"] is True
    assert staff_client.get("/api/orders/?created_after=&status=").status_code == 200


def test_amounts_and_free_text_state_their_rules_in_the_schema(schema):
    components = schema["components"]["schemas"]
    price = components["ProductCreateInput"]["properties"]["price"]
    amount = components["ChargeInput"]["properties"]["amount"]
    name = components["ProductCreateInput"]["properties"]["name"]

    assert price["pattern"] == amount["pattern"]
    assert (price["type"], name["type"], name["maxLength"]) == ("string", "string", 200)
    assert re.search(name["pattern"], " Blue widget ")
    # Blank, or with a NUL character (which the API refuses), the schema refuses too.
    for refused in ["", "   ", "Blue\x00widget"]:
        assert not re.search(name["pattern"], refused), refused
    assert re.fullmatch(price["pattern"], "0.01") and re.fullmatch(price["pattern"], "12.5")
    for refused in ["0", "0.00", "1.234", "-1", "", "01.00", "12345678901"]:
        assert not re.fullmatch(price["pattern"], refused), refused


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [10, 9.99, "0.00", "1.234"])
def test_an_amount_that_is_not_a_positive_decimal_string_answers_400(staff_client, amount):
    body = {"payment_id": "p-1", "customer_id": "c-1", "amount": amount}

    response = staff_client.post("/api/payments/charge/", body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["amount"]


@pytest.mark.django_db
def test_a_blank_product_name_answers_400(staff_client):
    body = {"product_id": "p-1", "name": "   ", "price": "1.00"}

    response = staff_client.post("/api/inventory/", body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_every_write_documents_503_with_retry_after(schema):
    posts = operations(schema, "post")

    assert posts
    for path, _, operation in posts:
        busy = operation["responses"]["503"]
        assert "nothing was written" in busy["description"], path
        assert "Retry-After" in busy.get("headers", {}), path


# --- operations grouped by service ---------------------------------------------------------------


def test_every_operation_is_tagged_with_one_declared_service(schema):
    services = [tag["name"] for tag in schema["tags"]]

    assert services == [
        "orders",
        "inventory",
        "payments",
        "notifications",
        "webhooks",
        "events",
        "health",
    ]
    assert all(tag["description"] for tag in schema["tags"])
    for path, verb, operation in operations(schema):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in services, (path, verb)
        # The group is the path's service: /api/<service>/...
        assert path.startswith(f"/api/{operation['tags'][0]}/"), (path, verb)


def test_operation_ids_are_unique_and_start_with_their_service(schema):
    ids = [operation["operationId"] for _, _, operation in operations(schema)]

    assert len(ids) == len(set(ids))
    for _, _, operation in operations(schema):
        assert operation["operationId"].startswith(f"{operation['tags'][0]}_")
    assert {"orders_list", "orders_create", "orders_saga", "inventory_reserve"} <= set(ids)


def test_every_operation_has_a_summary(schema):
    for path, verb, operation in operations(schema):
        assert operation.get("summary"), (path, verb)


@pytest.mark.parametrize(
    ("component", "field"),
    [("ProductCreateInput", "name"), ("SendInput", "message"), ("RefundInput", "transaction_id")],
)
def test_free_text_fields_state_in_the_schema_that_they_refuse_a_nul_and_blank_text(
    schema, component, field
):
    pattern = schema["components"]["schemas"][component]["properties"][field]["pattern"]

    for taken in ["a", " Blue mug ", "line one\nline two", "tab\tand ünïcode"]:
        assert re.search(pattern, taken), taken
    for refused in ["", "   ", "a\x00b", "\x00", " \x00 "]:
        assert not re.search(pattern, refused), refused


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["Blue\x00mug", "\x00"], ids=["inside", "alone"])
def test_a_product_name_with_a_nul_answers_400_as_the_schema_says_and_writes_nothing(
    schema, staff_client, name
):
    pattern = schema["components"]["schemas"]["ProductCreateInput"]["properties"]["name"]
    body = {"product_id": "p-1", "name": name, "price": "1.00"}

    response = staff_client.post("/api/inventory/", body, format="json")

    assert not re.search(pattern["pattern"], name)
    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    assert not ProductStock.objects.exists()


@pytest.mark.django_db
def test_a_text_filter_states_and_refuses_a_nul(schema, staff_client):
    [name] = [
        p for p in schema["paths"]["/api/inventory/"]["get"]["parameters"] if p["name"] == "name"
    ]

    response = staff_client.get("/api/inventory/", {"name": "a\x00b"})

    assert not re.search(name["schema"]["pattern"], "a\x00b")
    assert re.search(name["schema"]["pattern"], "mug")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["", "0", "-1", "one"])
def test_a_page_number_below_1_empty_or_not_a_number_is_no_such_page(schema, staff_client, page):
    [parameter] = [
        p for p in schema["paths"]["/api/orders/"]["get"]["parameters"] if p["name"] == "page"
    ]

    response = staff_client.get(f"/api/orders/?page={page}")

    assert parameter["schema"] == {"type": "integer", "minimum": 1}
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}
