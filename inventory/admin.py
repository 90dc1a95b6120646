"""Admin pages of inventory's read models (derived from events, so read-only)."""

from django.contrib import admin

from eventstore.api import ReadOnlyAdmin, admin_links, admin_url, pretty_json, stream_events_url
from inventory import events
from inventory.models import ProductStock, ReservationSummary


@admin.register(ProductStock)
class ProductStockAdmin(ReadOnlyAdmin):
    list_display = (
        "product_id",
        "name",
        "price",
        "status",
        "available_stock",
        "reserved_stock",
        "sold_stock",
        "received_stock",
        "adjusted_stock",
        "updated_at",
    )
    list_filter = ("status",)
    search_fields = ("product_id", "name")
    ordering = ("product_id",)
    fields = (
        "product_id",
        "related",
        "name",
        "price",
        "status",
        "units_balance",
        "available_stock",
        "reserved_stock",
        "sold_stock",
        "received_stock",
        "adjusted_stock",
        "version",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="related pages")
    def related(self, product):
        # Its stream is its history: price, name, status and every stock movement.
        return admin_links({"history": stream_events_url(events.PRODUCT, product.product_id)})

    @admin.display(description="available + reserved + sold = received + adjusted")
    def units_balance(self, product):
        held = product.available_stock + product.reserved_stock + product.sold_stock
        gained = product.received_stock + product.adjusted_stock
        return (
            f"{product.available_stock} + {product.reserved_stock} + {product.sold_stock} = "
            f"{product.received_stock} + {product.adjusted_stock} "
            + ("(balanced)" if held == gained else "(NOT BALANCED)")
        )


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
