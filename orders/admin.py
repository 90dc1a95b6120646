"""Admin pages of the orders read models (derived from events, so read-only)."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from eventstore.api import ReadOnlyAdmin, admin_links, admin_url, correlated_events_url
from httpapi.admin import CustomerAdmin
from orders.aggregates import Saga
from orders.models import CatalogProduct, OrderSummary, SagaSummary


def order_links(
    order_id: str, *, saga_id: str | None, cancellation_id: str | None = None
) -> dict[str, str | None]:
    """The pages of what one order set going, in every service (reservation id = payment id =
    order id; every event of the order carries it as correlation id)."""
    return {
        "order": admin_url("admin:orders_ordersummary_change", order_id),
        "saga": admin_url("admin:orders_sagasummary_change", saga_id) if saga_id else None,
        "cancellation saga": (
            admin_url("admin:orders_sagasummary_change", cancellation_id)
            if cancellation_id
            else None
        ),
        "reservation": admin_url(
            "admin:inventory_reservationsummary_changelist", query={"reservation_id": order_id}
        ),
        "payment": admin_url(
            "admin:payments_paymentsummary_changelist", query={"payment_id": order_id}
        ),
        "notifications": admin_url(
            "admin:notifications_sentnotification_changelist", query={"order_id": order_id}
        ),
        "events": correlated_events_url(order_id),
    }


def _log_table(entries, columns, headers=None) -> str:
    """A small HTML table of a saga's steps or compensations, one row per entry (`headers`:
    a column's heading where it is not the entry's key)."""
    if not entries:
        return "-"
    headers = headers or {}
    header = format_html_join(
        "", "<th>{}</th>", ((headers.get(column, column),) for column in columns)
    )
    rows = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (
                format_html_join(
                    "", "<td>{}</td>", ((entry.get(column) or "",) for column in columns)
                ),
            )
            for entry in entries
        ),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, rows)


@admin.register(OrderSummary)
class OrderSummaryAdmin(CustomerAdmin):
    list_display = (
        "order_id",
        "customer",
        "status",
        "total_amount",
        "cancel_reason",
        "created_at",
        "updated_at",
    )
    list_filter = ("status", "cancel_reason")
    search_fields = ("=order_id", "=customer_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "order_id",
        "related",
        "customer_id",
        "customer_account",
        "status",
        "items",
        "total_amount",
        "cancel_reason",
        "cancellation_note",
        "version",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="related pages")
    def related(self, order):
        sagas = dict(
            SagaSummary.objects.filter(order_id=order.order_id).values_list("kind", "saga_id")
        )
        links = order_links(
            order.order_id,
            saga_id=sagas.get(SagaSummary.Kind.FULFILMENT),
            cancellation_id=sagas.get(SagaSummary.Kind.CANCELLATION),
        )
        del links["order"]
        return admin_links(links)


@admin.register(SagaSummary)
class SagaSummaryAdmin(ReadOnlyAdmin):
    list_display = (
        "saga_id",
        "kind",
        "state",
        "current_step",
        "step_progress",
        "waiting_for",
        "waiting_since",
        "updated_at",
    )
    list_filter = ("kind", "state", "current_step", "definition_version")
    search_fields = ("=saga_id", "=order_id")
    date_hierarchy = "started_at"
    show_full_result_count = False
    fields = (
        "saga_id",
        "order_id",
        "kind",
        "related",
        "state",
        "definition_version",
        "current_step",
        "waiting_for",
        "waiting_attempt",
        "waiting_since",
        "step_log",
        "compensation_log",
        "started_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="related pages")
    def related(self, saga):
        links = order_links(saga.order_id, saga_id=None)
        del links["saga"], links["cancellation saga"]
        return admin_links(links)

    @admin.display(description="steps")
    def step_progress(self, saga):
        """One mark per step: done, failed, in progress or not started."""
        marks = {Saga.SUCCEEDED: "✔", Saga.FAILED: "✘", Saga.STARTED: "…", Saga.PENDING: "·"}
        return " ".join(f"{marks.get(step['status'], '?')} {step['name']}" for step in saga.steps)

    @admin.display(description="step log")
    def step_log(self, saga):
        return _log_table(saga.steps, ("name", "status", "started_at", "finished_at", "error"))

    @admin.display(description="compensations")
    def compensation_log(self, saga):
        return _log_table(
            saga.compensations,
            ("name", "status", "attempt", "started_at", "finished_at", "error"),
            # As the API names it: the requests sent so far.
            headers={"attempt": "attempts"},
        )


@admin.register(CatalogProduct)
class CatalogProductAdmin(ReadOnlyAdmin):
    list_display = ("product_id", "name", "created_at")
    search_fields = ("=product_id", "name")
    show_full_result_count = False
