"""The webhook dispatcher: an effect subscriber on the public events' internal types."""

from __future__ import annotations

import logging
from typing import Any

from eventstore.api import EffectSubscriber, RecordedEvent, owe_calls
from webhooks import events, services

logger = logging.getLogger(__name__)


class WebhookDispatcher(EffectSubscriber):
    """Owes a call for each public event some enabled endpoint wants, found by the worker as it
    follows this subscriber's checkpoint: an append owes nothing here, so an order costs no
    statement for webhooks, and whether an endpoint wants an event is read from the endpoints
    table by the batch that reads the event (no per-process cache: an endpoint registered in
    any process before the event was appended is found). `perform` (no transaction open)
    records one delivery per wanting endpoint and makes each first attempt. Retries follow each
    delivery's own schedule (WEBHOOKS_RETRY_SCHEDULE), made by the worker's pass
    (`deliver_due`)."""

    name = "webhooks.dispatch"
    event_types = frozenset(events.PUBLIC_TYPES)

    def owes(self, event: RecordedEvent) -> bool:
        return False  # at append: the worker's follower decides (`handle_batch`)

    def handle_batch(self, batch: list[RecordedEvent]) -> None:
        kinds = [(event, events.public_type(event)) for event in batch]
        public = [(event, kind) for event, kind in kinds if kind is not None]
        if not public:
            return
        endpoints = services.enabled_endpoints()  # one statement per batch, not per event
        owe_calls(
            [
                (self, event)
                for event, kind in public
                if any(endpoint.receives(event, kind) for endpoint in endpoints)
            ]
        )

    def perform(self, event: RecordedEvent, *, attempt: int) -> None:
        services.owe_deliveries(event)
        services.deliver(list(services.pending_for(event.event_id)))


def deliver_due_on_worker_pass(sender: Any = None, **kwargs: Any) -> None:
    """`worker_pass` receiver: move the running replays on, then attempt the deliveries that
    are due."""
    try:
        services.replay_continue()
    except Exception:
        logger.exception("Moving the webhook replays on failed")
    try:
        services.deliver_due()
    except Exception:
        logger.exception("Attempting the due webhook deliveries failed")
