"""Admin page of the payment read model (derived from events, so read-only)."""

from django.contrib import admin

from eventstore.admin import ReadOnlyAdmin
from payments.models import PaymentSummary


@admin.register(PaymentSummary)
class PaymentSummaryAdmin(ReadOnlyAdmin):
    list_display = (
        "payment_id",
        "customer_id",
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
