"""The push-subscription API: a customer subscribes a browser (checked: an https endpoint on a
public host and the keys' sizes), lists and unsubscribes only their own; the VAPID public key
is served to anyone."""

import pytest
from rest_framework.test import APIClient

from eventstore.models import Event
from httpapi.caller import customer_id_for
from notifications import events, webpush
from notifications.models import PushSubscription, SentNotification
from notifications.services import notification_send
from tests.factories import UserFactory
from tests.notifications.push_service import Browser, b64url

pytestmark = pytest.mark.django_db

URL = "/api/notifications/push-subscriptions/"
ENDPOINT = "https://push.example.net/send/abc123"


@pytest.fixture
def other_client():
    """An API client of another customer."""
    client = APIClient()
    client.force_authenticate(UserFactory())
    return client


def body(endpoint=ENDPOINT, browser=None, **keys):
    browser = browser or Browser()
    return {
        "endpoint": endpoint,
        "keys": {"p256dh": browser.p256dh, "auth": browser.auth, **keys},
        "expirationTime": None,
    }


def test_a_customer_subscribes_a_browser_and_it_is_recorded(customer_client, customer_user):
    response = customer_client.post(URL, body(), format="json")

    assert response.status_code == 201
    answer = response.json()
    assert answer["endpoint"] == ENDPOINT
    assert (answer["customer_id"], answer["status"]) == (customer_id_for(customer_user), "active")
    [added] = Event.objects.filter(event_type=events.PUSH_SUBSCRIPTION_ADDED)
    assert added.aggregate_id == answer["subscription_id"]
    assert added.payload["customer_id"] == customer_id_for(customer_user)


def test_a_duplicate_endpoint_answers_the_existing_subscription(customer_client):
    first = customer_client.post(URL, body(), format="json").json()

    again = customer_client.post(URL, body(), format="json")

    assert again.status_code == 200
    assert again.json()["subscription_id"] == first["subscription_id"]
    assert Event.objects.filter(event_type=events.PUSH_SUBSCRIPTION_ADDED).count() == 1


def test_another_customers_endpoint_is_refused_naming_the_endpoint(customer_client, other_client):
    customer_client.post(URL, body(), format="json")

    response = other_client.post(URL, body(), format="json")

    assert response.status_code == 422
    assert list(response.json()) == ["endpoint"]


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        # Broken schema: 400.
        (body(endpoint="http://push.example.net/send/1"), 400, "endpoint"),
        (body(endpoint="not a url"), 400, "endpoint"),
        (body(p256dh=b64url(b"\x04" + b"\x01" * 63)), 400, "keys"),  # 64 bytes
        (body(p256dh="not+base64url/"), 400, "keys"),
        (body(auth=b64url(b"\x01" * 15)), 400, "keys"),
        # Fits the schema, refused by a rule it cannot state: 422.
        (body(endpoint="https://10.0.0.7/send/1"), 422, "endpoint"),
        (body(endpoint="https://169.254.1.1/send/1"), 422, "endpoint"),
        (body(endpoint="https://[::1/send/1"), 422, "endpoint"),
        (body(endpoint="https://%zz/send/1"), 422, "endpoint"),
        (body(p256dh=b64url(b"\x04" + b"\x01" * 64)), 422, "keys"),  # not on the curve
    ],
)
def test_bad_subscriptions_are_refused_naming_the_field_and_record_nothing(
    customer_client, payload, status, field
):
    response = customer_client.post(URL, payload, format="json")

    assert response.status_code == status
    assert list(response.json()) == [field]
    assert not Event.objects.filter(event_type=events.PUSH_SUBSCRIPTION_ADDED).exists()


def test_a_loopback_endpoint_is_refused_unless_the_setting_allows_it(customer_client, settings):
    settings.NOTIFICATIONS_PUSH_ALLOW_LOOPBACK = False

    response = customer_client.post(URL, body(endpoint="http://127.0.0.1:9/push"), format="json")
    https = customer_client.post(URL, body(endpoint="https://localhost/push"), format="json")

    assert (response.status_code, https.status_code) == (400, 422)
    assert "endpoint" in response.json()


def test_a_host_name_that_resolves_inside_the_network_is_refused_at_registration(
    customer_client, monkeypatch
):
    inside = {"push.example.net": "10.1.2.3", "push.example.org": "169.254.169.254"}

    def resolve(host, port):
        if host not in inside:
            raise OSError("Name or service not known")
        return [(2, 1, 6, "", (inside[host], port))]

    monkeypatch.setattr(webpush.socket, "getaddrinfo", resolve)

    private = customer_client.post(URL, body(), format="json")
    link_local = customer_client.post(URL, body("https://push.example.org/1"), format="json")
    unresolved = customer_client.post(URL, body("https://push.example.com/1"), format="json")

    assert (private.status_code, link_local.status_code) == (422, 422)
    assert "non-public address" in str(private.json()["endpoint"])
    # Not resolving now is no refusal: delivery resolves the name again.
    assert unresolved.status_code == 201
    assert list(PushSubscription.objects.values_list("endpoint", flat=True)) == [
        "https://push.example.com/1"
    ]


def test_a_customer_lists_only_their_own_and_staff_see_all(
    customer_client, other_client, staff_client
):
    customer_client.post(URL, body(), format="json")
    other_client.post(URL, body(endpoint="https://push.example.net/other"), format="json")

    own = customer_client.get(URL).json()["results"]
    everyone = staff_client.get(URL, {"status": "active"}).json()["results"]

    assert [row["endpoint"] for row in own] == [ENDPOINT]
    assert len(everyone) == 2


def test_unsubscribing_ends_the_subscription_and_another_customer_gets_404(
    customer_client, other_client
):
    subscription_id = customer_client.post(URL, body(), format="json").json()["subscription_id"]

    assert other_client.delete(f"{URL}{subscription_id}/").status_code == 404
    assert customer_client.delete(f"{URL}{subscription_id}/").status_code == 204
    assert customer_client.delete(f"{URL}{subscription_id}/").status_code == 404

    assert PushSubscription.objects.get().status == "unsubscribed"
    again = customer_client.post(URL, body(), format="json")
    assert again.status_code == 201  # the browser may subscribe again


def test_the_vapid_public_key_is_served_to_anyone(anonymous_client):
    response = anonymous_client.get(f"{URL}public-key/")

    assert response.status_code == 200
    assert response.json() == {"public_key": webpush.public_key()}
    assert len(webpush.b64url_decode(webpush.public_key())) == 65


def test_the_public_key_answers_503_naming_the_setting_while_push_is_off(
    anonymous_client, settings
):
    settings.VAPID_PRIVATE_KEY = ""

    response = anonymous_client.get(f"{URL}public-key/")

    assert response.status_code == 503
    assert "VAPID_PRIVATE_KEY" in response.json()["detail"]


def test_the_notifications_api_shows_and_filters_by_push_status(customer_client, customer_user):
    customer_id = customer_id_for(customer_user)
    notification_send(customer_id=customer_id, type="promotion", message="Hi")
    SentNotification.objects.update(push_status="delivered", pushed=1)

    rows = customer_client.get("/api/notifications/", {"push_status": "delivered"}).json()
    none = customer_client.get("/api/notifications/", {"push_status": "none"}).json()

    [row] = rows["results"]
    assert (row["push_status"], row["pushed"], row["delivery_status"]) == (
        "delivered",
        1,
        "pending",
    )
    assert none["results"] == []
