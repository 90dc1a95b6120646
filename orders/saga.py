"""The order fulfilment saga: reserve stock, charge, confirm, complete; undo what was done on
failure. FULFILMENT_V1 is the whole definition; `fulfilment` runs it.

The saga is driven by events. It sends each remote step's request as an event on its own
stream (`saga/<order_id>`) and moves on when the service's reply arrives, matched by order id
(= reservation id = payment id). Every decision appends the saga's and the order's new events in
one transaction, so a crash leaves either both or neither, and `process_events` resumes any
saga in flight from the log.

When a step fails (a refusal, or no reply in time: see `overdue_for`), the compensations
of the steps already done run in reverse order, then the order is cancelled. Payment is the
pivot: once it succeeds, the remaining local steps always succeed and are never undone. A reply
that arrives after its step was given up is still handled: a late reservation is released and
a late payment refunded. A compensation unanswered SAGA_COMPENSATION_ATTEMPTS times leaves the
saga in `compensation_failed` until `manage.py retry_sagas` sends it again (`sagas_expire` and
`saga_retry`, at the bottom, are what the commands and the worker call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from eventstore.api import (
    AggregateNotFound,
    Event,
    RecordedEvent,
    Repository,
    RequestProgress,
    load_together,
    requests_progress,
    retry_on_conflict,
    tracing,
    unit_of_work,
)
from orders import events
from orders.aggregates import IllegalTransition, Order, OrderNotFound, Saga, Waiting
from orders.models import SagaSummary
from orders.services import cancellations, orders, sagas

logger = logging.getLogger(__name__)

ACTOR = "service:orders"


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


# Builds a request's payload from the run; raises StepRefused when the step cannot start.
Payload = Callable[[Run], dict[str, Any]]


@dataclass(frozen=True)
class Request:
    """A request the saga sends (an event on its own stream, its payload built from the run)
    and the replies that answer it, which name the order under `order_key`."""

    event_type: str
    payload: Payload
    order_key: str
    succeeded_by: str = ""
    failed_by: str = ""


@dataclass(frozen=True)
class Compensation:
    """How a step is undone: send `request`; its confirmation applies `succeeded` (if any) to
    the order. Declared as `Compensation(name).invoke(...).on_reply(...)`."""

    name: str
    succeeded: Callable[[Run], None] | None = None
    request: Request | None = None

    def invoke(self, event_type: str, payload: Payload, *, key: str) -> Compensation:
        """Undone by sending `event_type` (payload from `payload`); replies name the order
        under `key`."""
        return replace(self, request=Request(event_type, payload, key))

    def on_reply(self, event_type: str) -> Compensation:
        """Confirmed by `event_type`."""
        return replace(self, request=replace(self.request, succeeded_by=event_type))


@dataclass(frozen=True)
class Step:
    """One step. A local one runs `local` at once and cannot fail. A remote one sends its
    request, and its reply applies `succeeded` or `failed` to the order (`timeout_reason` when
    none comes); its compensation undoes it. Declared as
    `Step(name).invoke(...).on_reply(...).on_refusal(...).with_compensation(...)`."""

    name: str
    timeout_reason: str = ""
    # Retried, never failed: an overdue request is sent again (the service's idempotency
    # makes that safe), and after SAGA_COMPENSATION_ATTEMPTS tries the saga is parked.
    retried: bool = False
    local: Callable[[Run], None] | None = None
    request: Request | None = None
    succeeded: Callable[[Run, dict[str, Any]], None] | None = None
    failed: Callable[[Run, str], None] | None = None
    compensation: Compensation | None = None

    def invoke(self, event_type: str, payload: Payload, *, key: str) -> Step:
        """Done by sending `event_type` (payload from `payload`) to a service whose replies
        name the order under `key`."""
        return replace(self, request=Request(event_type, payload, key))

    def on_reply(
        self, event_type: str, succeeded: Callable[[Run, dict[str, Any]], None] | None = None
    ) -> Step:
        """Succeeds on `event_type`, which `succeeded` (if any) applies to the order."""
        return replace(
            self, request=replace(self.request, succeeded_by=event_type), succeeded=succeeded
        )

    def on_refusal(self, event_type: str, failed: Callable[[Run, str], None] | None = None) -> Step:
        """Fails on `event_type`; `failed` (if any) records its reason on the order."""
        return replace(self, request=replace(self.request, failed_by=event_type), failed=failed)

    def with_compensation(self, compensation: Compensation) -> Step:
        """Undone by `compensation` when a later step fails."""
        return replace(self, compensation=compensation)

    def with_retries(self) -> Step:
        """Sent again when overdue instead of failing (see `retried`)."""
        return replace(self, retried=True)


@dataclass(frozen=True)
class Reply:
    """What a reply event answers: the step or compensation `name`, and whether it succeeded."""

    kind: str
    name: str
    succeeded: bool
    order_key: str


# --- requests and what their replies do to the order ---------------------------------------------


def reservation_request(run: Run) -> dict[str, Any]:
    """Inventory is to hold every line of the order (reservation id = order id)."""
    items = [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in run.order.items]
    return {"order_id": run.order.id, "items": items}


def reservation_succeeded(run: Run, reply: dict[str, Any]) -> None:
    """Prices come from inventory: the order takes each line's unit price and the total."""
    run.order.inventory_reserved(lines=reply["lines"], total_amount=reply["total_amount"])


def reservation_failed(run: Run, reason: str) -> None:
    """The order records why its stock could not be held."""
    run.order.inventory_failed(reason=reason)


def release_request(run: Run) -> dict[str, Any]:
    """Compensates reserve_inventory: inventory is to put the held stock back."""
    return {"order_id": run.order.id}


def inventory_released(run: Run) -> None:
    """The order notes its stock is back, when a failed payment was the reason to release it
    (a late reservation's release leaves the cancelled order as it is)."""
    if run.order.status == Order.PAYMENT_FAILED:
        run.order.inventory_released()


def payment_request(run: Run) -> dict[str, Any]:
    """Payments is to charge the reserved total (payment id = order id)."""
    if "refund_payment" in run.saga.compensations:
        # The order's payment id was charged outside the saga, and that charge is being
        # refunded. Payments decides a payment id once, so a request would never be answered.
        raise StepRefused(
            reason="payment_conflict",
            error="the order's payment id was charged outside the saga (refunded)",
        )
    return {
        "payment_id": run.order.id,
        "customer_id": run.order.customer_id,
        "amount": run.order.total_amount,
        # The token stays in the vault: payments takes it by reference when it charges.
        "payment_method": run.order.payment_method,
        "payment_token_ref": run.order.payment_token_ref,
    }


def payment_succeeded(run: Run, reply: dict[str, Any]) -> None:
    """The order records the charge."""
    run.order.payment_processed(transaction_id=reply["transaction_id"], amount=reply["amount"])


def payment_failed(run: Run, reason: str) -> None:
    """The order records why the charge failed."""
    run.order.payment_failed(reason=reason)


def refund_request(run: Run) -> dict[str, Any]:
    """Compensates process_payment: payments is to refund the charge (the order is cancelled
    already, so its confirmation changes nothing on it)."""
    return {"payment_id": run.order.id}


def confirm_order(run: Run) -> None:
    """The order is paid, so it is confirmed (the customer is told)."""
    run.order.confirm()


def complete_order(run: Run) -> None:
    """The order is complete (inventory sells the reserved stock). A cancellation asked for
    while it was paid for is taken up again: the cancellation saga refunds it."""
    run.order.complete()
    if run.order.cancel_requested:
        run.order.request_cancellation(reason=run.order.cancellation_reason, requested_by=ACTOR)


def refuse_when_cancelled(run: Run, step: Step) -> None:
    """A fulfilment asked to stop sends no further request: the step fails and what was done
    is compensated, as for a failure (the local steps after the payment still run)."""
    if run.order.cancel_requested and step.request is not None:
        raise StepRefused(reason=CANCEL_REQUESTED, error="the order's cancellation was requested")


def cancel_order(run: Run) -> None:
    """Once what the fulfilment did is undone, the order is cancelled with the reason its step
    failed: when the order recorded that failure (its stock refused, or released after a
    failed payment), or its cancellation was requested before the payment. Any other order is
    left as it is (one cancelled already, whose late success was undone)."""
    order = run.order
    if order.status in (Order.INVENTORY_FAILED, Order.INVENTORY_RELEASED) or (
        order.cancel_requested and order.status in (Order.PENDING, Order.INVENTORY_RESERVED)
    ):
        order.cancel(reason=run.saga.failure_reason)


# --- the cancellation of a completed order -------------------------------------------------------


def order_refund_request(run: Run) -> dict[str, Any]:
    """Payments is to refund the order's charge in full (payment id = order id, which keys the
    refund at the provider)."""
    return {"payment_id": run.order.id}


def return_request(run: Run) -> dict[str, Any]:
    """Inventory is to put the order's sold units back to available stock."""
    return {"order_id": run.order.id}


def refund_order(run: Run) -> None:
    """The order is cancelled and refunded, its stock back: the customer is told."""
    run.order.refunded()


def leave_order_cancelling(run: Run) -> None:
    """Nothing: a cancellation's steps are never undone, so one failed by hand (`compensate`)
    leaves its order `cancelling`, for staff."""


def is_cancelling(order: Order) -> bool:
    """An order needs a cancellation saga once it is `cancelling` (completed, then asked to
    cancel)."""
    return order.status == Order.CANCELLING


# --- the fulfilment ------------------------------------------------------------------------------

# Version 1, the whole saga: each step with its request, replies and compensation, in order.
# Payment is the pivot: the steps after it are local and never undone.
FULFILMENT_V1: tuple[Step, ...] = (
    Step("reserve_inventory", timeout_reason="inventory_timeout")
    .invoke(events.INVENTORY_RESERVATION_REQUESTED, reservation_request, key="reservation_id")
    .on_reply(events.INVENTORY_RESERVED, reservation_succeeded)
    .on_refusal(events.INVENTORY_RESERVATION_FAILED, reservation_failed)
    .with_compensation(
        Compensation("release_inventory", succeeded=inventory_released)
        .invoke(events.INVENTORY_RELEASE_REQUESTED, release_request, key="reservation_id")
        .on_reply(events.INVENTORY_RELEASED)
    ),
    Step("process_payment", timeout_reason="payment_timeout")
    .invoke(events.PAYMENT_REQUESTED, payment_request, key="payment_id")
    .on_reply(events.PAYMENT_PROCESSED, payment_succeeded)
    .on_refusal(events.PAYMENT_FAILED, payment_failed)
    .with_compensation(
        Compensation("refund_payment")
        .invoke(events.PAYMENT_REFUND_REQUESTED, refund_request, key="payment_id")
        .on_reply(events.PAYMENT_REFUNDED)
    ),
    Step("confirm_order", local=confirm_order),
    Step("complete_order", local=complete_order),
)

# Every definition version still in flight (a saga keeps the one it started with); the highest
# is the one new sagas start with.
DEFINITIONS: Mapping[int, tuple[Step, ...]] = {1: FULFILMENT_V1}

# The reason an order in fulfilment is cancelled with when its cancellation was requested.
CANCEL_REQUESTED = "cancel_requested"

# Version 1 of the cancellation of a completed order: refund first (a refund refused or never
# answered parks the saga with the order still `cancelling`, and nothing returned to stock),
# then return the units, then the order is `refunded`. Nothing here is undone.
CANCELLATION_V1: tuple[Step, ...] = (
    Step("refund_payment")
    .invoke(events.PAYMENT_REFUND_REQUESTED, order_refund_request, key="payment_id")
    .on_reply(events.PAYMENT_REFUNDED)
    .with_retries(),
    Step("return_stock")
    .invoke(events.INVENTORY_RETURN_REQUESTED, return_request, key="reservation_id")
    .on_reply(events.INVENTORY_RETURNED)
    .with_retries(),
    Step("refund_order", local=refund_order),
)

CANCELLATION_DEFINITIONS: Mapping[int, tuple[Step, ...]] = {1: CANCELLATION_V1}


def replies_of(definitions: Mapping[int, tuple[Step, ...]]) -> dict[str, Reply]:
    """Every reply the definitions wait for, by event type: what it answers and where it names
    the order."""
    replies: dict[str, Reply] = {}
    for steps in definitions.values():
        for step in steps:
            if step.request is not None:
                replies.update(_replies(Waiting.STEP, step.name, step.request))
            undo = step.compensation
            if undo is not None:
                replies.update(_replies(Waiting.COMPENSATION, undo.name, undo.request))
    return replies


def requests_of(definitions: Mapping[int, tuple[Step, ...]]) -> frozenset[str]:
    """Every request event type the definitions send, for their steps and compensations."""
    requests: set[str] = set()
    for steps in definitions.values():
        for step in steps:
            if step.request is not None:
                requests.add(step.request.event_type)
            if step.compensation is not None:
                requests.add(step.compensation.request.event_type)
    return frozenset(requests)


def _replies(kind: str, name: str, request: Request) -> dict[str, Reply]:
    replies = {request.succeeded_by: Reply(kind, name, True, request.order_key)}
    if request.failed_by:
        replies[request.failed_by] = Reply(kind, name, False, request.order_key)
    return replies


def _always(order: Order) -> bool:
    return True


def _no_check(run: Run, step: Step) -> None:
    return None


class OrderFulfillmentSaga:
    """Runs each order's fulfilment along its definition, step by step, compensating the steps
    done when one fails.

    Every public method is safe to call again with the same arguments (a repeat finds the
    saga moved on and does nothing) and retries on a concurrent change to the saga or order.
    """

    def __init__(
        self,
        definitions: Mapping[int, tuple[Step, ...]],
        *,
        kind: str = "fulfilment",
        repository: Repository[Saga] = sagas,
        on_compensated: Callable[[Run], None],
        starts_for: Callable[[Order], bool] = _always,
        before_step: Callable[[Run, Step], None] = _no_check,
    ) -> None:
        """`kind` names the saga (SagaSummary.kind); `repository` keeps its stream;
        `on_compensated` finishes a saga whose compensations are all confirmed (before it is
        `compensated`); `starts_for` says whether an order needs one; `before_step` may refuse
        a remote step (StepRefused) before its request is sent."""
        self.definitions = definitions
        self.kind = kind
        self.repository = repository
        self.on_compensated = on_compensated
        self.starts_for = starts_for
        self.before_step = before_step

    @property
    def version(self) -> int:
        """The definition version new sagas start with: the highest kept."""
        return max(self.definitions)

    @property
    def replies(self) -> dict[str, Reply]:
        """The replies that move a saga on, by event type (see `replies_of`)."""
        return replies_of(self.definitions)

    @property
    def requests(self) -> frozenset[str]:
        """The request event types its sagas send (see `requests_of`)."""
        return requests_of(self.definitions)

    # --- entry points ------------------------------------------------------------------------

    @retry_on_conflict
    def execute(self, order_id: str, *, cause: RecordedEvent | None = None) -> Saga:
        """Start the saga of an order (one `starts_for` accepts) and run it as far as it goes
        without a reply."""
        with unit_of_work():
            order, saga = load_together((orders, order_id), (self.repository, order_id))
            if not order.exists:
                raise OrderNotFound(f"Order {order_id!r} does not exist")
            if saga.exists or not self.starts_for(order):
                return saga
            run = Run(saga, order, self._metadata(order_id, cause))
            saga.start(
                order_id=order_id,
                definition_version=self.version,
                steps=[step.name for step in self.definition(self.version)],
            )
            self._advance(run)
            run.save()
        return saga

    @retry_on_conflict
    def handle_reply(self, event: RecordedEvent) -> Saga | None:
        """Apply a service's reply to the saga of the order it names (None: no such saga)."""
        reply = self.replies[event.event_type]
        order_id = str(event.payload.get(reply.order_key, ""))
        with unit_of_work():
            run = self._load(order_id, cause=event)
            if run is None:
                return None
            if reply.kind == Waiting.STEP:
                step = self._step(run.saga, reply.name)
                self._on_step_reply(run, step, reply.succeeded, event.payload)
            else:
                self._on_compensation_reply(run, reply.name)
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
        with unit_of_work():
            run = self._require(order_id, cause)
            step = self._step(run.saga, failed_step)
            if not _waits_on_step(run.saga, failed_step):
                raise IllegalTransition(
                    f"Saga {order_id!r} is not waiting on {failed_step!r}; only the step in "
                    "progress can fail (steps after the payment are never undone)"
                )
            self._fail(run, step, error=error, reason=reason or f"{failed_step}_failed")
            run.save()
        return run.saga

    @retry_on_conflict
    def expire(self, order_id: str, *, waiting: Waiting, error: str = "") -> Saga:
        """The reply `waiting` (as `Saga.waiting_for` names it) did not come in time (`error`
        says how; by default, within SAGA_STEP_TIMEOUT).

        A step fails and compensation begins; a compensation is sent again, up to
        SAGA_COMPENSATION_ATTEMPTS times, then the saga is left in compensation_failed. Does
        nothing when the saga no longer waits for that reply.
        """
        with (
            self._in_order_trace("expire", waiting.name, order_id),
            unit_of_work(),
        ):
            run = self._require(order_id, None)
            saga = run.saga
            if waiting.kind == Waiting.STEP:
                if saga.waiting_for() != waiting:
                    return saga
                step = self._step(saga, waiting.name)
                error = error or f"no reply within {settings.SAGA_STEP_TIMEOUT:g} s"
                # Entries recorded before steps were retried carry no count.
                tries = saga.steps[step.name].get("tries", 1)
                if not step.retried:
                    self._fail(run, step, error=error, reason=step.timeout_reason)
                elif tries >= int(settings.SAGA_COMPENSATION_ATTEMPTS):
                    saga.step_stalled(
                        step=step.name, error=f"{error}; no reply after {tries} request(s)"
                    )
                else:
                    with traced("retry", step.name, run):
                        self._start(run, step)
            else:
                name = waiting.name
                entry = saga.compensations.get(name)
                if (
                    not entry
                    or entry["status"] != Saga.STARTED
                    or entry["attempt"] != waiting.attempt
                ):
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
        """Send every compensation, and every retried step, that was given up on again (staff,
        after fixing the cause).

        IllegalTransition unless the saga is in compensation_failed.
        """
        with self._in_order_trace("retry", "compensations", order_id), unit_of_work():
            run = self._require(order_id, None)
            if run.saga.state != Saga.COMPENSATION_FAILED:
                raise IllegalTransition(
                    f"Saga {order_id!r} is {run.saga.state}: only a saga in "
                    "compensation_failed can be retried"
                )
            for name, entry in list(run.saga.compensations.items()):
                if entry["status"] == Saga.FAILED:
                    self._request(run, self._compensation(run.saga, name))
            for name, entry in list(run.saga.steps.items()):
                step = self._step(run.saga, name)
                if entry["status"] == Saga.FAILED and step.retried:
                    self._start(run, step)
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
                    self.before_step(run, step)
                    self._start(run, step)
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
        if _waits_on_step(saga, step.name):
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
            compensation = self._compensation(run.saga, name)
            if compensation.succeeded:
                compensation.succeeded(run)
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
        """Send the next compensation, or, when none is left or in flight, finish (see
        `on_compensated`)."""
        saga = run.saga
        if saga.state != Saga.COMPENSATING or saga.compensations_in_flight:
            return
        if saga.pending_compensations:
            self._request(run, self._compensation(saga, saga.pending_compensations[0]))
            return
        self.on_compensated(run)
        saga.compensated()

    def _in_order_trace(self, action: str, name: str, order_id: str):
        """A span for a decision no event caused (a timeout, staff's retry), in the trace of
        the saga's last event, so it shows in the order's trace."""
        if not tracing.enabled():
            return tracing.span(action)
        last = (
            Event.objects.filter(
                aggregate_type=self.repository.aggregate_class.aggregate_type,
                aggregate_id=order_id,
            )
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
    def _start(run: Run, step: Step) -> None:
        """Send a remote step's request (again, for a retried one), or run a local step to its
        end."""
        if step.request is not None:
            run.saga.request_step(
                step=step.name,
                event_type=step.request.event_type,
                payload=step.request.payload(run),
                retried=step.retried,
            )
        elif step.local is not None:
            step.local(run)
            run.saga.step_succeeded(step=step.name)

    @staticmethod
    def _request(run: Run, compensation: Compensation) -> None:
        """Send a compensation's request."""
        with traced("compensate", compensation.name, run):
            run.saga.request_compensation(
                compensation=compensation.name,
                event_type=compensation.request.event_type,
                payload=compensation.request.payload(run),
            )

    # --- lookups -----------------------------------------------------------------------------

    def definition(self, version: int) -> tuple[Step, ...]:
        """The steps of a definition version (LookupError for a version no longer kept)."""
        try:
            return self.definitions[version]
        except KeyError:
            raise LookupError(f"No saga definition version {version} is kept") from None

    def _step(self, saga: Saga, name: str) -> Step:
        for step in self.definition(saga.definition_version):
            if step.name == name:
                return step
        raise IllegalTransition(f"Saga {saga.id!r} has no step {name!r}")

    def request_of(self, version: int, waiting: Waiting) -> Request:
        """The request whose reply `waiting` names, in definition `version`."""
        for step in self.definition(version):
            if waiting.kind == Waiting.STEP and step.name == waiting.name and step.request:
                return step.request
            undo = step.compensation
            if waiting.kind == Waiting.COMPENSATION and undo and undo.name == waiting.name:
                return undo.request
        raise LookupError(f"Definition {version} sends no request for {waiting}")

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
        if not order_id:
            return None
        saga, order = load_together((self.repository, order_id), (orders, order_id))
        if not saga.exists:
            return None
        if not order.exists:
            raise AggregateNotFound(f"{Order.aggregate_type}/{order_id}")
        return Run(saga, order, self._metadata(order_id, cause))

    def _require(self, order_id: str, cause: RecordedEvent | None) -> Run:
        run = self._load(order_id, cause=cause)
        if run is None:
            raise OrderNotFound(f"No saga runs for order {order_id!r}")
        return run


def _waits_on_step(saga: Saga, name: str) -> bool:
    """Whether the saga waits for the reply to step `name` (whichever attempt)."""
    waiting = saga.waiting_for()
    return waiting is not None and waiting.kind == Waiting.STEP and waiting.name == name


fulfilment = OrderFulfillmentSaga(
    DEFINITIONS, on_compensated=cancel_order, before_step=refuse_when_cancelled
)
cancellation = OrderFulfillmentSaga(
    CANCELLATION_DEFINITIONS,
    kind="cancellation",
    repository=cancellations,
    on_compensated=leave_order_cancelling,
    starts_for=is_cancelling,
)
# Each saga by SagaSummary.kind.
ENGINES: Mapping[str, OrderFulfillmentSaga] = {
    engine.kind: engine for engine in (fulfilment, cancellation)
}


def sagas_overdue(*, now=None, limit: int = 500) -> list[tuple[str, str, Waiting, str]]:
    """The sagas whose awaited reply is overdue (`overdue_for`), oldest request first: each as
    (saga kind, order id, the reply waited for, why it is overdue). One query for the
    candidates, and one for their requests' progress."""
    now = now or timezone.now()
    least = min(float(settings.SAGA_STEP_TIMEOUT), float(settings.SAGA_QUEUE_TIMEOUT))
    waiting = SagaSummary.objects.waiting_since_before(now - timedelta(seconds=least))[:limit]
    candidates = []
    for saga_kind, order_id, version, kind, name, attempt in waiting.values_list(
        "kind", "order_id", "definition_version", "waiting_kind", "waiting_for", "waiting_attempt"
    ):
        reply = Waiting(kind, name, attempt)
        request = ENGINES[saga_kind].request_of(version, reply)
        replies = [r for r in (request.succeeded_by, request.failed_by) if r]
        candidates.append((saga_kind, order_id, reply, (order_id, request.event_type, replies)))
    progress = requests_progress([asked for *_, asked in candidates])
    overdue = []
    for (saga_kind, order_id, reply, _), found in zip(candidates, progress, strict=True):
        error = overdue_for(found, now)
        if error:
            overdue.append((saga_kind, order_id, reply, error))
    return overdue


def sagas_expire(*, now=None, limit: int = 500) -> list[str]:
    """Give up on every overdue reply: fail the step (and compensate) or send the compensation
    again. Returns the order ids acted on."""
    overdue = sagas_overdue(now=now, limit=limit)
    for kind, order_id, waiting, error in overdue:
        ENGINES[kind].expire(order_id, waiting=waiting, error=error)
    return [order_id for _, order_id, _, _ in overdue]


def overdue_for(progress: RequestProgress | None, now) -> str:
    """Why a saga's request is overdue, by its `progress` ("" when it is not): the call its
    service owes for it began SAGA_STEP_TIMEOUT seconds ago with no reply; or nothing began
    and it was recorded SAGA_QUEUE_TIMEOUT seconds ago (a service that replies in the
    transaction that reads the request owes no call: only this bound applies). A reply already
    recorded is not overdue, however late the saga reads it: waiting in our own queues cancels
    no order before SAGA_QUEUE_TIMEOUT."""
    if progress is None or progress.replied:
        return ""
    step, queue = float(settings.SAGA_STEP_TIMEOUT), float(settings.SAGA_QUEUE_TIMEOUT)
    if progress.started_at is not None:
        if (now - progress.started_at).total_seconds() >= step:
            return f"no reply within {step:g} s of the call"
        return ""
    if (now - progress.requested_at).total_seconds() >= queue:
        return f"not started within {queue:g} s"
    return ""


def saga_retry(*, order_id: str, kind: str = "fulfilment") -> Saga:
    """Send a saga's failed compensations (and stalled steps) again; IllegalTransition unless
    it is in compensation_failed, OrderNotFound when the order has no such saga."""
    return ENGINES[kind].retry(order_id)
