"""The webhook dispatcher: an effect subscriber on the public events' internal types."""

from __future__ import annotations

import logging
from typing import Any

from eventstore.api import EffectSubscriber, RecordedEvent
from webhooks import events, services

logger = logging.getLogger(__name__)


class WebhookDispatcher(EffectSubscriber):
    """Owes a call for each public event at append; `perform` (no transaction open) records one
    delivery per wanting endpoint and makes each first attempt. Retries follow each delivery's
    own schedule (WEBHOOKS_RETRY_SCHEDULE), made by the worker's pass (`deliver_due`)."""

    name = "webhooks.dispatch"
    event_types = frozenset(events.PUBLIC_TYPES)

    def owes(self, event: RecordedEvent) -> bool:
        return (
            super().owes(event)
            and events.public_type(event) is not None
            and services.any_endpoint_enabled()
        )

    def perform(self, event: RecordedEvent, *, attempt: int) -> None:
        services.owe_deliveries(event)
        services.deliver(list(services.pending_for(event.event_id)))


def deliver_due_on_worker_pass(sender: Any = None, **kwargs: Any) -> None:
    """`worker_pass` receiver: attempt the deliveries that are due."""
    try:
        services.deliver_due()
    except Exception:
        logger.exception("Attempting the due webhook deliveries failed")
