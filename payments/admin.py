"""Admin page of the payment read model (derived from events, so read-only)."""

from django.contrib import admin

from eventstore.api import admin_links, admin_url, stream_events_url
from httpapi.admin import CustomerAdmin
from payments import events
from payments.models import PaymentSummary


@admin.register(PaymentSummary)
class PaymentSummaryAdmin(CustomerAdmin):
    list_display = (
        "payment_id",
        "customer",
        "amount",
        "status",
        "transaction_id",
        "reason",
        "created_at",
    )
    list_filter = ("status", "reason")
    search_fields = ("=payment_id", "=customer_id", "=transaction_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "payment_id",
        "related",
        "customer_id",
        "customer_account",
        "amount",
        "status",
        "transaction_id",
        "reason",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="related pages")
    def related(self, payment):
        # The saga charges an order under the order's id.
        return admin_links(
            {
                "order": admin_url(
                    "admin:orders_ordersummary_changelist", query={"order_id": payment.payment_id}
                ),
                "events": stream_events_url(events.PAYMENT, payment.payment_id),
            }
        )
