"""Web Push delivery against a local push service: each notification reaches each live
subscription of its customer once, encrypted (RFC 8291) and VAPID-signed (RFC 8292); gone
subscriptions end, refusals park, and throttling and failures are retried."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from eventstore.follower.subscriptions import catch_up, get_subscribers
from eventstore.models import Effect, Event
from eventstore.store import event_store
from notifications import events, services, webpush
from notifications.models import PushSubscription, SentNotification
from tests.notifications.push_service import Answer, PushService

pytestmark = pytest.mark.django_db


class WorkerDied(BaseException):
    """Stands for the process dying: nothing below it catches it."""


@pytest.fixture
def push_service():
    with PushService() as service:
        yield service


@pytest.fixture
def pusher():
    """The registered NotificationPusher."""
    return get_subscribers(["notifications.push"])[0]


@pytest.fixture
def subscribe(push_service, customer_id):
    """Subscribe a new browser of the customer on the local push service."""

    def make(name="phone", customer=None):
        endpoint, browser = push_service.subscribe(name)
        subscription, _ = services.push_subscription_add(
            customer_id=customer or customer_id,
            endpoint=endpoint,
            p256dh=browser.p256dh,
            auth=browser.auth,
        )
        return subscription

    return make


def order_notification(customer_id, order_id="o1"):
    return services.notification_send(
        customer_id=customer_id,
        type="order_confirmed",
        message=f"Your order {order_id} is confirmed.",
        order_id=order_id,
        notification_id=f"n-{order_id}",
        subject=f"Your order {order_id} is confirmed",
        body="...",
    )


def effect():
    return Effect.objects.get(subscriber="notifications.push")


def pushed_events():
    return list(Event.objects.filter(event_type=events.NOTIFICATION_PUSHED))


def test_a_notification_is_pushed_encrypted_and_signed_to_each_live_subscription(
    pusher, push_service, subscribe, customer_id
):
    phone, laptop = subscribe("phone"), subscribe("laptop")
    order_notification(customer_id)

    result = catch_up(pusher)

    assert (result.calls, result.error) == (1, "")
    assert sorted(push.path for push in push_service.pushes) == ["/push/laptop", "/push/phone"]
    for push in push_service.pushes:
        assert push.problems == []
        assert push.payload == {
            "notification_id": "n-o1",
            "title": "Your order o1 is confirmed",
            "body": "Your order o1 is confirmed.",
            "order_id": "o1",
            "url": "/api/orders/o1/",
        }
        assert push.vapid_key == webpush.public_key()
        assert push.claims["sub"] == "mailto:webmaster@localhost"
        assert push.headers["ttl"] == str(webpush.PUSH_TTL)
    topics = {push.path: push.headers["topic"] for push in push_service.pushes}
    assert topics["/push/phone"] == webpush.topic_for("n-o1", phone.id)
    assert topics["/push/phone"] != topics["/push/laptop"]
    assert {event.payload["subscription_id"] for event in pushed_events()} == {phone.id, laptop.id}
    row = SentNotification.objects.get()
    assert (row.push_status, row.pushed, row.push_attempts) == ("delivered", 2, 0)
    assert effect().status == "done"


def test_a_pushed_notification_is_not_pushed_again(pusher, push_service, subscribe, customer_id):
    subscribe()
    sent = order_notification(customer_id)
    catch_up(pusher)

    services.notification_push(notification_id=sent.id, attempt=2)

    assert len(push_service.pushes) == 1
    assert len(pushed_events()) == 1


def test_no_push_is_owed_to_a_customer_without_a_live_subscription(pusher, customer_id):
    order_notification(customer_id)

    catch_up(pusher)

    assert not Effect.objects.filter(subscriber="notifications.push").exists()
    assert SentNotification.objects.get().push_status == "none"


def test_no_push_is_owed_while_no_vapid_key_is_configured_and_the_log_says_so(
    pusher, subscribe, customer_id, settings, caplog, monkeypatch
):
    monkeypatch.setattr(webpush, "_told_off", False)
    subscribe()
    settings.VAPID_PRIVATE_KEY = ""
    order_notification(customer_id)
    order_notification(customer_id, "o2")

    catch_up(pusher)
    catch_up(get_subscribers(["notifications.delivery"])[0])

    assert not Effect.objects.filter(subscriber="notifications.push").exists()
    told = [r.getMessage() for r in caplog.records if r.name == "notifications.webpush"]
    assert len(told) == 1  # once per process
    assert told[0].startswith("Push delivery is off: VAPID_PRIVATE_KEY is not set")
    assert SentNotification.objects.filter(delivery_status="delivered").count() == 2


def test_a_subscription_added_or_ended_here_is_seen_at_once(subscribe, customer_id):
    assert not services.has_live_push_subscription(customer_id)  # remembered from now on
    phone = subscribe()
    assert services.has_live_push_subscription(customer_id)

    services.push_subscription_remove(subscription_id=phone.id, reason="unsubscribed")

    assert not services.has_live_push_subscription(customer_id)


def test_a_subscription_made_elsewhere_a_moment_ago_is_pushed_by_the_catch_up(
    pusher, push_service, subscribe, customer_id, monkeypatch
):
    assert not services.has_live_push_subscription(customer_id)  # remembered: none
    with monkeypatch.context() as another_process:  # whose change this process does not hear of
        another_process.setattr(services, "forget_push_answer", lambda customer_id: None)
        subscribe()
    order_notification(customer_id)
    assert not Effect.objects.filter(subscriber="notifications.push").exists()  # not at append

    result = catch_up(pusher)

    assert (result.calls, result.error) == (1, "")
    assert [push.path for push in push_service.pushes] == ["/push/phone"]
    assert SentNotification.objects.get().push_status == "delivered"


def test_the_catch_up_asks_once_for_a_whole_batch_of_customers(
    pusher, subscribe, customer_id, django_assert_max_num_queries
):
    subscribe()
    for number in range(5):
        order_notification(f"{customer_id}-other-{number}", f"o{number}")
    order_notification(customer_id, "mine")
    Effect.objects.filter(subscriber="notifications.push").delete()  # as if never owed
    services.forget_push_answers()
    batch = list(event_store.read_by_type(events.NOTIFICATION_SENT))

    with django_assert_max_num_queries(2):  # the question, and the calls owed
        pusher.handle_batch(batch)

    owed = Effect.objects.filter(subscriber="notifications.push")
    assert [effect.event_id for effect in owed] == [batch[-1].event_id]


def test_a_subscription_the_push_service_says_is_gone_ends_and_gets_no_more_pushes(
    pusher, push_service, subscribe, customer_id
):
    phone = subscribe()
    push_service.answers.append(Answer(410))
    order_notification(customer_id, "o1")

    catch_up(pusher)

    assert effect().status == "done"
    row = PushSubscription.objects.get()
    assert row.status == "gone"
    [removed] = Event.objects.filter(event_type=events.PUSH_SUBSCRIPTION_REMOVED)
    assert removed.payload == {"subscription_id": phone.id, "reason": "gone"}
    order_notification(customer_id, "o2")
    catch_up(pusher)
    assert len(push_service.pushes) == 1


def test_a_throttled_push_is_retried_after_the_push_services_retry_after(
    pusher, push_service, subscribe, customer_id, settings
):
    settings.EVENTSTORE_EFFECT_BACKOFF = 1
    subscribe()
    push_service.answers.append(Answer(429, {"Retry-After": "120"}))
    order_notification(customer_id)

    catch_up(pusher)

    assert (effect().status, effect().attempts) == ("pending", 1)
    assert effect().due_at > timezone.now() + timedelta(seconds=110)
    row = SentNotification.objects.get()
    assert (row.push_status, row.push_attempts) == ("pending", 1)
    assert row.push_error == "PushRetryLater: The push service answered 429"


def test_a_server_error_is_retried_and_the_next_attempt_delivers(
    pusher, push_service, subscribe, customer_id, settings
):
    settings.EVENTSTORE_EFFECT_BACKOFF = 0
    subscribe()
    push_service.answers.append(Answer(500))
    order_notification(customer_id)

    catch_up(pusher)  # with no backoff, the retry comes in the same pass

    assert (effect().status, effect().attempts) == ("done", 2)
    assert len(push_service.pushes) == 2
    assert all(push.problems == [] for push in push_service.pushes)
    row = SentNotification.objects.get()
    assert (row.push_status, row.pushed, row.push_attempts, row.push_error) == (
        "delivered",
        1,
        1,
        "",
    )


def test_a_push_service_that_does_not_answer_in_time_is_retried(
    push_service, subscribe, customer_id, settings
):
    settings.NOTIFICATIONS_PUSH_TIMEOUT = 0.2
    subscribe()
    push_service.answers.append(Answer(201, delay=1.0))
    sent = order_notification(customer_id)

    with pytest.raises(webpush.PushRetryLater, match="Timeout"):
        services.notification_push(notification_id=sent.id, attempt=1)

    assert pushed_events() == []


def test_a_push_refused_for_good_is_parked_at_once(pusher, push_service, subscribe, customer_id):
    subscribe()
    push_service.answers.append(Answer(400))
    order_notification(customer_id)

    catch_up(pusher)

    assert effect().status == "parked"
    row = SentNotification.objects.get()
    assert (row.push_status, row.push_error) == (
        "failed",
        "PushRejected: The push service answered 400",
    )


def test_a_crash_after_the_answer_pushes_again_under_the_same_topic_and_records_once(
    pusher, push_service, subscribe, customer_id, monkeypatch
):
    subscribe()
    sent = order_notification(customer_id)
    recorded = services._push_recorded

    def die(**kwargs):
        raise WorkerDied

    monkeypatch.setattr(services, "_push_recorded", die)
    with pytest.raises(WorkerDied):
        services.notification_push(notification_id=sent.id, attempt=1)
    monkeypatch.setattr(services, "_push_recorded", recorded)
    services.notification_push(notification_id=sent.id, attempt=2)

    first, second = push_service.pushes
    assert first.headers["topic"] == second.headers["topic"]
    assert first.payload == second.payload
    assert len(pushed_events()) == 1


def test_the_retry_after_header_is_read_as_seconds_or_a_date():
    assert webpush.retry_after("30") == timedelta(seconds=30)
    assert webpush.retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == timedelta(0)
    assert webpush.retry_after("soon") is None


def test_a_payload_over_the_size_limit_is_refused():
    with pytest.raises(ValueError, match="at most"):
        webpush.payload_bytes({"body": "x" * webpush.PAYLOAD_MAX_BYTES})


def test_vapid_keys_prints_a_pair_the_settings_accept(settings):
    out = io.StringIO()
    call_command("vapid_keys", stdout=out)

    line, comment = out.getvalue().splitlines()
    settings.VAPID_PRIVATE_KEY = line.removeprefix("VAPID_PRIVATE_KEY=")
    assert comment == f"# public key: {webpush.public_key()}"


def test_a_long_message_is_shortened_to_fit_a_push(customer_id):
    message = "é" * 2000  # 4,000 bytes of UTF-8: more than a push may carry
    sent = services.notification_send(customer_id=customer_id, type="promotion", message=message)

    payload = services.push_payload(sent)

    assert payload["body"].endswith("…")
    assert len(payload["body"].encode()) <= services.PUSH_BODY_MAX_BYTES
    webpush.payload_bytes(payload)  # within the limit: does not raise


def test_an_endpoint_that_is_not_a_url_is_refused():
    with pytest.raises(webpush.BadEndpoint):
        webpush.check_endpoint("https://[::1/push")


def test_a_host_name_that_resolves_inside_the_network_is_refused_at_delivery(monkeypatch):
    monkeypatch.setattr(
        webpush.socket, "getaddrinfo", lambda host, port: [(2, 1, 6, "", ("10.1.2.3", port))]
    )

    with pytest.raises(webpush.BadEndpoint, match="non-public"):
        webpush.check_resolved_endpoint("https://push.example.net/send/1")


def test_a_host_name_that_resolves_to_public_addresses_is_accepted(monkeypatch):
    monkeypatch.setattr(
        webpush.socket, "getaddrinfo", lambda host, port: [(2, 1, 6, "", ("93.184.215.14", port))]
    )

    webpush.check_resolved_endpoint("https://push.example.net/send/1")  # does not raise
