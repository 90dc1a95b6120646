"""OrderFulfillmentSaga: reserve stock, charge, confirm, complete; undo what was done on failure.

The saga is driven by events. It sends each remote step's request as an event on its own
stream (`saga/<order_id>`) and moves on when the service's reply arrives, matched by order id
(= reservation id = payment id). Every decision appends the saga's and the order's new events in
one transaction, so a crash leaves either both or neither, and `process_events` resumes any
saga in flight from the log.

When a step fails (a refusal, or no reply within SAGA_STEP_TIMEOUT seconds), the compensations
of the steps already done run in reverse order, then the order is cancelled. Payment is the
pivot: once it succeeds, the remaining local steps always succeed and are never undone. A reply
that arrives after its step was given up is still handled: a late reservation is released and
a late payment refunded. A compensation unanswered SAGA_COMPENSATION_ATTEMPTS times leaves the
saga in `compensation_failed` until `manage.py retry_sagas` sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from eventstore import tracing
from eventstore.aggregates import Repository, retry_on_conflict
from eventstore.models import Event
from eventstore.store import RecordedEvent
from orders import events
from orders.aggregates import IllegalTransition, Order, OrderNotFound, Saga

logger = logging.getLogger(__name__)

ACTOR = "service:orders"

orders: Repository[Order] = Repository(Order)
sagas: Repository[Saga] = Repository(Saga)


@dataclass
class Run:
    """One decision of one saga: its saga and order, changed together and saved in one append."""

    saga: Saga
    order: Order
    metadata: dict[str, Any]

    def save(self) -> None:
        """Append the saga's and the order's new events in one transaction."""
        sagas.save(self.order, self.saga, metadata=self.metadata)


def traced(action: str, name: str, run: Run, **attributes: Any):
    """A span around one saga step's action (its start, its reply, its failure) or one
    compensation's (its request, its confirmation)."""
    return tracing.span(
        f"saga.{action} {name}",
        {"saga.order_id": run.order.id, "saga.action": action, "saga.step": name, **attributes},
    )


class StepRefused(Exception):
    """A step cannot even start: the saga fails it at once with `reason` and compensates."""

    def __init__(self, *, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


@dataclass(frozen=True)
class Compensation:
    """How to undo a step: send `request`, then apply the service's confirmation."""

    name: str
    request: Callable[[Run], None]
    succeeded: Callable[[Run], None]


@dataclass(frozen=True)
class Step:
    """One step: `start` sends its request (or, for a local step, does it at once); a reply
    applies `succeeded` or `failed` to the order; `compensation` undoes it."""

    name: str
    start: Callable[[Run], None]
    succeeded: Callable[[Run, dict[str, Any]], None] | None = None
    failed: Callable[[Run, str], None] | None = None
    compensation: Compensation | None = None
    timeout_reason: str = ""


# --- step handlers -------------------------------------------------------------------------------


def request_reservation(run: Run) -> None:
    """Ask inventory to hold every line of the order (reservation id = order id)."""
    items = [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in run.order.items]
    run.saga.request_step(
        step="reserve_inventory",
        event_type=events.INVENTORY_RESERVATION_REQUESTED,
        payload={"order_id": run.order.id, "items": items},
    )


def reservation_succeeded(run: Run, reply: dict[str, Any]) -> None:
    """Prices come from inventory: the order takes each line's unit price and the total."""
    run.order.inventory_reserved(lines=reply["lines"], total_amount=reply["total_amount"])


def reservation_failed(run: Run, reason: str) -> None:
    run.order.inventory_failed(reason=reason)


def request_payment(run: Run) -> None:
    """Ask payments to charge the reserved total (payment id = order id)."""
    if "refund_payment" in run.saga.compensations:
        # The order's payment id was charged outside the saga, and that charge is being
        # refunded. Payments decides a payment id once, so a request would never be answered.
        raise StepRefused(
            reason="payment_conflict",
            error="the order's payment id was charged outside the saga (refunded)",
        )
    run.saga.request_step(
        step="process_payment",
        event_type=events.PAYMENT_REQUESTED,
        payload={
            "payment_id": run.order.id,
            "customer_id": run.order.customer_id,
            "amount": run.order.total_amount,
            # The token stays in the vault: payments takes it by reference when it charges.
            "payment_method": run.order.payment_method,
            "payment_token_ref": run.order.payment_token_ref,
        },
    )


def payment_succeeded(run: Run, reply: dict[str, Any]) -> None:
    run.order.payment_processed(transaction_id=reply["transaction_id"], amount=reply["amount"])


def payment_failed(run: Run, reason: str) -> None:
    run.order.payment_failed(reason=reason)


def confirm_order(run: Run) -> None:
    """A local step: the order is paid, so it is confirmed (the customer is told)."""
    run.order.confirm()
    run.saga.step_succeeded(step="confirm_order")


def complete_order(run: Run) -> None:
    """A local step: the order is complete (inventory sells the reserved stock)."""
    run.order.complete()
    run.saga.step_succeeded(step="complete_order")


# --- compensation handlers -----------------------------------------------------------------------


def release_inventory(run: Run) -> None:
    """Compensates reserve_inventory: ask inventory to put the held stock back."""
    run.saga.request_compensation(
        compensation="release_inventory",
        event_type=events.INVENTORY_RELEASE_REQUESTED,
        payload={"order_id": run.order.id},
    )


def inventory_released(run: Run) -> None:
    if run.order.status == Order.PAYMENT_FAILED:
        run.order.inventory_released()


def refund_payment(run: Run) -> None:
    """Compensates process_payment: ask payments to refund the charge."""
    run.saga.request_compensation(
        compensation="refund_payment",
        event_type=events.PAYMENT_REFUND_REQUESTED,
        payload={"payment_id": run.order.id},
    )


def payment_refunded(run: Run) -> None:
    """The refund changes nothing on the order: it is cancelled already."""


RELEASE_INVENTORY = Compensation("release_inventory", release_inventory, inventory_released)
REFUND_PAYMENT = Compensation("refund_payment", refund_payment, payment_refunded)


class OrderFulfillmentSaga:
    """The fulfilment of one order, step by step, with a compensation for each remote step.

    Every public method is safe to call again with the same arguments (a repeat finds the
    saga moved on and does nothing) and retries on a concurrent change to the saga or order.
    """

    version = 1
    # The steps, in order, and how each is undone: the one place they are listed.
    STEPS: tuple[Step, ...] = (
        Step(
            "reserve_inventory",
            start=request_reservation,
            succeeded=reservation_succeeded,
            failed=reservation_failed,
            compensation=RELEASE_INVENTORY,
            timeout_reason="inventory_timeout",
        ),
        Step(
            "process_payment",
            start=request_payment,
            succeeded=payment_succeeded,
            failed=payment_failed,
            compensation=REFUND_PAYMENT,
            timeout_reason="payment_timeout",
        ),
        Step("confirm_order", start=confirm_order),
        Step("complete_order", start=complete_order),
    )
    PIVOT = "process_payment"
    # Sagas keep the definition version they started with; keep every version still in flight.
    DEFINITIONS: Mapping[int, tuple[Step, ...]] = {1: STEPS}

    # Replies: event type -> (step, succeeded?) or the compensation it confirms.
    STEP_REPLIES = {
        events.INVENTORY_RESERVED: ("reserve_inventory", True),
        events.INVENTORY_RESERVATION_FAILED: ("reserve_inventory", False),
        events.PAYMENT_PROCESSED: ("process_payment", True),
        events.PAYMENT_FAILED: ("process_payment", False),
    }
    COMPENSATION_REPLIES = {
        events.INVENTORY_RELEASED: "release_inventory",
        events.PAYMENT_REFUNDED: "refund_payment",
    }
    # Where each reply names the order.
    REPLY_KEYS = {
        events.INVENTORY_RESERVED: "reservation_id",
        events.INVENTORY_RESERVATION_FAILED: "reservation_id",
        events.INVENTORY_RELEASED: "reservation_id",
        events.PAYMENT_PROCESSED: "payment_id",
        events.PAYMENT_FAILED: "payment_id",
        events.PAYMENT_REFUNDED: "payment_id",
    }

    # --- entry points ------------------------------------------------------------------------

    @retry_on_conflict
    def execute(self, order_id: str, *, cause: RecordedEvent | None = None) -> Saga:
        """Start the saga of a placed order and run it as far as it goes without a reply."""
        with transaction.atomic():
            order = orders.load_or_new(order_id)
            if not order.exists:
                raise OrderNotFound(f"Order {order_id!r} does not exist")
            saga = sagas.load_or_new(order_id)
            if saga.exists:
                return saga
            run = Run(saga, order, self._metadata(order_id, cause))
            saga.start(
                order_id=order_id,
                definition_version=self.version,
                steps=[step.name for step in self.STEPS],
            )
            self._advance(run)
            run.save()
        return saga

    @retry_on_conflict
    def handle_reply(self, event: RecordedEvent) -> Saga | None:
        """Apply a service's reply to the saga of the order it names (None: no such saga)."""
        order_id = str(event.payload.get(self.REPLY_KEYS[event.event_type], ""))
        with transaction.atomic():
            run = self._load(order_id, cause=event)
            if run is None:
                return None
            if event.event_type in self.STEP_REPLIES:
                name, succeeded = self.STEP_REPLIES[event.event_type]
                self._on_step_reply(run, self._step(run.saga, name), succeeded, event.payload)
            else:
                self._on_compensation_reply(run, self.COMPENSATION_REPLIES[event.event_type])
            run.save()
        return run.saga

    @retry_on_conflict
    def compensate(
        self,
        order_id: str,
        failed_step: str,
        *,
        error: str = "failed",
        reason: str = "",
        cause: RecordedEvent | None = None,
    ) -> Saga:
        """Fail `failed_step` (the step the saga waits on) and undo the steps done before it,
        in reverse order; the order is cancelled once they are all undone.

        IllegalTransition when the saga is not waiting on that step, e.g. past the pivot.
        """
        with transaction.atomic():
            run = self._require(order_id, cause)
            step = self._step(run.saga, failed_step)
            if run.saga.waiting_for() != ("step", failed_step, 0):
                raise IllegalTransition(
                    f"Saga {order_id!r} is not waiting on {failed_step!r}; only the step in "
                    "progress can fail (steps after the payment are never undone)"
                )
            self._fail(run, step, error=error, reason=reason or f"{failed_step}_failed")
            run.save()
        return run.saga

    @retry_on_conflict
    def expire(self, order_id: str, *, waiting: tuple[str, str, int]) -> Saga:
        """The reply `waiting` (as `Saga.waiting_for` names it) did not come in time.

        A step fails and compensation begins; a compensation is sent again, up to
        SAGA_COMPENSATION_ATTEMPTS times, then the saga is left in compensation_failed. Does
        nothing when the saga no longer waits for that reply.
        """
        with (
            self._in_order_trace("expire", waiting[1], order_id),
            transaction.atomic(),
        ):
            run = self._require(order_id, None)
            kind, name, attempt = waiting
            saga = run.saga
            if kind == "step":
                if saga.waiting_for() != waiting:
                    return saga
                timeout = settings.SAGA_STEP_TIMEOUT
                step = self._step(saga, name)
                self._fail(
                    run, step, error=f"no reply within {timeout:g} s", reason=step.timeout_reason
                )
            else:
                entry = saga.compensations.get(name)
                if not entry or entry["status"] != Saga.STARTED or entry["attempt"] != attempt:
                    return saga
                limit = int(settings.SAGA_COMPENSATION_ATTEMPTS)
                if entry["tries"] >= limit:
                    saga.compensation_failed(
                        compensation=name, error=f"no reply after {entry['tries']} request(s)"
                    )
                else:
                    self._request(run, self._compensation(saga, name))
            run.save()
        return run.saga

    @retry_on_conflict
    def retry(self, order_id: str) -> Saga:
        """Send every compensation that was given up on again (staff, after fixing the cause).

        IllegalTransition unless the saga is in compensation_failed.
        """
        with self._in_order_trace("retry", "compensations", order_id), transaction.atomic():
            run = self._require(order_id, None)
            if run.saga.state != Saga.COMPENSATION_FAILED:
                raise IllegalTransition(
                    f"Saga {order_id!r} is {run.saga.state}: only a saga in "
                    "compensation_failed can be retried"
                )
            for name, entry in list(run.saga.compensations.items()):
                if entry["status"] == Saga.FAILED:
                    self._request(run, self._compensation(run.saga, name))
            run.save()
        return run.saga

    # --- decisions ---------------------------------------------------------------------------

    def _advance(self, run: Run) -> None:
        """Start the next steps until one waits for a reply; complete after the last."""
        for step in self.definition(run.saga.definition_version):
            status = run.saga.steps.get(step.name, {}).get("status")
            if status == Saga.SUCCEEDED:
                continue
            if status is not None:
                return  # started and waiting, or failed (compensation took over)
            try:
                with traced("step", step.name, run):
                    step.start(run)
            except StepRefused as refusal:
                self._fail(run, step, error=refusal.error, reason=refusal.reason)
                return
            if run.saga.waiting_for() is not None:
                return
        run.saga.completed()

    def _on_step_reply(self, run: Run, step: Step, succeeded: bool, reply: dict[str, Any]) -> None:
        with traced("reply", step.name, run, **{"saga.succeeded": succeeded}):
            self._apply_step_reply(run, step, succeeded, reply)

    def _apply_step_reply(
        self, run: Run, step: Step, succeeded: bool, reply: dict[str, Any]
    ) -> None:
        saga = run.saga
        if saga.waiting_for() == ("step", step.name, 0):
            if succeeded:
                if step.succeeded:
                    step.succeeded(run, reply)
                saga.step_succeeded(step=step.name)
                self._advance(run)
            else:
                reason = str(reply.get("reason") or f"{step.name}_failed")
                self._fail(run, step, error=f"refused: {reason}", reason=reason)
            return
        step_status = saga.steps.get(step.name, {}).get("status")
        compensation = step.compensation
        if (
            succeeded
            and compensation is not None
            and step_status != Saga.SUCCEEDED
            and compensation.name not in saga.compensations
        ):
            # The step was given up on (timed out) and has succeeded after all: undo it.
            logger.info("Saga %s: late %s success is compensated", saga.id, step.name)
            self._request(run, compensation)
        # Anything else is a duplicate or a late refusal: nothing to do.

    def _on_compensation_reply(self, run: Run, name: str) -> None:
        entry = run.saga.compensations.get(name)
        if not entry or entry["status"] == Saga.SUCCEEDED:
            return  # not asked for by this saga, or already confirmed
        with traced("compensated", name, run):
            self._compensation(run.saga, name).succeeded(run)
            run.saga.compensation_succeeded(compensation=name)
        self._continue_compensating(run)

    def _fail(self, run: Run, step: Step, *, error: str, reason: str) -> None:
        """Fail the step in progress and start undoing the steps done, last first."""
        definition = self.definition(run.saga.definition_version)
        done = [s for s in definition if s.name in run.saga.succeeded_steps]
        with traced("failed", step.name, run, **{"saga.reason": reason}):
            run.saga.step_failed(
                step=step.name,
                error=error,
                reason=reason,
                compensations=[s.compensation.name for s in reversed(done) if s.compensation],
            )
            if step.failed:
                step.failed(run, reason)
        self._continue_compensating(run)

    def _continue_compensating(self, run: Run) -> None:
        """Send the next compensation, or, when none is left or in flight, cancel the order."""
        saga = run.saga
        if saga.state != Saga.COMPENSATING or saga.compensations_in_flight:
            return
        if saga.pending_compensations:
            self._request(run, self._compensation(saga, saga.pending_compensations[0]))
            return
        if run.order.status in (Order.INVENTORY_FAILED, Order.INVENTORY_RELEASED):
            run.order.cancel(reason=saga.failure_reason)
        saga.compensated()

    @staticmethod
    def _in_order_trace(action: str, name: str, order_id: str):
        """A span for a decision no event caused (a timeout, staff's retry), in the trace of
        the saga's last event, so it shows in the order's trace."""
        if not tracing.enabled():
            return tracing.span(action)
        last = (
            Event.objects.filter(aggregate_type=Saga.aggregate_type, aggregate_id=order_id)
            .order_by("-version")
            .values_list("metadata", flat=True)
            .first()
        )
        return tracing.span(
            f"saga.{action} {name}",
            {"saga.order_id": order_id, "saga.action": action, "saga.step": name},
            parent=last if isinstance(last, dict) else None,
        )

    @staticmethod
    def _request(run: Run, compensation: Compensation) -> None:
        """Send a compensation's request."""
        with traced("compensate", compensation.name, run):
            compensation.request(run)

    # --- lookups -----------------------------------------------------------------------------

    def definition(self, version: int) -> tuple[Step, ...]:
        """The steps of a definition version (LookupError for a version no longer kept)."""
        try:
            return self.DEFINITIONS[version]
        except KeyError:
            raise LookupError(f"No saga definition version {version} is kept") from None

    def _step(self, saga: Saga, name: str) -> Step:
        for step in self.definition(saga.definition_version):
            if step.name == name:
                return step
        raise IllegalTransition(f"Saga {saga.id!r} has no step {name!r}")

    def _compensation(self, saga: Saga, name: str) -> Compensation:
        for step in self.definition(saga.definition_version):
            if step.compensation is not None and step.compensation.name == name:
                return step.compensation
        raise IllegalTransition(f"Saga {saga.id!r} has no compensation {name!r}")

    @staticmethod
    def _metadata(order_id: str, cause: RecordedEvent | None) -> dict[str, Any]:
        if cause is not None:
            return {**cause.caused_metadata(ACTOR), "correlation_id": order_id}
        return {"correlation_id": order_id, "actor": ACTOR}

    def _load(self, order_id: str, *, cause: RecordedEvent | None) -> Run | None:
        saga = sagas.load_or_new(order_id) if order_id else None
        if saga is None or not saga.exists:
            return None
        return Run(saga, orders.load(order_id), self._metadata(order_id, cause))

    def _require(self, order_id: str, cause: RecordedEvent | None) -> Run:
        run = self._load(order_id, cause=cause)
        if run is None:
            raise OrderNotFound(f"No saga runs for order {order_id!r}")
        return run


saga = OrderFulfillmentSaga()
