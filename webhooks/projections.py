"""The endpoints table, projected from the WebhookEndpoint streams."""

from __future__ import annotations

from django.db import models

from eventstore.api import Projection, RecordedEvent, rows
from webhooks import events
from webhooks.models import Delivery, Endpoint


class EndpointProjection(Projection):
    """One Endpoint row per registered, undeleted endpoint. `failing_since` is the deliveries'
    (not compared; a rebuild starts it afresh); deleting an endpoint deletes its deliveries."""

    name = "webhooks.endpoints"
    models = (Endpoint,)
    aggregate_type = events.ENDPOINT
    event_types = events.ENDPOINT_EVENT_TYPES

    def compared_fields(self, model: type[models.Model]) -> list[str]:
        return [name for name in super().compared_fields(model) if name != "failing_since"]

    def apply(self, event: RecordedEvent) -> None:
        payload, endpoint_id = event.payload, event.aggregate_id
        kind = event.event_type
        if kind == events.WEBHOOK_ENDPOINT_REGISTERED:
            rows.upsert(
                Endpoint,
                endpoint_id=endpoint_id,
                url=payload["url"],
                event_types=payload["event_types"],
                description=payload["description"],
                enabled=payload["enabled"],
                disabled_reason="",
                secret_ref=payload["secret_ref"],
                previous_secret_ref="",
                previous_secret_until=None,
                failing_since=None,
                created_at=payload.get("created_at") or event.recorded_at,
            )
        elif kind == events.WEBHOOK_ENDPOINT_CHANGED:
            changed = {
                name: payload[name]
                for name in ("url", "event_types", "description")
                if name in payload
            }
            rows.update(Endpoint, endpoint_id, **changed)
        elif kind == events.WEBHOOK_SECRET_ROTATED:
            rows.update(
                Endpoint,
                endpoint_id,
                secret_ref=payload["secret_ref"],
                previous_secret_ref=payload["previous_secret_ref"],
                previous_secret_until=payload["previous_secret_until"],
            )
        elif kind == events.WEBHOOK_ENDPOINT_DISABLED:
            rows.update(Endpoint, endpoint_id, enabled=False, disabled_reason=payload["reason"])
        elif kind == events.WEBHOOK_ENDPOINT_ENABLED:
            rows.update(Endpoint, endpoint_id, enabled=True, disabled_reason="", failing_since=None)
        elif kind == events.WEBHOOK_ENDPOINT_DELETED:
            Delivery.objects.filter(endpoint_id=endpoint_id).delete()
            rows.delete(Endpoint, endpoint_id)
