"""The Order and its fulfilment Saga: state rebuilt only from their own streams.

`Order` is a state machine with an explicit transition table: a command that is not a legal
transition from the current status raises `IllegalTransition` and records nothing. `Saga` keeps
the fulfilment's progress (which steps succeeded, which compensations ran) so that any process
can pick it up where another left off; what to do next is decided in `orders/saga.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, TypedDict

from eventstore.api import Aggregate, UnknownEventError, applies
from orders import events


class OrderError(Exception):
    """Base of the orders service's refusals."""


class OrderNotFound(OrderError):
    """No order has this id."""


class IllegalTransition(OrderError):
    """The command is not a legal transition from the order's (or saga's) current state."""


class Order(Aggregate):
    """One customer order and its status (see TRANSITIONS)."""

    aggregate_type = events.ORDER
    # 2: the state keeps the payment token's vault reference and description, not the token.
    snapshot_version = 2

    PENDING = "pending"
    INVENTORY_RESERVED = "inventory_reserved"
    PAYMENT_PROCESSED = "payment_processed"
    COMPLETED = "completed"
    INVENTORY_FAILED = "inventory_failed"
    PAYMENT_FAILED = "payment_failed"
    INVENTORY_RELEASED = "inventory_released"
    CANCELLED = "cancelled"
    CANCELLING = "cancelling"
    REFUNDED = "refunded"
    STATUSES = (
        PENDING,
        INVENTORY_RESERVED,
        PAYMENT_PROCESSED,
        COMPLETED,
        INVENTORY_FAILED,
        PAYMENT_FAILED,
        INVENTORY_RELEASED,
        CANCELLED,
        CANCELLING,
        REFUNDED,
    )
    FINAL_STATUSES = (COMPLETED, CANCELLED, REFUNDED)
    # Where a cancellation request leaves the order: one in fulfilment keeps its status (its
    # saga stops at the next step and compensates); a completed one is refunded and its stock
    # returned by the cancellation saga. From any other status it is refused.
    CANCELLABLE = {PENDING: PENDING, INVENTORY_RESERVED: INVENTORY_RESERVED, COMPLETED: CANCELLING}

    # (status before, event) -> status after: every legal transition, and only those.
    # OrderConfirmed keeps the status (a confirmed order is still payment_processed) but may
    # happen once, and OrderCompleted only after it.
    TRANSITIONS = {
        ("", events.ORDER_CREATED): PENDING,
        (PENDING, events.ORDER_INVENTORY_RESERVED): INVENTORY_RESERVED,
        (PENDING, events.ORDER_INVENTORY_FAILED): INVENTORY_FAILED,
        (INVENTORY_RESERVED, events.ORDER_PAYMENT_PROCESSED): PAYMENT_PROCESSED,
        (INVENTORY_RESERVED, events.ORDER_PAYMENT_FAILED): PAYMENT_FAILED,
        (PAYMENT_FAILED, events.ORDER_INVENTORY_RELEASED): INVENTORY_RELEASED,
        (PAYMENT_PROCESSED, events.ORDER_CONFIRMED): PAYMENT_PROCESSED,
        (PAYMENT_PROCESSED, events.ORDER_COMPLETED): COMPLETED,
        (INVENTORY_FAILED, events.ORDER_CANCELLED): CANCELLED,
        (INVENTORY_RELEASED, events.ORDER_CANCELLED): CANCELLED,
        # Cancelled on request while in fulfilment, before the payment.
        (PENDING, events.ORDER_CANCELLED): CANCELLED,
        (INVENTORY_RESERVED, events.ORDER_CANCELLED): CANCELLED,
        **{
            (before, events.ORDER_CANCELLATION_REQUESTED): after
            for before, after in CANCELLABLE.items()
        },
        (CANCELLING, events.ORDER_REFUNDED): REFUNDED,
    }

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = ""
        self.customer_id = ""
        self.items: list[dict[str, Any]] = []
        self.payment_method: dict[str, str] = {}
        self.payment_token_ref: str | None = None
        self.idempotency_key = ""
        self.total_amount: str | None = None
        self.transaction_id = ""
        self.confirmed = False
        self.failure_reason = ""
        self.cancel_requested = False
        self.cancellation_reason = ""

    @property
    def exists(self) -> bool:
        """Whether the order has been created."""
        return bool(self.status)

    def _transition(self, event_type: str, payload: dict[str, Any], **kwargs: Any) -> None:
        """Record `event_type` if it is a legal transition from the current status."""
        allowed = (self.status, event_type) in self.TRANSITIONS
        if event_type == events.ORDER_CONFIRMED and self.confirmed:
            allowed = False
        if event_type == events.ORDER_COMPLETED and not self.confirmed:
            allowed = False
        # A request is taken once, and once more when the order it was made for completes
        # (the payment was the pivot: the cancellation saga takes over from there).
        if event_type == events.ORDER_CANCELLATION_REQUESTED and self.cancel_requested:
            allowed = allowed and self.status == self.COMPLETED
        # Only a requested cancellation ends an order in fulfilment without a failure.
        if event_type == events.ORDER_CANCELLED and self.status in (
            self.PENDING,
            self.INVENTORY_RESERVED,
        ):
            allowed = allowed and self.cancel_requested
        if not allowed:
            current = self.status or "not created"
            raise IllegalTransition(f"Order {self.id!r} is {current}: {event_type} is not allowed")
        self.record(event_type, {"order_id": self.id, **payload}, **kwargs)

    # --- commands ------------------------------------------------------------------------------

    def create(
        self,
        *,
        customer_id: str,
        items: list[dict[str, Any]],
        payment_method: dict[str, str],
        payment_token_ref: str | None,
        idempotency_key: str = "",
        event_id: uuid.UUID | None = None,
    ) -> None:
        """Place the order: pending until the saga reserves its stock. The payment token is
        in the vault (`payment_token_ref`); the log holds only its description."""
        self._transition(
            events.ORDER_CREATED,
            {
                "customer_id": customer_id,
                "items": [
                    {"product_id": item["product_id"], "quantity": item["quantity"]}
                    for item in items
                ],
                "payment_method": payment_method,
                "payment_token_ref": payment_token_ref,
                "idempotency_key": idempotency_key,
            },
            event_id=event_id,
        )

    def inventory_reserved(self, *, lines: list[dict[str, Any]], total_amount: str) -> None:
        """Stock is held: the items now carry inventory's unit prices."""
        priced = {line["product_id"]: line["unit_price"] for line in lines}
        items = [{**item, "unit_price": priced.get(item["product_id"])} for item in self.items]
        self._transition(
            events.ORDER_INVENTORY_RESERVED, {"items": items, "total_amount": total_amount}
        )

    def inventory_failed(self, *, reason: str) -> None:
        """Stock could not be reserved (shortage, unknown product or no answer in time)."""
        self._transition(events.ORDER_INVENTORY_FAILED, {"reason": reason})

    def payment_processed(self, *, transaction_id: str, amount: str) -> None:
        """The customer was charged."""
        self._transition(
            events.ORDER_PAYMENT_PROCESSED, {"transaction_id": transaction_id, "amount": amount}
        )

    def payment_failed(self, *, reason: str) -> None:
        """The charge was declined or not answered in time."""
        self._transition(events.ORDER_PAYMENT_FAILED, {"reason": reason})

    def inventory_released(self) -> None:
        """The held stock went back to available after a failed payment."""
        self._transition(events.ORDER_INVENTORY_RELEASED, {})

    def _outcome(self) -> dict[str, Any]:
        """What an outcome event tells whoever informs the customer: who, what, how much."""
        return {
            "customer_id": self.customer_id,
            "items": [
                {
                    "product_id": item["product_id"],
                    "quantity": item["quantity"],
                    "unit_price": item.get("unit_price"),
                }
                for item in self.items
            ],
            "total_amount": self.total_amount,
        }

    def confirm(self) -> None:
        """Paid and confirmed to the customer (once)."""
        self._transition(events.ORDER_CONFIRMED, self._outcome())

    def complete(self) -> None:
        """Fulfilled: the reserved stock is now sold."""
        self._transition(events.ORDER_COMPLETED, self._outcome())

    def cancel(self, *, reason: str) -> None:
        """Given up after a failure, once every compensation has run (items and total as far
        as inventory priced them: none before a reservation)."""
        self._transition(events.ORDER_CANCELLED, {**self._outcome(), "reason": reason})

    def request_cancellation(
        self, *, reason: str = "", requested_by: str = "", event_id: uuid.UUID | None = None
    ) -> None:
        """Ask to cancel (see CANCELLABLE); IllegalTransition from any other status, and for a
        second request."""
        after = self.CANCELLABLE.get(self.status, self.status)
        self._transition(
            events.ORDER_CANCELLATION_REQUESTED,
            {
                "customer_id": self.customer_id,
                "reason": reason,
                "requested_by": requested_by,
                "status": after,
            },
            event_id=event_id,
        )

    def refunded(self) -> None:
        """Cancelled after completion: the payment is refunded and the units back in stock."""
        self._transition(
            events.ORDER_REFUNDED, {**self._outcome(), "reason": self.cancellation_reason}
        )

    # --- appliers ------------------------------------------------------------------------------

    def _apply(self, event_type: str, payload: dict[str, Any]) -> None:
        # Every event of the order moves its status along TRANSITIONS, on record and on replay
        # alike; each applier below keeps only what else its event says.
        super()._apply(event_type, payload)
        self.status = self.TRANSITIONS[(self.status, event_type)]

    @applies(events.ORDER_CREATED)
    def _created(self, payload: dict[str, Any]) -> None:
        self.customer_id = payload["customer_id"]
        self.items = [{**item, "unit_price": None} for item in payload["items"]]
        self.payment_method = payload["payment_method"]
        self.payment_token_ref = payload["payment_token_ref"]
        self.idempotency_key = payload.get("idempotency_key", "")

    @applies(events.ORDER_INVENTORY_RESERVED)
    def _inventory_reserved(self, payload: dict[str, Any]) -> None:
        self.items = payload["items"]
        self.total_amount = payload["total_amount"]

    @applies(events.ORDER_INVENTORY_FAILED)
    def _inventory_failed(self, payload: dict[str, Any]) -> None:
        self.failure_reason = payload["reason"]

    @applies(events.ORDER_PAYMENT_PROCESSED)
    def _payment_processed(self, payload: dict[str, Any]) -> None:
        self.transaction_id = payload["transaction_id"]

    @applies(events.ORDER_PAYMENT_FAILED)
    def _payment_failed(self, payload: dict[str, Any]) -> None:
        self.failure_reason = payload["reason"]

    @applies(events.ORDER_INVENTORY_RELEASED)
    def _inventory_released(self, payload: dict[str, Any]) -> None:
        """Only the status moves."""

    @applies(events.ORDER_CONFIRMED)
    def _confirmed(self, payload: dict[str, Any]) -> None:
        self.confirmed = True

    @applies(events.ORDER_COMPLETED)
    def _completed(self, payload: dict[str, Any]) -> None:
        """Only the status moves."""

    @applies(events.ORDER_CANCELLED)
    def _cancelled(self, payload: dict[str, Any]) -> None:
        """Only the status moves."""

    @applies(events.ORDER_CANCELLATION_REQUESTED)
    def _cancellation_requested(self, payload: dict[str, Any]) -> None:
        self.cancel_requested = True
        self.cancellation_reason = payload["reason"]

    @applies(events.ORDER_REFUNDED)
    def _refunded(self, payload: dict[str, Any]) -> None:
        """Only the status moves."""


def total_of(lines: list[dict[str, Any]]) -> str:
    """The sum of quantity x unit price over priced lines, as a two-place decimal string."""
    total = sum((Decimal(line["unit_price"]) * line["quantity"] for line in lines), Decimal(0))
    return str(total.quantize(Decimal("0.01")))


@dataclass(frozen=True)
class Waiting:
    """A reply a saga waits for: to its step's request, or to a compensation's, by the number
    of that request (`attempt`: 0 for a step whose requests are not numbered)."""

    STEP: ClassVar[str] = "step"
    COMPENSATION: ClassVar[str] = "compensation"

    kind: str
    name: str
    attempt: int = 0


class SagaLogEntry(TypedDict, total=False):
    """Where one step or compensation of a saga stands: `status` (one of Saga.ENTRY_STATUSES)
    and `error` ("" unless it failed); a numbered request (a compensation's, a retried step's)
    adds `attempt`, the number of the last one sent, and `tries`, those sent since it was last
    given up on."""

    status: str
    error: str
    attempt: int
    tries: int


@dataclass(frozen=True)
class LogChange:
    """What one event did to a saga's log: the entry `name` of its steps (`log` Waiting.STEP)
    or of its compensations (Waiting.COMPENSATION) is now `entry`."""

    log: str
    name: str
    entry: SagaLogEntry


class Saga(Aggregate):
    """The progress of one order's fulfilment: steps done, compensations run, and what it is
    waiting for (its `log`). One saga per order; its id is the order id."""

    aggregate_type = events.SAGA
    # 2: the state keeps its log (state, current step, steps, compensations) as one SagaLog.
    snapshot_version = 2

    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    STATES = (RUNNING, COMPENSATING, COMPLETED, COMPENSATED, COMPENSATION_FAILED)

    # Step and compensation statuses. PENDING: announced by SagaStarted, not begun yet (only
    # the read model lists those).
    PENDING = "pending"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ENTRY_STATUSES = (PENDING, STARTED, SUCCEEDED, FAILED)

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.log = SagaLog()
        self.definition_version = 0
        self.order_id = ""
        self.failure_reason = ""
        self.pending_compensations: list[str] = []

    @property
    def state(self) -> str:
        """One of STATES ("" before the saga starts)."""
        return self.log.state

    @property
    def current_step(self) -> str:
        """The step that started, succeeded or failed last ("" once the saga completed)."""
        return self.log.current_step

    @property
    def steps(self) -> dict[str, SagaLogEntry]:
        """Each step begun, by name, in the order they began."""
        return self.log.steps

    @property
    def compensations(self) -> dict[str, SagaLogEntry]:
        """Each compensation requested, by name, in the order they were first requested."""
        return self.log.compensations

    @property
    def exists(self) -> bool:
        """Whether the saga has started."""
        return bool(self.state)

    @property
    def succeeded_steps(self) -> list[str]:
        """The steps that succeeded, in the order they ran."""
        return [name for name, step in self.steps.items() if step["status"] == self.SUCCEEDED]

    @property
    def compensations_in_flight(self) -> list[str]:
        """Compensations requested and not yet answered, oldest first."""
        return [
            name for name, entry in self.compensations.items() if entry["status"] == self.STARTED
        ]

    def waiting_for(self) -> Waiting | None:
        """The reply the saga waits for longest (see `SagaLog.waiting_for`); None for none."""
        return self.log.waiting_for()

    def _require(self, *states: str, doing: str) -> None:
        if self.state not in states:
            current = self.state or "not started"
            raise IllegalTransition(f"Saga {self.id!r} is {current}: cannot {doing}")

    # --- commands ------------------------------------------------------------------------------

    def start(
        self,
        *,
        order_id: str,
        definition_version: int,
        steps: list[str],
    ) -> None:
        """Begin fulfilling an order with the given definition (its version and step names)."""
        self._require("", doing="start")
        self.record(
            events.SAGA_STARTED,
            {
                "saga_id": self.id,
                "order_id": order_id,
                "definition_version": definition_version,
                "steps": steps,
            },
        )

    def request_step(
        self, *, step: str, event_type: str, payload: dict[str, Any], retried: bool = False
    ) -> None:
        """Start a step by sending its request event to the service that does it; a `retried`
        step's request names its attempt, and may be sent again (also from a stall)."""
        if not retried:
            self._require(self.RUNNING, doing=f"start {step}")
            self.record(event_type, {**payload, "step": step})
            return
        self._require(self.RUNNING, self.COMPENSATION_FAILED, doing=f"start {step}")
        attempt = self.steps.get(step, {}).get("attempt", 0) + 1
        self.record(event_type, {**payload, "step": step, "attempt": attempt})

    def step_stalled(self, *, step: str, error: str) -> None:
        """A retried step went unanswered too often: staff must check (see `retry_sagas`)."""
        self._require(self.RUNNING, doing=f"give up {step}")
        self.record(events.SAGA_STEP_STALLED, {"saga_id": self.id, "step": step, "error": error})

    def step_succeeded(self, *, step: str) -> None:
        """A step is done (a service replied, or a local step ran)."""
        self._require(self.RUNNING, doing=f"finish {step}")
        self.record(events.SAGA_STEP_SUCCEEDED, {"saga_id": self.id, "step": step, "error": ""})

    def step_failed(self, *, step: str, error: str, reason: str, compensations: list[str]) -> None:
        """A step failed: the saga turns to running `compensations`, in that order."""
        self._require(self.RUNNING, doing=f"fail {step}")
        self.record(
            events.SAGA_STEP_FAILED,
            {
                "saga_id": self.id,
                "step": step,
                "error": error,
                "reason": reason,
                "compensations": compensations,
            },
        )

    def request_compensation(
        self, *, compensation: str, event_type: str, payload: dict[str, Any]
    ) -> None:
        """Send (or send again) a compensation's request event."""
        previous = self.compensations.get(compensation, {})
        self.record(
            event_type,
            {
                **payload,
                "compensation": compensation,
                "attempt": previous.get("attempt", 0) + 1,
            },
        )

    def compensation_succeeded(self, *, compensation: str) -> None:
        """A compensation's service confirmed it."""
        self.record(
            events.SAGA_COMPENSATION_SUCCEEDED,
            {"saga_id": self.id, "compensation": compensation, "error": ""},
        )

    def compensation_failed(self, *, compensation: str, error: str) -> None:
        """A compensation went unanswered too often: staff must check (see `retry_sagas`)."""
        self.record(
            events.SAGA_COMPENSATION_FAILED,
            {"saga_id": self.id, "compensation": compensation, "error": error},
        )

    def completed(self) -> None:
        """Every step succeeded."""
        self._require(self.RUNNING, doing="complete")
        self.record(events.SAGA_COMPLETED, {"saga_id": self.id})

    def compensated(self) -> None:
        """Every compensation needed so far has succeeded."""
        self._require(self.COMPENSATING, doing="finish compensating")
        self.record(events.SAGA_COMPENSATED, {"saga_id": self.id})

    # --- appliers ------------------------------------------------------------------------------

    def _apply(self, event_type: str, payload: dict[str, Any]) -> None:
        # Every event moves the log, by the rule the read model follows too (SagaLog.apply);
        # what else one of the saga's own events says, its applier below keeps. The stream's
        # other events are the requests the saga sends, whichever service they go to: each
        # names the step, or the compensation, it starts.
        own = event_type in SagaLog.EVENT_TYPES
        if not own and SagaLog.requested(payload) is None:
            raise UnknownEventError(f"{type(self).__name__} cannot apply {event_type}")
        change = self.log.apply(event_type, payload)
        if event_type in self._appliers:
            super()._apply(event_type, payload)
        elif not own and change is not None and change.log == Waiting.COMPENSATION:
            # Sent: no longer among the compensations still to send.
            pending = self.pending_compensations
            self.pending_compensations = [name for name in pending if name != change.name]

    @applies(events.SAGA_STARTED)
    def _started(self, payload: dict[str, Any]) -> None:
        self.definition_version = payload["definition_version"]
        self.order_id = payload["order_id"]

    @applies(events.SAGA_STEP_FAILED)
    def _step_failed(self, payload: dict[str, Any]) -> None:
        self.failure_reason = payload["reason"]
        self.pending_compensations = list(payload["compensations"])

    # --- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "log": asdict(self.log)}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore({**state, "log": SagaLog(**state["log"])})


class Cancellation(Saga):
    """The progress of one completed order's cancellation (refund, stock returned): the same
    bookkeeping as the fulfilment's, on its own stream. Its steps are never undone: one given
    up on parks it in compensation_failed. Its id is the order id."""

    aggregate_type = events.CANCELLATION


@dataclass
class SagaLog:
    """A saga's bookkeeping as its events build it: its state, its current step, and where each
    step and compensation begun stands (by name, in the order they began). The Saga aggregate
    keeps one, and the saga read model (orders/projections.py) one per row, each entry with its
    name and times: both apply every event with `apply`, so they cannot tell different stories.
    """

    state: str = ""
    current_step: str = ""
    steps: dict[str, SagaLogEntry] = field(default_factory=dict)
    compensations: dict[str, SagaLogEntry] = field(default_factory=dict)

    # The state after each event that sets it whatever came before.
    STATE_AFTER: ClassVar[Mapping[str, str]] = {
        events.SAGA_STARTED: Saga.RUNNING,
        events.SAGA_STEP_FAILED: Saga.COMPENSATING,
        events.SAGA_COMPENSATION_FAILED: Saga.COMPENSATION_FAILED,
        # A retried step given up on parks the saga like a compensation given up on.
        events.SAGA_STEP_STALLED: Saga.COMPENSATION_FAILED,
        events.SAGA_COMPLETED: Saga.COMPLETED,
        events.SAGA_COMPENSATED: Saga.COMPENSATED,
    }
    # The saga's own events; the others on its stream are the requests it sends.
    EVENT_TYPES: ClassVar[frozenset[str]] = frozenset(
        {*STATE_AFTER, events.SAGA_STEP_SUCCEEDED, events.SAGA_COMPENSATION_SUCCEEDED}
    )

    @staticmethod
    def requested(payload: Mapping[str, Any]) -> tuple[str, str] | None:
        """What a request starts, as (Waiting.STEP or Waiting.COMPENSATION, name): the
        compensation and attempt, or the step, it names (None: it names neither, e.g. one
        appended by other means than the saga)."""
        if "compensation" in payload and "attempt" in payload:
            return Waiting.COMPENSATION, payload["compensation"]
        if "step" in payload:
            return Waiting.STEP, payload["step"]
        return None

    def apply(self, event_type: str, payload: Mapping[str, Any]) -> LogChange | None:
        """Move the log on by one of the saga's events; the entry it changed (None: none)."""
        change = self._change(event_type, payload)
        if change is not None:
            entries = self.steps if change.log == Waiting.STEP else self.compensations
            entries[change.name] = change.entry
            if change.log == Waiting.STEP and event_type != events.SAGA_STEP_STALLED:
                self.current_step = change.name
        elif event_type == events.SAGA_COMPLETED:
            self.current_step = ""
        self.state = self._state_after(event_type, change)
        return change

    def waiting_for(self) -> Waiting | None:
        """The reply the saga waits for longest: its current step's while it runs and the step
        has started, else its oldest compensation in flight; None when it waits for nothing."""
        current = self.steps.get(self.current_step, {})
        if self.state == Saga.RUNNING and current.get("status") == Saga.STARTED:
            return Waiting(Waiting.STEP, self.current_step, current.get("attempt", 0))
        for name, entry in self.compensations.items():
            if entry["status"] == Saga.STARTED:
                return Waiting(Waiting.COMPENSATION, name, entry["attempt"])
        return None

    def _change(self, event_type: str, payload: Mapping[str, Any]) -> LogChange | None:
        step, compensation = Waiting.STEP, Waiting.COMPENSATION
        if event_type == events.SAGA_STEP_SUCCEEDED:
            return LogChange(step, payload["step"], {"status": Saga.SUCCEEDED, "error": ""})
        if event_type == events.SAGA_STEP_FAILED:
            failed: SagaLogEntry = {"status": Saga.FAILED, "error": payload["error"]}
            return LogChange(step, payload["step"], failed)
        if event_type == events.SAGA_STEP_STALLED:
            name = payload["step"]
            stalled = {**self.steps[name], "status": Saga.FAILED, "error": payload["error"]}
            return LogChange(step, name, stalled)
        if event_type == events.SAGA_COMPENSATION_SUCCEEDED:
            name = payload["compensation"]
            confirmed = {**self.compensations[name], "status": Saga.SUCCEEDED, "error": ""}
            return LogChange(compensation, name, confirmed)
        if event_type == events.SAGA_COMPENSATION_FAILED:
            name = payload["compensation"]
            given_up = {
                **self.compensations[name],
                "status": Saga.FAILED,
                "error": payload["error"],
            }
            return LogChange(compensation, name, given_up)
        requested = None if event_type in self.EVENT_TYPES else self.requested(payload)
        if requested is None:
            return None
        log, name = requested
        started: SagaLogEntry = {"status": Saga.STARTED, "error": ""}
        if "attempt" in payload:
            # Counted since the last give-up, so a staff retry gets a fresh allowance.
            before = (self.steps if log == step else self.compensations).get(name, {})
            tries = before.get("tries", 0) if before.get("status") != Saga.FAILED else 0
            started.update(attempt=payload["attempt"], tries=tries + 1)
        return LogChange(log, name, started)

    def _state_after(self, event_type: str, change: LogChange | None) -> str:
        """The state after `event_type` (the log's entries already moved by `change`).

        A compensation requested or confirmed reopens a finished saga to undo a late success,
        and leaves compensation_failed once nothing is given up on. A running saga keeps
        running: undoing a reply it never asked for does not stop its own steps. A stalled
        step sent again runs again.
        """
        if event_type in self.STATE_AFTER:
            return self.STATE_AFTER[event_type]
        if change is None:
            return self.state
        if change.log == Waiting.STEP:
            restarted = change.entry["status"] == Saga.STARTED
            if restarted and self.state == Saga.COMPENSATION_FAILED:
                return Saga.RUNNING
            return self.state
        if self.state == Saga.COMPENSATION_FAILED and Saga.FAILED not in [
            entry["status"] for entry in self.compensations.values()
        ]:
            return Saga.COMPENSATING
        if self.state == Saga.COMPENSATED:
            return Saga.COMPENSATING
        return self.state
