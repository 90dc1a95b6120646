"""Admin page of the notification read model (derived from events, so read-only). Parked
deliveries show as delivery status `failed`, with the last error on the notification's page."""

from django.contrib import admin

from eventstore.admin import ReadOnlyAdmin
from notifications.models import SentNotification


@admin.register(SentNotification)
class SentNotificationAdmin(ReadOnlyAdmin):
    list_display = (
        "sent_at",
        "customer_id",
        "type",
        "order_id",
        "channel",
        "message",
        "delivery_status",
        "delivery_attempts",
        "delivered_at",
    )
    list_filter = ("delivery_status", "type", "channel")
    search_fields = ("=customer_id", "=order_id", "=notification_id")
    date_hierarchy = "sent_at"
    show_full_result_count = False
