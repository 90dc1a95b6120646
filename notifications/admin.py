"""Admin pages of the notification read models (derived from events, so read-only). Parked
deliveries show as delivery (or push) status `failed`, with the last error on the notification's
page."""

from django.contrib import admin

from eventstore.api import admin_links, admin_url, stream_events_url
from httpapi.admin import CustomerAdmin
from notifications import events
from notifications.models import PushSubscription, SentNotification


@admin.register(SentNotification)
class SentNotificationAdmin(CustomerAdmin):
    list_display = (
        "sent_at",
        "customer",
        "type",
        "order_id",
        "channel",
        "message",
        "delivery_status",
        "delivery_attempts",
        "delivered_at",
        "push_status",
        "pushed",
    )
    list_filter = ("delivery_status", "push_status", "type", "channel")
    search_fields = ("=customer_id", "=order_id", "=notification_id")
    date_hierarchy = "sent_at"
    show_full_result_count = False
    fields = (
        "notification_id",
        "related",
        "customer_id",
        "customer_account",
        "order_id",
        "type",
        "channel",
        "message",
        "sent_at",
        "position",
        "delivery_status",
        "delivery_attempts",
        "delivered_at",
        "delivery_error",
        "push_status",
        "pushed",
        "push_attempts",
        "push_error",
    )
    readonly_fields = fields

    @admin.display(description="related pages")
    def related(self, notification):
        links = {"events": stream_events_url(events.NOTIFICATION, notification.notification_id)}
        if notification.order_id:
            links["order"] = admin_url(
                "admin:orders_ordersummary_changelist", query={"order_id": notification.order_id}
            )
        return admin_links(links)


@admin.register(PushSubscription)
class PushSubscriptionAdmin(CustomerAdmin):
    list_display = ("created_at", "customer", "endpoint", "status", "removed_at")
    list_filter = ("status",)
    search_fields = ("=customer_id", "=subscription_id", "endpoint")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "subscription_id",
        "events",
        "customer_id",
        "customer_account",
        "endpoint",
        "expiration_time",
        "status",
        "created_at",
        "removed_at",
    )
    readonly_fields = fields

    @admin.display(description="events")
    def events(self, subscription):
        url = stream_events_url(events.PUSH_SUBSCRIPTION, subscription.subscription_id)
        return admin_links({"events": url})
