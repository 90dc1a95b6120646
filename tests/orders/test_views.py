"""The orders HTTP API: customers place and read their own orders, staff act for anyone."""

import time

import pytest

from eventstore.models import Event
from eventstore.subscriptions import catch_up_all
from notifications.services import notification_send
from orders import events
from orders import services as order_services
from orders.services import order_id_for_key

pytestmark = pytest.mark.django_db

LIST_URL = "/api/orders/"


def detail_url(order_id, action=""):
    return f"{LIST_URL}{order_id}/{action + '/' if action else ''}"


def body(**overrides):
    data = {"items": [{"product_id": "p1", "quantity": 2}], "payment_token": "tok_visa_success"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def post(client, key=None, prefer=None, **overrides):
    headers = {"Idempotency-Key": key} if key is not None else {}
    if prefer is not None:
        headers["Prefer"] = prefer
    return client.post(LIST_URL, body(**overrides), format="json", headers=headers)


def listed(response):
    assert response.status_code == 200
    return [order["order_id"] for order in response.json()["results"]]


@pytest.fixture
def product(make_product):
    return make_product("p1", stock=100, price="12.50")


@pytest.fixture
def event_count(db):
    """A function giving how many events the log holds."""
    return Event.objects.count


# --- placing an order ----------------------------------------------------------------------------


def test_a_customer_places_an_order_and_gets_201_with_its_location(
    customer_client, product, run_after_commit
):
    user = customer_client.user

    with run_after_commit():
        response = post(customer_client)

    assert response.status_code == 201
    order = response.json()
    order_id = order["order_id"]
    assert response["Location"] == f"/api/orders/{order_id}/"
    assert "Idempotent-Replayed" not in response
    assert order == {
        "order_id": order_id,
        "customer_id": str(user.pk),
        "status": "pending",  # the saga runs once the request's transaction commits
        "items": [{"product_id": "p1", "quantity": 2, "unit_price": None}],
        "total_amount": None,
        "cancel_reason": "",
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }
    created = Event.objects.get(aggregate_type=events.ORDER, event_type=events.ORDER_CREATED)
    assert created.metadata == {"actor": f"user:{user.pk}", "correlation_id": order_id}
    assert customer_client.get(detail_url(order_id)).json()["status"] == "completed"


@pytest.mark.django_db(transaction=True)
def test_the_201_shows_how_far_the_saga_got_once_the_order_committed(customer_client, product):
    response = post(customer_client)

    assert response.status_code == 201
    order = response.json()
    assert (order["status"], order["total_amount"]) == ("completed", "25.00")
    assert order["items"] == [{"product_id": "p1", "quantity": 2, "unit_price": "12.50"}]


def test_the_payment_token_defaults_to_the_approving_token(customer_client, product):
    response = post(customer_client, payment_token=None)

    assert response.status_code == 201
    created = Event.objects.get(event_type=events.ORDER_CREATED)
    assert created.payload["payment_method"] == events.payment_method_of("tok_visa_success")


def test_staff_place_an_order_for_the_customer_they_name(staff_client, product):
    response = post(staff_client, customer_id="c-42")

    assert response.status_code == 201
    assert response.json()["customer_id"] == "c-42"


def test_staff_without_a_customer_id_order_for_themselves(staff_client, product):
    response = post(staff_client)

    assert response.json()["customer_id"] == str(staff_client.user.pk)


def test_a_customer_may_name_themselves(customer_client, product):
    response = post(customer_client, customer_id=str(customer_client.user.pk))

    assert response.status_code == 201


def test_a_customer_naming_another_customer_is_forbidden_and_nothing_is_written(
    customer_client, product, event_count
):
    before = event_count()

    response = post(customer_client, customer_id="someone-else")

    assert response.status_code == 403
    assert response.json() == {"detail": "Customers place orders for themselves only."}
    assert event_count() == before


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("items", {"items": None}),
        ("items", {"items": []}),
        ("items", {"items": "p1"}),
        ("items", {"items": [{"product_id": "p1", "quantity": 0}]}),
        ("items", {"items": [{"product_id": "p1", "quantity": 1001}]}),
        ("items", {"items": [{"product_id": "p1", "quantity": "two"}]}),
        ("items", {"items": [{"product_id": "p1"}]}),
        ("items", {"items": [{"product_id": "bad id!", "quantity": 1}]}),
        ("items", {"items": [{"product_id": "p" * 65, "quantity": 1}]}),
        ("items", {"items": [{"product_id": f"p{n}", "quantity": 1} for n in range(101)]}),
        ("customer_id", {"customer_id": "bad id!"}),
        ("customer_id", {"customer_id": ""}),
        ("payment_token", {"payment_token": "t" * 65}),
    ],
    ids=[
        "no items",
        "empty items",
        "items not a list",
        "zero quantity",
        "quantity too large",
        "quantity not a number",
        "quantity missing",
        "bad product id",
        "product id too long",
        "too many lines",
        "bad customer id",
        "empty customer id",
        "token too long",
    ],
)
def test_bad_input_answers_400_naming_the_field_and_writes_nothing(
    staff_client, product, event_count, field, overrides
):
    before = event_count()

    response = post(staff_client, **overrides)

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert event_count() == before


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [{"product_id": "p1", "quantity": 1}, {"product_id": "p1", "quantity": 2}],
            "Product 'p1' appears on two lines",
        ),
        (
            [{"product_id": "p1", "quantity": 1}, {"product_id": "ghost", "quantity": 1}],
            "Unknown product(s): ghost",
        ),
    ],
    ids=["duplicate product", "unknown product"],
)
def test_lines_the_order_cannot_take_answer_422_on_items_and_write_nothing(
    customer_client, product, event_count, items, message
):
    before = event_count()

    response = post(customer_client, items=items)

    assert response.status_code == 422
    assert response.json() == {"items": [message]}
    assert event_count() == before


def test_malformed_json_answers_400_and_writes_nothing(customer_client, product, event_count):
    before = event_count()

    response = customer_client.post(LIST_URL, '{"items": [', content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()
    assert event_count() == before


def test_placing_an_order_is_refused_to_anonymous_callers(anonymous_client, product, event_count):
    before = event_count()

    response = post(anonymous_client)

    assert response.status_code == 401
    assert event_count() == before


# --- idempotency ---------------------------------------------------------------------------------


def test_the_same_key_and_body_again_answers_201_with_the_same_order_and_writes_nothing(
    customer_client, product, event_count
):
    first = post(customer_client, key="order-1")
    before = event_count()

    again = post(customer_client, key="order-1")

    assert first.status_code == again.status_code == 201
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]
    assert event_count() == before


def test_the_keyed_order_id_is_derived_from_the_caller_and_the_key(customer_client, product):
    response = post(customer_client, key="  order-1  ")

    scope = f"user:{customer_client.user.pk}"
    assert response.json()["order_id"] == order_id_for_key(scope=scope, idempotency_key="order-1")


def test_the_same_key_with_another_body_answers_422_and_writes_nothing(
    customer_client, product, event_count
):
    post(customer_client, key="order-1")
    before = event_count()

    response = post(customer_client, key="order-1", items=[{"product_id": "p1", "quantity": 3}])

    assert response.status_code == 422
    assert "'order-1' was used for a different order" in response.json()["detail"]
    assert event_count() == before


def test_two_customers_using_the_same_key_get_two_orders(customer_client, product, staff_client):
    mine = post(customer_client, key="order-1")
    theirs = post(staff_client, key="order-1")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["order_id"] != theirs.json()["order_id"]
    assert "Idempotent-Replayed" not in theirs


@pytest.mark.parametrize("key", ["   ", "k" * 256], ids=["blank", "too long"])
def test_an_empty_or_too_long_key_answers_400_and_writes_nothing(
    customer_client, product, event_count, key
):
    before = event_count()

    response = post(customer_client, key=key)

    assert response.status_code == 400
    assert list(response.json()) == ["Idempotency-Key"]
    assert event_count() == before


# --- celery dispatch: 202, and Prefer: wait ------------------------------------------------------


@pytest.fixture
def celery_dispatch(settings):
    """Celery dispatch with no worker anywhere: nothing in this process runs an order's saga
    (no after-commit wake-up either), so a placed order stays pending until a test runs it."""
    settings.EVENTSTORE_DISPATCH = "celery"
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False


class StoppedClock:
    """Stands in for the `time` module of orders/services.py: a sleep moves the clock on at once
    and is noted; `on_first_sleep` (if set) runs during the first one, as a worker would."""

    def __init__(self):
        self.now = 1000.0
        self.slept = []
        self.on_first_sleep = None

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
        if self.on_first_sleep is not None:
            action, self.on_first_sleep = self.on_first_sleep, None
            action()


@pytest.fixture
def clock(monkeypatch):
    """The clock order_wait_final waits by, stopped: waiting takes no real time."""
    stopped = StoppedClock()
    monkeypatch.setattr(order_services, "time", stopped)
    return stopped


def run_the_workers():
    """What the Celery workers would do: catch every subscriber up until none has work left."""
    for _ in range(50):
        if not any(result.handled or result.calls for result in catch_up_all()):
            return
    raise AssertionError("the subscribers never ran out of work")


def test_with_celery_dispatch_placing_answers_202_with_the_pending_order_and_its_location(
    celery_dispatch, customer_client, product
):
    response = post(customer_client)

    assert response.status_code == 202
    order = response.json()
    assert response["Location"] == f"/api/orders/{order['order_id']}/"
    assert (order["status"], order["total_amount"]) == ("pending", None)
    assert order["customer_id"] == str(customer_client.user.pk)
    assert "Preference-Applied" not in response
    assert "Idempotent-Replayed" not in response


def test_with_celery_dispatch_a_replay_answers_202_and_says_it_is_one(
    celery_dispatch, customer_client, product, event_count
):
    first = post(customer_client, key="order-1")
    before = event_count()

    again = post(customer_client, key="order-1")

    assert first.status_code == again.status_code == 202
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]
    assert event_count() == before


def test_with_celery_dispatch_an_order_already_final_answers_201(
    celery_dispatch, customer_client, product
):
    first = post(customer_client, key="order-1")
    run_the_workers()

    again = post(customer_client, key="order-1")

    assert (first.status_code, again.status_code) == (202, 201)
    assert again.json()["status"] == "completed"
    assert again["Idempotent-Replayed"] == "true"


def test_prefer_wait_answers_202_when_the_order_is_not_final_in_time(
    celery_dispatch, customer_client, product
):
    started = time.monotonic()

    response = post(customer_client, prefer="wait=1")

    waited = time.monotonic() - started
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert response["Preference-Applied"] == "wait=1"
    assert response["Location"] == f"/api/orders/{response.json()['order_id']}/"
    assert 1 <= waited < 5


def test_prefer_wait_looks_again_more_and_more_slowly_up_to_its_seconds(
    celery_dispatch, customer_client, product, clock
):
    response = post(customer_client, prefer="wait=1")

    assert response.status_code == 202
    assert clock.slept == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.05])
    assert sum(clock.slept) == pytest.approx(1)


def test_prefer_wait_answers_201_with_the_final_order_once_the_workers_finish_it(
    celery_dispatch, customer_client, product, clock
):
    clock.on_first_sleep = run_the_workers

    response = post(customer_client, prefer="respond-async, wait=5")

    assert response.status_code == 201
    order = response.json()
    assert (order["status"], order["total_amount"]) == ("completed", "25.00")
    assert response["Preference-Applied"] == "wait=5"
    assert response["Location"] == f"/api/orders/{order['order_id']}/"
    assert clock.slept == [0.05]  # one look, the workers' run, and the second look


def test_prefer_wait_answers_201_when_the_order_is_cancelled_meanwhile(
    celery_dispatch, customer_client, product, clock
):
    clock.on_first_sleep = run_the_workers

    response = post(customer_client, prefer="wait=5", payment_token="tok_decline")

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["cancel_reason"]) == (
        "cancelled",
        "card_declined",
    )


def test_prefer_wait_over_10_seconds_waits_10(celery_dispatch, customer_client, product, clock):
    response = post(customer_client, prefer="wait=50")

    assert response.status_code == 202
    assert response["Preference-Applied"] == "wait=10"
    assert sum(clock.slept) == pytest.approx(10)


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait=0", "respond-async"])
def test_a_prefer_header_without_a_readable_wait_is_ignored(
    celery_dispatch, customer_client, product, clock, prefer
):
    response = post(customer_client, prefer=prefer)

    assert response.status_code == 202
    assert "Preference-Applied" not in response
    assert clock.slept == []


@pytest.mark.parametrize("prefer", ["wait=5", "wait=abc"])
def test_with_inline_dispatch_prefer_changes_nothing(
    settings, customer_client, product, clock, prefer
):
    settings.EVENTSTORE_DISPATCH = "inline"

    response = post(customer_client, prefer=prefer)

    assert response.status_code == 201
    assert "Preference-Applied" not in response
    assert clock.slept == []


# --- list ----------------------------------------------------------------------------------------


def test_a_customer_lists_only_their_own_orders_newest_first(customer_client, product, place):
    mine = str(customer_client.user.pk)
    first = place(customer_id=mine)
    place(customer_id="someone-else")
    second = place(customer_id=mine)

    response = customer_client.get(LIST_URL)

    assert listed(response) == [second, first]
    assert response.json()["count"] == 2


def test_staff_list_everyones_orders(staff_client, product, place):
    orders = {place(customer_id="c-1"), place(customer_id="c-2")}

    assert set(listed(staff_client.get(LIST_URL))) == orders


def test_list_filters_by_status(staff_client, make_product, place):
    make_product("p1", stock=10)
    completed = place([("p1", 2)])
    cancelled = place([("p1", 2)], token="tok_decline")

    assert listed(staff_client.get(LIST_URL, {"status": "completed"})) == [completed]
    assert listed(staff_client.get(LIST_URL, {"status": "cancelled"})) == [cancelled]
    assert listed(staff_client.get(LIST_URL, {"status": "pending"})) == []


def test_an_unknown_status_answers_400_naming_the_filter(staff_client):
    response = staff_client.get(LIST_URL, {"status": "lost"})

    assert response.status_code == 400
    assert list(response.json()) == ["status"]


def test_staff_filter_by_customer_id(staff_client, order_row):
    order_row("a", customer_id="c-1")
    order_row("b", customer_id="c-2")

    assert listed(staff_client.get(LIST_URL, {"customer_id": "c-2"})) == ["b"]


def test_a_customer_filtering_by_another_customer_sees_nothing(customer_client, order_row):
    order_row("a", customer_id="c-2")
    order_row("b", customer_id=str(customer_client.user.pk))

    assert listed(customer_client.get(LIST_URL, {"customer_id": "c-2"})) == []


def test_list_filters_by_creation_time_from_inclusive_to_exclusive(staff_client, order_row):
    order_row("early", created_at="2025-01-01T10:00:00+00:00")
    order_row("noon", created_at="2025-01-01T12:00:00+00:00")
    order_row("late", created_at="2025-01-01T14:00:00+00:00")
    noon = "2025-01-01T12:00:00Z"

    assert listed(staff_client.get(LIST_URL, {"created_after": noon})) == ["late", "noon"]
    assert listed(staff_client.get(LIST_URL, {"created_before": noon})) == ["early"]
    assert listed(
        staff_client.get(
            LIST_URL,
            {"created_after": "2025-01-01T11:00:00Z", "created_before": "2025-01-01T13:00:00Z"},
        )
    ) == ["noon"]


@pytest.mark.parametrize("name", ["created_after", "created_before"])
def test_a_malformed_time_filter_answers_400_naming_it(staff_client, name):
    response = staff_client.get(LIST_URL, {name: "yesterday"})

    assert response.status_code == 400
    assert list(response.json()) == [name]


def test_listing_orders_is_refused_to_anonymous_callers(anonymous_client):
    assert anonymous_client.get(LIST_URL).status_code == 401


# --- detail, events and saga ---------------------------------------------------------------------


def test_a_customer_reads_their_own_order(customer_client, product, place):
    order_id = place(customer_id=str(customer_client.user.pk))

    response = customer_client.get(detail_url(order_id))

    assert response.status_code == 200
    order = response.json()
    assert (order["order_id"], order["status"], order["total_amount"]) == (
        order_id,
        "completed",
        "25.00",
    )
    assert order["items"] == [{"product_id": "p1", "quantity": 2, "unit_price": "12.50"}]


@pytest.mark.parametrize("action", ["", "events", "saga"])
def test_another_customers_order_is_not_found(customer_client, product, place, action):
    order_id = place(customer_id="someone-else")

    response = customer_client.get(detail_url(order_id, action))

    assert response.status_code == 404


@pytest.mark.parametrize("action", ["", "events", "saga"])
def test_staff_read_any_order(staff_client, product, place, action):
    order_id = place(customer_id="someone-else")

    assert staff_client.get(detail_url(order_id, action)).status_code == 200


@pytest.mark.parametrize("action", ["", "events", "saga"])
def test_an_unknown_order_is_not_found(staff_client, action):
    assert staff_client.get(detail_url("no-such-order", action)).status_code == 404


@pytest.mark.parametrize("action", ["", "events", "saga"])
def test_reading_an_order_is_refused_to_anonymous_callers(anonymous_client, product, place, action):
    order_id = place()

    assert anonymous_client.get(detail_url(order_id, action)).status_code == 401


def test_events_lists_every_services_events_of_the_order_in_log_order(
    customer_client, make_product, place
):
    make_product("p1")
    make_product("p2")
    other = place([("p2", 1)], customer_id=str(customer_client.user.pk))
    order_id = place(customer_id=str(customer_client.user.pk), token="tok_decline")

    response = customer_client.get(detail_url(order_id, "events"))

    assert response.status_code == 200
    listed_events = response.json()
    expected = Event.objects.filter(correlation_id=order_id).order_by("position")
    assert [event["position"] for event in listed_events] == [e.position for e in expected]
    assert {event["aggregate_type"] for event in listed_events} >= {
        "order",
        "saga",
        "reservation",
        "product",
        "payment",
    }
    assert all(event["metadata"]["correlation_id"] == order_id for event in listed_events)
    assert other not in {event["aggregate_id"] for event in listed_events}
    assert set(listed_events[0]) == {
        "position",
        "event_id",
        "aggregate_type",
        "aggregate_id",
        "version",
        "event_type",
        "schema_version",
        "payload",
        "metadata",
        "recorded_at",
    }
    assert listed_events[0]["event_type"] == events.ORDER_CREATED


def test_events_hide_from_the_customer_what_names_another_customer(customer_client, product, place):
    own = str(customer_client.user.pk)
    order_id = place(customer_id=own)
    # A notification to someone else that names this order (recorded before senders were
    # checked, or by a bug) carries the order as its correlation.
    notification_send(
        customer_id="someone-else",
        type="promotion",
        message="Not for the order's customer",
        order_id=order_id,
        metadata={"correlation_id": order_id},
    )

    listed_events = customer_client.get(detail_url(order_id, "events")).json()

    assert listed_events
    assert all(event["payload"].get("customer_id", own) == own for event in listed_events), (
        "another customer's event leaked into the order's history"
    )
    assert "Not for the order's customer" not in str(listed_events)


def test_staff_see_every_event_correlated_with_the_order(staff_client, product, place):
    order_id = place(customer_id="c1")
    notification_send(
        customer_id="c2",
        type="promotion",
        message="Misdirected",
        order_id=order_id,
        metadata={"correlation_id": order_id},
    )

    listed_events = staff_client.get(detail_url(order_id, "events")).json()

    expected = Event.objects.filter(correlation_id=order_id).count()
    assert len(listed_events) == expected
    assert {e["payload"].get("customer_id") for e in listed_events} >= {"c1", "c2"}


def test_saga_shows_the_orders_saga_with_its_step_log(customer_client, product, place):
    order_id = place(customer_id=str(customer_client.user.pk), token="tok_decline")

    response = customer_client.get(detail_url(order_id, "saga"))

    assert response.status_code == 200
    saga = response.json()
    assert (saga["saga_id"], saga["order_id"], saga["state"], saga["current_step"]) == (
        order_id,
        order_id,
        "compensated",
        "process_payment",
    )
    assert saga["definition_version"] == 1
    assert [(step["name"], step["status"]) for step in saga["steps"]] == [
        ("reserve_inventory", "succeeded"),
        ("process_payment", "failed"),
        ("confirm_order", "pending"),
        ("complete_order", "pending"),
    ]
    assert saga["steps"][1]["error"] == "refused: card_declined"
    [release] = saga["compensations"]
    assert (release["name"], release["status"], release["attempts"]) == (
        "release_inventory",
        "succeeded",
        1,
    )
    assert (saga["waiting_for"], saga["waiting_since"]) == ("", None)
    assert set(saga) == {
        "saga_id",
        "order_id",
        "state",
        "current_step",
        "definition_version",
        "steps",
        "compensations",
        "waiting_for",
        "waiting_since",
        "started_at",
        "updated_at",
    }


def test_saga_step_times_read_like_every_other_timestamp_of_the_api(
    customer_client, product, place
):
    order_id = place(customer_id=str(customer_client.user.pk))

    saga = customer_client.get(detail_url(order_id, "saga")).json()
    order = customer_client.get(detail_url(order_id)).json()

    # The first request is appended with SagaStarted; the last step with the order's last event.
    assert saga["steps"][0]["started_at"] == saga["started_at"]
    assert saga["steps"][-1]["finished_at"] == saga["updated_at"] == order["updated_at"]
    assert saga["started_at"].endswith("Z")


def test_saga_shows_the_reply_a_waiting_saga_waits_for(customer_client, product, place):
    order_id = place(customer_id=str(customer_client.user.pk), token="tok_timeout")

    saga = customer_client.get(detail_url(order_id, "saga")).json()

    assert (saga["state"], saga["waiting_for"]) == ("running", "process_payment")
    assert saga["waiting_since"] is not None


def test_saga_of_an_order_whose_saga_has_not_started_is_not_found(customer_client, product, place):
    order_id = place(customer_id=str(customer_client.user.pk), run_saga=False)

    response = customer_client.get(detail_url(order_id, "saga"))

    assert response.status_code == 404
    assert response.json() == {"detail": "The order's saga has not started yet."}


def test_a_deeply_nested_body_answers_400_and_writes_nothing(customer_client, product, event_count):
    before = event_count()
    nested = "[" * 1000 + "]" * 1000  # 2 KB that the JSON parser cannot recurse through

    response = customer_client.post(LIST_URL, nested, content_type="application/json")

    assert response.status_code == 400
    assert "nested" in response.json()["detail"]
    assert event_count() == before
