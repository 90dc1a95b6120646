"""The webhook endpoint aggregate: registered, changed, its secret rotated, disabled and enabled,
deleted. Its secrets are vault references (`webhooks.events.SECRET_KIND`), never the secrets."""

from __future__ import annotations

from typing import Any

from eventstore.api import Aggregate, applies
from webhooks import events


class EndpointError(Exception):
    """A command the endpoint's state does not allow (unknown, deleted, registered twice)."""


class WebhookEndpoint(Aggregate):
    """One URL the shop's own systems receive public events at."""

    aggregate_type = events.ENDPOINT

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.registered = False
        self.deleted = False
        self.enabled = False
        self.url = ""
        self.event_types: list[str] = []
        self.description = ""
        self.secret_ref = ""
        self.previous_secret_ref = ""

    @property
    def exists(self) -> bool:
        return self.registered and not self.deleted

    def _require_existing(self) -> None:
        if not self.exists:
            raise EndpointError(f"No webhook endpoint {self.id!r}")

    def register(
        self, *, url: str, event_types: list[str], description: str, enabled: bool, secret_ref: str
    ) -> None:
        if self.registered:
            raise EndpointError(f"Webhook endpoint {self.id!r} is registered already")
        self.record(
            events.WEBHOOK_ENDPOINT_REGISTERED,
            {
                "endpoint_id": self.id,
                "url": url,
                "event_types": list(event_types),
                "description": description,
                "enabled": enabled,
                "secret_ref": secret_ref,
            },
        )

    def change(self, **changes: Any) -> None:
        """Record the changed fields among url, event_types and description (nothing when
        none changed)."""
        self._require_existing()
        changed = {
            name: value
            for name, value in changes.items()
            if name in ("url", "event_types", "description") and getattr(self, name) != value
        }
        if changed:
            self.record(events.WEBHOOK_ENDPOINT_CHANGED, {"endpoint_id": self.id, **changed})

    def rotate_secret(self, *, secret_ref: str, previous_until: str) -> None:
        self._require_existing()
        self.record(
            events.WEBHOOK_SECRET_ROTATED,
            {
                "endpoint_id": self.id,
                "secret_ref": secret_ref,
                "previous_secret_ref": self.secret_ref,
                "previous_secret_until": previous_until,
            },
        )

    def disable(self, *, cause: str, reason: str) -> bool:
        """Disable it; False (nothing recorded) when it is disabled already."""
        self._require_existing()
        if cause not in events.DISABLED_CAUSES:
            raise EndpointError(f"Unknown cause {cause!r}")
        if not self.enabled:
            return False
        self.record(
            events.WEBHOOK_ENDPOINT_DISABLED,
            {"endpoint_id": self.id, "url": self.url, "cause": cause, "reason": reason},
        )
        return True

    def enable(self) -> bool:
        """Enable it (its failures count afresh); False when it is enabled already."""
        self._require_existing()
        if self.enabled:
            return False
        self.record(events.WEBHOOK_ENDPOINT_ENABLED, {"endpoint_id": self.id})
        return True

    def delete(self) -> None:
        self._require_existing()
        self.record(events.WEBHOOK_ENDPOINT_DELETED, {"endpoint_id": self.id})

    @applies(events.WEBHOOK_ENDPOINT_REGISTERED)
    def _registered(self, payload: dict[str, Any]) -> None:
        self.registered = True
        self.enabled = payload["enabled"]
        self.url = payload["url"]
        self.event_types = list(payload["event_types"])
        self.description = payload["description"]
        self.secret_ref = payload["secret_ref"]

    @applies(events.WEBHOOK_ENDPOINT_CHANGED)
    def _changed(self, payload: dict[str, Any]) -> None:
        for name in ("url", "event_types", "description"):
            if name in payload:
                setattr(self, name, payload[name])

    @applies(events.WEBHOOK_SECRET_ROTATED)
    def _rotated(self, payload: dict[str, Any]) -> None:
        self.secret_ref = payload["secret_ref"]
        self.previous_secret_ref = payload["previous_secret_ref"]

    @applies(events.WEBHOOK_ENDPOINT_DISABLED)
    def _disabled(self, payload: dict[str, Any]) -> None:
        self.enabled = False

    @applies(events.WEBHOOK_ENDPOINT_ENABLED)
    def _enabled(self, payload: dict[str, Any]) -> None:
        self.enabled = True

    @applies(events.WEBHOOK_ENDPOINT_DELETED)
    def _deleted(self, payload: dict[str, Any]) -> None:
        self.deleted = True
        self.enabled = False
