"""Admin pages of inventory's read models (derived from events, so read-only)."""

from django.contrib import admin

from eventstore.admin import ReadOnlyAdmin, admin_links, admin_url, pretty_json, stream_events_url
from inventory import events
from inventory.models import ProductStock, ReservationSummary


@admin.register(ProductStock)
class ProductStockAdmin(ReadOnlyAdmin):
    list_display = (
        "product_id",
        "name",
        "price",
        "available_stock",
        "reserved_stock",
        "sold_stock",
        "received_stock",
        "updated_at",
    )
    search_fields = ("product_id", "name")
    ordering = ("product_id",)


@admin.register(ReservationSummary)
class ReservationSummaryAdmin(ReadOnlyAdmin):
    list_display = ("reservation_id", "status", "total_amount", "reason", "created_at")
    list_filter = ("status", "reason")
    search_fields = ("=reservation_id",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "reservation_id",
        "related",
        "status",
        "total_amount",
        "reason",
        "created_at",
        "updated_at",
        "lines_json",
        "details_json",
    )
    readonly_fields = fields

    @admin.display(description="related pages")
    def related(self, reservation):
        # The saga reserves an order's stock under the order's id.
        return admin_links(
            {
                "order": admin_url(
                    "admin:orders_ordersummary_changelist",
                    query={"order_id": reservation.reservation_id},
                ),
                "events": stream_events_url(events.RESERVATION, reservation.reservation_id),
            }
        )

    @admin.display(description="lines")
    def lines_json(self, reservation):
        return pretty_json(reservation.lines)

    @admin.display(description="shortage details")
    def details_json(self, reservation):
        return pretty_json(reservation.details)
