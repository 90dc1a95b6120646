"""Orders' reactions: the fulfilment saga starts on OrderCreated, the cancellation saga on a
completed order's OrderCancellationRequested, and each moves on with the replies it waits for."""

import logging

from eventstore.api import RecordedEvent, Subscriber
from orders import events
from orders.saga import ENGINES, cancellation, fulfilment, sagas_expire

logger = logging.getLogger(__name__)

# What starts each saga: an event of the Order aggregate's own stream.
STARTS = {events.ORDER_CREATED: fulfilment, events.ORDER_CANCELLATION_REQUESTED: cancellation}


class FulfilmentSagaHandler(Subscriber):
    """Runs every order's fulfilment and cancellation sagas from the log, each event once."""

    name = "orders.saga"
    # A starting event starts a saga; every reply a kept definition waits for moves one on.
    event_types = frozenset(
        {*STARTS, *(reply for engine in ENGINES.values() for reply in engine.replies)}
    )

    def handle(self, event: RecordedEvent) -> None:
        if event.event_type in STARTS:
            # Only the Order aggregate's own stream places (and cancels) orders; an event of
            # that type written elsewhere (an import, a script) must not stop every saga
            # behind it.
            if event.aggregate_type == events.ORDER:
                STARTS[event.event_type].execute(event.aggregate_id, cause=event)
            return
        # A reply may move either saga of its order (PaymentRefunded answers the fulfilment's
        # compensation and the cancellation's step alike); each ignores what it did not ask.
        for engine in ENGINES.values():
            if event.event_type in engine.replies:
                engine.handle_reply(event)


def expire_sagas_on_worker_pass(sender=None, **kwargs) -> None:
    """`worker_pass` receiver: `process_events` gives up on overdue replies on every pass."""
    expired = sagas_expire()
    if expired:
        logger.info("Expired the overdue step of %d saga(s)", len(expired))
