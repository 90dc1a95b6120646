"""Admin of webhook endpoints (secret shown once after create or rotate, replay of a position
range, made in the background: its progress is on the replays page) and of the delivery log
(attempts inline, redeliver)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from eventstore.api import admin_links, admin_url
from webhooks import services
from webhooks.events import PUBLIC_EVENT_TYPES
from webhooks.models import Attempt, Delivery, Endpoint, Replay


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in PUBLIC_EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: all.",
    )

    class Meta:
        model = Endpoint
        fields = ("url", "event_types", "description", "enabled")

    def clean_url(self):
        url = self.cleaned_data["url"]
        services.endpoint_check_url(url)
        return url


class ReplayForm(forms.Form):
    after_position = forms.IntegerField(min_value=0, initial=0)
    to_position = forms.IntegerField(min_value=1, required=False)


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("url", "enabled", "event_types", "failing_since", "disabled_reason", "related")
    list_filter = ("enabled",)
    readonly_fields = (
        "disabled_reason",
        "failing_since",
        "previous_secret_until",
        "created_at",
        "related",
    )
    actions = ["rotate_secret"]

    def save_model(self, request, obj, form, change):
        """Through the endpoint's commands: its row is their projection."""
        data = {name: form.cleaned_data[name] for name in form.changed_data}
        if change:
            services.endpoint_change(endpoint_id=obj.pk, **data)
            return
        created = services.endpoint_create(
            url=form.cleaned_data["url"],
            event_types=form.cleaned_data["event_types"],
            description=form.cleaned_data["description"],
            enabled=form.cleaned_data["enabled"],
        )
        obj.pk = created.pk
        self._show_secret(request, created)

    def save_related(self, request, form, formsets, change):
        pass  # nothing relates: the row is the projection's

    def delete_model(self, request, obj):
        services.endpoint_delete(endpoint_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            services.endpoint_delete(endpoint_id=endpoint.pk)

    def _show_secret(self, request, endpoint):
        messages.warning(
            request,
            f"Signing secret of {endpoint.url} (shown once, copy it now): {endpoint.secret}",
        )

    @admin.action(description="Rotate the signing secret (the old one signs on for a while)")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            self._show_secret(request, services.endpoint_rotate_secret(endpoint_id=endpoint.pk))

    @admin.display(description="related pages")
    def related(self, endpoint):
        if endpoint.pk is None:
            return "-"
        return admin_links(
            {
                "deliveries": admin_url(
                    "admin:webhooks_delivery_changelist",
                    query={"endpoint__endpoint_id__exact": str(endpoint.pk)},
                ),
                "replay": admin_url("admin:webhooks_endpoint_replay", endpoint.pk),
                "replays": admin_url(
                    "admin:webhooks_replay_changelist",
                    query={"endpoint__endpoint_id__exact": str(endpoint.pk)},
                ),
            }
        )

    def get_urls(self):
        return [
            path(
                "<uuid:endpoint_id>/replay/",
                self.admin_site.admin_view(self.replay_view),
                name="webhooks_endpoint_replay",
            ),
            *super().get_urls(),
        ]

    def replay_view(self, request, endpoint_id):
        endpoint = Endpoint.objects.get(pk=endpoint_id)
        if not self.has_change_permission(request, endpoint):
            return redirect("admin:index")
        form = ReplayForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            services.replay_start(
                endpoint, **{k: v for k, v in form.cleaned_data.items() if v is not None}
            )
            messages.success(
                request,
                f"Replay to {endpoint.url} asked for: the worker sends it in the background.",
            )
            return redirect(
                admin_url(
                    "admin:webhooks_replay_changelist",
                    query={"endpoint__endpoint_id__exact": str(endpoint.pk)},
                )
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Replay events to {endpoint.url}",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/webhooks/replay.html", context)


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "attempted_at",
        "status_code",
        "duration_ms",
        "response_excerpt",
        "error",
    )

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("position", "event_type", "endpoint", "status", "attempts", "next_attempt_at")
    list_filter = ("status", "event_type", "endpoint")
    search_fields = ("=event_id",)
    inlines = [AttemptInline]
    actions = ["redeliver"]
    fields = readonly_fields = (
        "endpoint",
        "event_id",
        "position",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "body",
    )

    def has_add_permission(self, request):
        return False

    @admin.action(description="Redeliver (same webhook-id)")
    def redeliver(self, request, queryset):
        due, disabled = 0, 0
        for delivery in queryset.select_related("endpoint"):
            if delivery.endpoint.enabled:
                services.redeliver(delivery)
                due += 1
            else:
                disabled += 1
        messages.success(request, f"{due} deliveries due again.")
        if disabled:
            messages.warning(request, f"{disabled} left alone: their endpoint is disabled.")


@admin.register(Replay)
class ReplayAdmin(admin.ModelAdmin):
    """Replays asked for, read-only: how far the worker has read each, and what it owed."""

    list_display = ("created_at", "endpoint", "status", "progress_shown", "events", "finished_at")
    list_filter = ("status", "endpoint")
    fields = readonly_fields = (
        "endpoint",
        "after_position",
        "to_position",
        "since",
        "until",
        "status",
        "reached",
        "progress_shown",
        "events",
        "created_at",
        "finished_at",
    )

    @admin.display(description="progress")
    def progress_shown(self, replay):
        return f"{replay.progress:.0%}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
