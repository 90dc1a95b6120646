"""Orders' reactions: the fulfilment saga starts on OrderCreated and moves on each reply."""

import logging

from eventstore.store import RecordedEvent
from eventstore.subscriptions import Subscriber
from orders import events
from orders.saga import fulfilment, sagas_expire

logger = logging.getLogger(__name__)


class FulfilmentSagaHandler(Subscriber):
    """Runs every order's OrderFulfillmentSaga from the log, each event once."""

    name = "orders.saga"
    # OrderCreated starts a saga; every reply a kept definition waits for moves one on.
    event_types = frozenset({events.ORDER_CREATED, *fulfilment.replies})

    def handle(self, event: RecordedEvent) -> None:
        if event.event_type == events.ORDER_CREATED:
            # Only the Order aggregate's own stream places orders; an OrderCreated written
            # elsewhere (an import, a script) must not stop every saga behind it.
            if event.aggregate_type == events.ORDER:
                fulfilment.execute(event.aggregate_id, cause=event)
        else:
            fulfilment.handle_reply(event)


def expire_sagas_on_worker_pass(sender=None, **kwargs) -> None:
    """`worker_pass` receiver: `process_events` gives up on overdue replies on every pass."""
    expired = sagas_expire()
    if expired:
        logger.info("Expired the overdue step of %d saga(s)", len(expired))
