"""The read-only admin of sent notifications: listed and shown, never added, changed or deleted."""

import pytest

from notifications.models import SentNotification
from notifications.services import (
    notification_delivery_failed,
    notification_send,
    push_subscription_add,
)
from tests.factories import UserFactory
from tests.notifications.push_service import Browser

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/notifications/sentnotification/"


@pytest.fixture
def superuser_client(client, admin_user):
    """Django's test client with a superuser's session."""
    client.force_login(admin_user)
    return client


@pytest.fixture
def notification():
    """One notification sent through the service, as its read-model row."""
    sent = notification_send(
        customer_id="c42", type="promotion", message="Spring sale", order_id="o-7"
    )
    return SentNotification.objects.get(notification_id=sent.id)


def test_changelist_lists_notifications_newest_first(superuser_client, notification):
    newer = notification_send(customer_id="c43", type="promotion", message="Summer sale")

    response = superuser_client.get(CHANGELIST)

    assert response.status_code == 200
    listed = [row.notification_id for row in response.context["cl"].result_list]
    assert listed == [newer.id, notification.notification_id]
    page = response.content.decode()
    assert "Spring sale" in page
    assert "c42" in page


def test_changelist_finds_a_notification_by_exact_customer_id(superuser_client, notification):
    notification_send(customer_id="c420", type="promotion", message="Other")

    response = superuser_client.get(CHANGELIST, {"q": "c42"})

    assert response.status_code == 200
    assert [row.notification_id for row in response.context["cl"].result_list] == [
        notification.notification_id
    ]


def test_changelist_filters_by_type(superuser_client, notification):
    notification_send(customer_id="c1", type="news", message="Other")

    response = superuser_client.get(CHANGELIST, {"type": "promotion"})

    assert response.status_code == 200
    assert [row.notification_id for row in response.context["cl"].result_list] == [
        notification.notification_id
    ]


def test_changelist_shows_the_delivery_columns(superuser_client, notification):
    response = superuser_client.get(CHANGELIST)

    page = response.content.decode()
    for column in ("column-delivery_status", "column-delivery_attempts", "column-delivered_at"):
        assert column in page
    assert '<td class="field-delivery_status">Pending</td>' in page
    assert '<td class="field-delivery_attempts">0</td>' in page


def test_changelist_filters_by_delivery_status(superuser_client, notification):
    parked = notification_send(customer_id="c1", type="news", message="Other")
    notification_delivery_failed(
        notification_id=parked.id, attempt=5, error=OSError("refused"), parked=True
    )

    response = superuser_client.get(CHANGELIST, {"delivery_status__exact": "failed"})

    assert response.status_code == 200
    assert [row.notification_id for row in response.context["cl"].result_list] == [parked.id]
    assert "delivery_status" in [spec.field_path for spec in response.context["cl"].filter_specs]


def test_change_page_shows_the_last_delivery_error(superuser_client, notification):
    notification_delivery_failed(
        notification_id=notification.notification_id,
        attempt=1,
        error=OSError("mail server refused"),
        parked=False,
    )

    response = superuser_client.get(f"{CHANGELIST}{notification.notification_id}/change/")

    assert "OSError: mail server refused" in response.content.decode()


def test_change_page_shows_the_notification_read_only(superuser_client, notification):
    url = f"{CHANGELIST}{notification.notification_id}/change/"

    response = superuser_client.get(url)

    assert response.status_code == 200
    assert "Spring sale" in response.content.decode()
    assert response.context["has_change_permission"] is False
    assert not response.context["adminform"].form.fields  # every field is read-only


def test_change_page_refuses_an_edit(superuser_client, notification):
    url = f"{CHANGELIST}{notification.notification_id}/change/"

    response = superuser_client.post(url, {"message": "edited"})

    assert response.status_code == 403
    notification.refresh_from_db()
    assert notification.message == "Spring sale"


def test_adding_a_notification_is_not_permitted(superuser_client):
    response = superuser_client.get(f"{CHANGELIST}add/")

    assert response.status_code == 403
    assert not SentNotification.objects.exists()


def test_deleting_a_notification_is_not_permitted(superuser_client, notification):
    url = f"{CHANGELIST}{notification.notification_id}/delete/"

    assert superuser_client.get(url).status_code == 403
    assert superuser_client.post(url, {"post": "yes"}).status_code == 403
    assert SentNotification.objects.filter(pk=notification.pk).exists()


def test_the_bulk_delete_action_is_not_offered(superuser_client, notification):
    response = superuser_client.get(CHANGELIST)

    assert "delete_selected" not in response.content.decode()


def test_a_notification_shows_its_customer_by_username_and_links_its_order_and_events(
    superuser_client,
):
    alice = UserFactory(username="alice")
    sent = notification_send(customer_id=str(alice.pk), type="promotion", message="Hi")

    listing = superuser_client.get(CHANGELIST).content.decode()
    page = superuser_client.get(f"{CHANGELIST}{sent.id}/change/").content.decode()

    assert '<td class="field-customer">alice</td>' in listing
    assert f'<a href="/admin/auth/user/{alice.pk}/change/">alice</a>' in page
    events = f"/admin/eventstore/event/?aggregate_type=notification&amp;aggregate_id={sent.id}"
    assert f'<a href="{events}">events</a>' in page
    assert superuser_client.get(events.replace("&amp;", "&")).status_code == 200


def test_a_notification_about_an_order_links_the_order(superuser_client, notification):
    page = superuser_client.get(f"{CHANGELIST}{notification.notification_id}/change/")

    order = "/admin/orders/ordersummary/?order_id=o-7"
    assert f'<a href="{order}">order</a>' in page.content.decode()
    assert superuser_client.get(order).status_code == 200


def test_the_changelist_filters_by_push_status(superuser_client, notification):
    SentNotification.objects.update(push_status="failed", push_error="PushRejected: 400")

    failed = superuser_client.get(CHANGELIST, {"push_status__exact": "failed"})
    delivered = superuser_client.get(CHANGELIST, {"push_status__exact": "delivered"})

    assert [row.pk for row in failed.context["cl"].result_list] == [notification.pk]
    assert list(delivered.context["cl"].result_list) == []
    page = superuser_client.get(f"{CHANGELIST}{notification.pk}/change/").content.decode()
    assert "PushRejected: 400" in page


def test_push_subscriptions_are_listed_and_shown_read_only(superuser_client, admin_user):
    browser = Browser()
    subscription, _ = push_subscription_add(
        customer_id="c42",
        endpoint="https://push.example.net/1",
        p256dh=browser.p256dh,
        auth=browser.auth,
    )
    changelist = "/admin/notifications/pushsubscription/"

    listed = superuser_client.get(changelist, {"status__exact": "active"})
    page = superuser_client.get(f"{changelist}{subscription.id}/change/")

    assert [row.pk for row in listed.context["cl"].result_list] == [subscription.id]
    assert "https://push.example.net/1" in page.content.decode()
    assert superuser_client.post(f"{changelist}{subscription.id}/delete/").status_code == 403
