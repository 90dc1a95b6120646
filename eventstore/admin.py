"""Read-only admin for the log, snapshots, checkpoints, owed calls and the stream index; and
what every service's admin shares: read-only pages, links between them, JSON for reading."""

import json
from collections.abc import Mapping
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from eventstore.follower import effects
from eventstore.models import Checkpoint, Effect, Event, Snapshot, Stream
from eventstore.records import SHOWN_FIELDS


def pretty_json(value) -> str:
    """JSON indented for reading in the admin."""
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def admin_url(url_name: str, *args: Any, query: Mapping[str, str] | None = None) -> str:
    """The address of an admin page by its URL name ("admin:orders_ordersummary_change"),
    optionally filtered (a changelist's `query`). Pages of another service are reached this
    way, by name, never through its models."""
    url = reverse(url_name, args=args)
    return f"{url}?{urlencode(query)}" if query else url


def admin_links(links: Mapping[str, str | None]) -> str:
    """Links by label ("saga": url), one after the other; a label without a URL shows as text."""
    return format_html_join(
        " · ",
        "{}",
        (
            (format_html('<a href="{}">{}</a>', url, label) if url else label,)
            for label, url in links.items()
        ),
    )


def stream_events_url(aggregate_type: str, aggregate_id: str) -> str:
    """The admin's list of one stream's events."""
    return admin_url(
        "admin:eventstore_event_changelist",
        query={"aggregate_type": aggregate_type, "aggregate_id": aggregate_id},
    )


def correlated_events_url(correlation_id: str) -> str:
    """The admin's list of the events one request set going (an order's: its id)."""
    return admin_url("admin:eventstore_event_changelist", query={"correlation_id": correlation_id})


class PageChangeList(ChangeList):
    """A changelist that lets its admin look up, once for the whole page, what its columns show
    of other tables (`ReadOnlyAdmin.prepare_page`), instead of one query per row."""

    def get_results(self, request):
        super().get_results(request)
        self.model_admin.prepare_page(self.result_list)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Admin that shows rows but never adds, changes or deletes them."""

    def get_changelist(self, request, **kwargs):
        return PageChangeList

    def prepare_page(self, rows: list) -> None:
        """Set on a changelist page's rows, at once, what its columns look up elsewhere."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# The admin's displays of the event fields readers see upcast (`Event.read_payload`).
_AS_READ = {
    "schema_version": "read_schema_version",
    "payload": "payload_json",
    "metadata": "metadata_json",
}


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = (
        "position",
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "version",
        "correlation_id",
        "recorded_at",
    )
    list_filter = ("aggregate_type", "event_type", "recorded_at")
    search_fields = ("=aggregate_id", "=event_id", "=correlation_id")
    search_help_text = "Exact aggregate id, event id or correlation id."
    date_hierarchy = "recorded_at"
    ordering = ("-position",)
    show_full_result_count = False
    # The fields an API shows, those upcast for readers as readers see them, and links to the
    # event's stream and correlated events; the long JSON ones last (a stable sort keeps the
    # others in their order).
    fields = tuple(
        sorted(
            (*(_AS_READ.get(name, name) for name in SHOWN_FIELDS), "related"),
            key=lambda name: name.endswith("_json"),
        )
    )
    readonly_fields = fields

    @admin.display(description="related pages")
    def related(self, event):
        links = {"stream": stream_events_url(event.aggregate_type, event.aggregate_id)}
        if event.correlation_id:
            links["correlated"] = correlated_events_url(event.correlation_id)
        return admin_links(links)

    @admin.display(description="schema version")
    def read_schema_version(self, event):
        return event.read_payload()[0]

    @admin.display(description="payload")
    def payload_json(self, event):
        # As readers see it: upcast, so a payment token an old event held is masked.
        return pretty_json(event.read_payload()[1])

    @admin.display(description="metadata")
    def metadata_json(self, event):
        return pretty_json(event.metadata)


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ("aggregate_type", "aggregate_id", "version", "state_version", "taken_at")
    list_filter = ("aggregate_type",)
    search_fields = ("=aggregate_id",)
    fields = (
        "aggregate_type",
        "aggregate_id",
        "version",
        "state_version",
        "taken_at",
        "state_json",
    )
    readonly_fields = fields

    @admin.display(description="state")
    def state_json(self, snapshot):
        return pretty_json(snapshot.state)

    def has_delete_permission(self, request, obj=None):
        # A snapshot is a cache: deleting one only makes the next load replay further.
        return request.user.is_superuser


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    """One row per partition of each subscriber: how far it got, and the error that stopped it."""

    list_display = (
        "subscriber",
        "partition",
        "partitions",
        "position",
        "transaction_id",
        "failed_position",
        "last_error",
        "updated_at",
    )
    list_filter = ("subscriber",)
    fields = (
        "name",
        "subscriber",
        "partition",
        "partitions",
        "position",
        "transaction_id",
        "handled_before",
        "failed_position",
        "last_error",
        "updated_at",
    )
    readonly_fields = fields


@admin.register(Effect)
class EffectAdmin(ReadOnlyAdmin):
    """Calls to the outside world owed by effect subscribers; parked ones wait for staff,
    withdrawn ones are never made (the reason says which event withdrew them)."""

    list_display = (
        "subscriber",
        "position",
        "event_type",
        "status",
        "attempts",
        "due_at",
        "last_error",
        "withdrawn_reason",
    )
    list_filter = ("status", "subscriber", "event_type")
    search_fields = ("=event_id",)
    search_help_text = "Exact id of the event that asked for the call."
    ordering = ("-position",)
    show_full_result_count = False
    fields = (
        "subscriber",
        "event_id",
        "position",
        "event_type",
        "status",
        "attempts",
        "due_at",
        "claim",
        "last_error",
        "withdrawn_at",
        "withdrawn_reason",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ["retry_parked"]

    @admin.action(description="Retry the selected parked calls (withdrawn ones never are)")
    def retry_parked(self, request, queryset):
        count = effects.retry_parked(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} parked call(s) will be made again.")


@admin.register(Stream)
class StreamAdmin(ReadOnlyAdmin):
    list_display = (
        "aggregate_type",
        "aggregate_id",
        "version",
        "last_event_type",
        "last_position",
        "last_recorded_at",
    )
    list_filter = ("aggregate_type", "last_event_type")
    search_fields = ("=aggregate_id",)
    date_hierarchy = "last_recorded_at"
    show_full_result_count = False
