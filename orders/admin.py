"""Admin pages of the orders read models (derived from events, so read-only)."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from eventstore.admin import ReadOnlyAdmin
from orders.models import CatalogProduct, OrderSummary, SagaSummary


def _log_table(entries, columns) -> str:
    """A small HTML table of a saga's steps or compensations, one row per entry."""
    if not entries:
        return "-"
    header = format_html_join("", "<th>{}</th>", ((column,) for column in columns))
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
class OrderSummaryAdmin(ReadOnlyAdmin):
    list_display = (
        "order_id",
        "customer_id",
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


@admin.register(SagaSummary)
class SagaSummaryAdmin(ReadOnlyAdmin):
    list_display = (
        "saga_id",
        "state",
        "current_step",
        "step_progress",
        "waiting_for",
        "waiting_since",
        "updated_at",
    )
    list_filter = ("state", "current_step", "definition_version")
    search_fields = ("=saga_id", "=order_id")
    date_hierarchy = "started_at"
    show_full_result_count = False
    fields = (
        "saga_id",
        "order_id",
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

    @admin.display(description="steps")
    def step_progress(self, saga):
        """One mark per step: done, failed, in progress or not started."""
        marks = {"succeeded": "✔", "failed": "✘", "started": "…", "pending": "·"}
        return " ".join(f"{marks.get(step['status'], '?')} {step['name']}" for step in saga.steps)

    @admin.display(description="step log")
    def step_log(self, saga):
        return _log_table(saga.steps, ("name", "status", "started_at", "finished_at", "error"))

    @admin.display(description="compensations")
    def compensation_log(self, saga):
        return _log_table(
            saga.compensations,
            ("name", "status", "attempts", "started_at", "finished_at", "error"),
        )


@admin.register(CatalogProduct)
class CatalogProductAdmin(ReadOnlyAdmin):
    list_display = ("product_id", "name", "created_at")
    search_fields = ("=product_id", "name")
    show_full_result_count = False
