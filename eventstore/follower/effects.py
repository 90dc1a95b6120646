"""Effect subscribers: reactions that call the outside world (a payment provider, a mail server)
with no database transaction open, at least once, and record each outcome once.

The pattern, for any reaction that calls out:
1. The intent is an event (PaymentRequested, NotificationSent, ...), already committed.
2. The subscriber's checkpointed `handle` only records that a call is owed (an `Effect` row),
   in the transaction that advances its checkpoint: nothing waits on a provider there.
3. After that commit, `perform` runs with no transaction open on the connection. It calls the
   provider with an idempotency key derived from the intent and records the outcome as an event
   appended with an expected version, so a repeat of the call finds the outcome recorded (or
   the provider's first answer) and records nothing twice.
4. A call that raises is retried with exponential backoff (EVENTSTORE_EFFECT_BACKOFF seconds,
   doubling, or later when the error's `retry_after` says so) until EVENTSTORE_EFFECT_ATTEMPTS
   calls were made, then parked for staff
   (`manage.py retry_effects`). A worker that dies mid-call leaves its claim to expire after
   EVENTSTORE_EFFECT_LEASE seconds; the next pass then calls again with the same key.

Claims are fenced: a worker finishes an effect only while the claim it took is still the current
one, so a worker whose lease ran out cannot overwrite what its successor recorded.

A call its intent's requester no longer wants is withdrawn (`withdraw_calls`), by an event the
subscriber names (`withdraws`), in the transaction that appends that event: it is never made
after that. A call already attempted without an answer may have been made: once any call in
flight has ended (its lease) it is reconciled instead (`reconcile`: ask the provider by the
idempotency key, record what it answers), retried with backoff until that succeeds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Case, DateTimeField, F, Value, When
from django.utils import timezone

from eventstore.follower.subscriptions import Subscriber, get_subscribers
from eventstore.models import Effect, Event
from eventstore.observability import tracing
from eventstore.observability.logs import event_log_context
from eventstore.recorders import recorder
from eventstore.records import RecordedEvent

logger = logging.getLogger(__name__)

PENDING, DONE, PARKED = Effect.Status.PENDING, Effect.Status.DONE, Effect.Status.PARKED
WITHDRAWN = Effect.Status.WITHDRAWN


class TransactionOpen(RuntimeError):
    """The outside world was about to be called inside a database transaction."""


def require_no_transaction(what: str) -> None:
    """Raise TransactionOpen when a transaction is open on the default connection, so no row,
    table or transaction-level lock can wait on `what` (a test case's own wrapping transaction
    does not count, as for `atomic(durable=True)`)."""
    connection = transaction.get_connection()
    if connection.in_atomic_block and not all(
        getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    ):
        raise TransactionOpen(f"{what} must not run inside a database transaction")


class EffectSubscriber(Subscriber):
    """A subscriber whose reaction calls the outside world. Subclasses implement `perform`.

    Its calls are owed in the transaction that appends their intents (`owe_calls`), once per
    event; `perform` runs later with no transaction open, once the call is claimed. Its
    checkpoint is only a safety net, followed by the worker (`process_events`, beat's sweep)
    and never woken by a commit: it owes what an append did not (intents appended before calls
    were owed at append), each once.
    Errors of a type in `permanent_errors` park the effect at once: calling again cannot help.
    """

    permanent_errors: ClassVar[tuple[type[Exception], ...]] = ()
    wakes_on_commit = False

    def owes(self, event: RecordedEvent) -> bool:
        """Whether `event` is an intent this subscriber owes a call for (default: an event of
        one of its types)."""
        return self.wants((event.event_type,))

    def withdraws(self, event: RecordedEvent) -> Withdrawal | None:
        """The calls an appended `event` withdraws, if any (default: none): see `Withdrawal`."""
        return None

    def reconcile(self, event: RecordedEvent, *, attempt: int) -> None:
        """For a withdrawn call that was attempted without an answer: find out from the
        provider, without calling again, whether it was made, and record its outcome; safe to
        call again (default: nothing to find out)."""

    def handle(self, event: RecordedEvent) -> None:
        self.handle_batch([event])

    def handle_batch(self, events: list[RecordedEvent]) -> None:
        owe_calls([(self, event) for event in events if self.owes(event)])

    def perform(self, event: RecordedEvent, *, attempt: int) -> None:
        """Call out for the intent `event` and record the outcome; safe to call again.
        `attempt` counts the calls made for it (1 for the first; again 1 after staff retried)."""
        raise NotImplementedError

    def failed(self, event: RecordedEvent, *, error: Exception, attempt: int, parked: bool) -> None:
        """Called after a failed call, with no transaction open (e.g. to record the failure
        as an event). `parked`: no further call will be made without staff."""

    def after_catch_up(self, handled: int) -> int:
        return run_due(self)


@dataclass(frozen=True)
class Withdrawal:
    """The calls an event withdraws: those its subscriber owes for intents of `intent_types`
    recorded before it in its correlation, not made yet; `reason` is kept on each."""

    intent_types: frozenset[str]
    reason: str


def withdraw_calls(
    subscriber_name: str,
    *,
    correlation_id: str,
    intent_types: Iterable[str],
    before: int,
    reason: str,
) -> int:
    """Withdraw the subscriber's pending or parked calls owed for the correlation's intents of
    `intent_types` recorded before position `before`: one statement, in the caller's
    transaction; how many.

    A call never attempted is settled. One attempted (the provider may have acted) is left due
    for `reconcile`: at once, or once the lease of a call in flight ends. Either way its claim
    is cleared, so a worker making it now cannot record its finish (its outcome event, if the
    provider answers, still is); the withdrawal is recorded whatever the provider said."""
    now = timezone.now()
    intents = Event.objects.filter(
        correlation_id=correlation_id, event_type__in=list(intent_types), position__lt=before
    ).values("event_id")
    return Effect.objects.filter(
        subscriber=subscriber_name, status__in=[PENDING, PARKED], event_id__in=intents
    ).update(
        status=WITHDRAWN,
        due_at=Case(
            When(attempts=0, then=Value(None)),
            When(claim__isnull=True, then=Value(now)),
            default=F("due_at"),
            output_field=DateTimeField(),
        ),
        claim=None,
        withdrawn_at=now,
        withdrawn_reason=reason,
        updated_at=now,
    )


def withdraw_on_append(sender: object = None, events: Iterable[RecordedEvent] = (), **kwargs):
    """`events_recorded` receiver: withdraw, in the appending transaction, the calls each
    appended event withdraws (`EffectSubscriber.withdraws`)."""
    subscribers = effect_subscribers(get_subscribers())
    for event in events:
        for subscriber in subscribers:
            withdrawal = subscriber.withdraws(event)
            if withdrawal is not None and event.correlation_id:
                withdraw_calls(
                    subscriber.name,
                    correlation_id=event.correlation_id,
                    intent_types=withdrawal.intent_types,
                    before=event.position,
                    reason=withdrawal.reason,
                )


def effect_subscribers(subscribers: Iterable[Subscriber]) -> list[EffectSubscriber]:
    """The effect subscribers among `subscribers`."""
    return [subscriber for subscriber in subscribers if isinstance(subscriber, EffectSubscriber)]


def owe_calls(owed: list[tuple[EffectSubscriber, RecordedEvent]]) -> None:
    """Record, in the transaction that appends (or handles) the events, that each subscriber
    owes a call for its event, once however often that is done: one statement. The calls are
    due at once; whoever makes them claims them first (`run_due`)."""
    if owed:
        recorder().owe_effects(
            [
                (subscriber.name, event.event_id, event.position, event.event_type)
                for subscriber, event in owed
            ]
        )


def owing(
    subscribers: Iterable[Subscriber], events: Iterable[RecordedEvent]
) -> list[EffectSubscriber]:
    """The effect subscribers among `subscribers` that owe a call for one of `events`."""
    events = list(events)
    return [s for s in effect_subscribers(subscribers) if any(s.owes(e) for e in events)]


@dataclass(frozen=True)
class RequestProgress:
    """How far the work a request event asked for has come: when the request was recorded,
    whether a reply to it was, and when the first call owed for it began (None: none began,
    or the request owes no call: its handler replies in the transaction that reads it)."""

    requested_at: datetime
    replied: bool
    started_at: datetime | None


def requests_progress(
    requests: Sequence[tuple[str, str, Iterable[str]]],
) -> list[RequestProgress | None]:
    """For each (correlation id, request type, reply types): the progress of the correlation's
    last event of that request type, replies being events of the reply types recorded in the
    correlation after it; None when none was recorded. Lock-free, a few index seeks per
    request in one statement per hundred (what a process manager asks before it gives up
    waiting)."""
    found = recorder().requests_progress(
        [(correlation, request, sorted(replies)) for correlation, request, replies in requests]
    )
    return [None if row is None else RequestProgress(*row) for row in found]


@dataclass(frozen=True)
class Claim:
    """One worker's turn at one effect: `token` fences its finish; `event` is the intent;
    `withdrawn`: the call is not to be made, only reconciled."""

    effect_id: int
    event: RecordedEvent
    attempt: int
    token: uuid.UUID
    withdrawn: bool = False

    @property
    def event_id(self) -> uuid.UUID:
        return self.event.event_id


def claim_due(subscriber_name: str, *, limit: int = 1) -> list[Claim]:
    """Take the subscriber's oldest due pending effects for one call each (at most `limit`),
    in the order owed.

    The claim pushes `due_at` out by the lease, so no other worker takes them meanwhile, and is
    committed before the calls: nothing stays locked while the outside world answers.
    """
    require_no_transaction("Claiming a call to the outside world")
    now = timezone.now()
    lease = timedelta(seconds=float(settings.EVENTSTORE_EFFECT_LEASE))
    token = uuid.uuid4()
    claimed = recorder().claim_effects(subscriber_name, now, now + lease, token, limit)
    return [
        Claim(effect_id, event, attempt, token, withdrawn=status == WITHDRAWN)
        for effect_id, attempt, status, event in claimed
    ]


def claim_next(subscriber_name: str) -> Claim | None:
    """Take the oldest due pending effect of the subscriber for one call, or None (see
    `claim_due`)."""
    claims = claim_due(subscriber_name)
    return claims[0] if claims else None


def backoff(attempt: int) -> timedelta:
    """How long to wait after the `attempt`-th failed call: the base, doubling, at most the cap."""
    base = float(settings.EVENTSTORE_EFFECT_BACKOFF)
    cap = float(settings.EVENTSTORE_EFFECT_BACKOFF_MAX)
    return timedelta(seconds=min(cap, base * 2 ** (attempt - 1)))


def _finish(
    claim: Claim, status: str, last_error: str = "", due_at=None, *, settle: bool = False
) -> bool:
    """Record how the claimed call went, unless another worker has claimed it since."""
    return recorder().finish_effect(
        claim.effect_id,
        claim.token,
        status=status,
        last_error=last_error,
        due_at=due_at,
        now=timezone.now(),
        settle=settle,
    )


def perform_claimed(subscriber: EffectSubscriber, claim: Claim) -> str:
    """Make the claimed call (or reconcile a withdrawn one) and record how it went: the
    effect's new status. What it logs names the event (its correlation, its request id), as a
    handler's records do."""
    with event_log_context(subscriber.name, claim.event):
        if claim.withdrawn:
            return _reconcile_claimed(subscriber, claim)
        return _perform_claimed(subscriber, claim)


def _perform_claimed(subscriber: EffectSubscriber, claim: Claim) -> str:
    event = claim.event
    try:
        with tracing.event_span(
            f"perform {subscriber.name}",
            event,
            **{"eventstore.subscriber": subscriber.name, "eventstore.attempt": claim.attempt},
        ):
            subscriber.perform(event, attempt=claim.attempt)
    except Exception as error:
        limit = int(settings.EVENTSTORE_EFFECT_ATTEMPTS)
        parked = isinstance(error, subscriber.permanent_errors) or claim.attempt >= limit
        message = f"{type(error).__name__}: {error}"
        log = logger.error if parked else logger.warning
        log(
            "%s: call %d for event #%s (%s) failed%s: %s",
            subscriber.name,
            claim.attempt,
            event.position,
            event.event_type,
            ", parked" if parked else ", will retry",
            message,
        )
        try:
            subscriber.failed(event, error=error, attempt=claim.attempt, parked=parked)
        except Exception:
            logger.exception("%s: recording the failed call failed", subscriber.name)
        if parked:
            _finish(claim, PARKED, message)
            return PARKED
        # A provider that said when to come back (an error's `retry_after`) is not asked sooner.
        asked = getattr(error, "retry_after", None)
        wait = max(backoff(claim.attempt), asked if isinstance(asked, timedelta) else timedelta(0))
        _finish(claim, PENDING, message, due_at=timezone.now() + wait)
        return PENDING
    _finish(claim, DONE)
    return DONE


def _reconcile_claimed(subscriber: EffectSubscriber, claim: Claim) -> str:
    """Reconcile the claimed withdrawn call; it stays withdrawn, due again after a backoff
    while the provider cannot say (never parked: no call is ever made for it again), settled
    with its error when asking again cannot help (`permanent_errors`)."""
    event = claim.event
    try:
        with tracing.event_span(
            f"reconcile {subscriber.name}",
            event,
            **{"eventstore.subscriber": subscriber.name, "eventstore.attempt": claim.attempt},
        ):
            subscriber.reconcile(event, attempt=claim.attempt)
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        settled = isinstance(error, subscriber.permanent_errors)
        log = logger.error if settled else logger.warning
        log(
            "%s: reconciling the withdrawn call for event #%s (%s) failed%s: %s",
            subscriber.name,
            event.position,
            event.event_type,
            "" if settled else ", will retry",
            message,
        )
        due_at = None if settled else timezone.now() + backoff(claim.attempt)
        _finish(claim, WITHDRAWN, message, due_at=due_at, settle=settled)
        return WITHDRAWN
    _finish(claim, WITHDRAWN, settle=True)
    return WITHDRAWN


def due_calls(subscriber_name: str, now, *, limit: int) -> int:
    """How many calls of the subscriber are due at `now` (at most `limit`): pending ones, and
    withdrawn ones to reconcile."""
    due = Effect.objects.filter(
        subscriber=subscriber_name, status__in=[PENDING, WITHDRAWN], due_at__lte=now
    )
    return len(due.values_list("pk", flat=True)[:limit])


# Calls one pass makes at once when several are due: one slow provider call does not hold up
# the calls owed to other orders (a request thread that handled several orders' events makes
# all their calls). Calls of one order (one correlation id) are still made in order, one after
# the other: a customer's "confirmed" email goes out before the "complete" one.
PARALLEL_CALLS = 8


def run_due(subscriber: EffectSubscriber, *, look_first: bool = True) -> int:
    """Make every call of the subscriber that is due now, up to PARALLEL_CALLS at once (see
    above); how many calls were made, once all have returned. Safe to run in several processes
    at once: each effect is claimed by one.

    `look_first`: a lock-free check for a due call first, so that a pass with nothing due takes
    no write lock (False when the caller knows it just recorded calls owed)."""
    if look_first and not recorder().effect_due(subscriber.name, timezone.now()):
        return 0
    # Inside a transaction (a test's own), other connections would not see what it wrote.
    at_once = 1 if transaction.get_connection().in_atomic_block else PARALLEL_CALLS
    calls = 0
    while True:
        claims = claim_due(subscriber.name, limit=at_once)
        if claims:
            _perform_in_lanes(subscriber, claims)
            calls += len(claims)
        if len(claims) < at_once:  # none was left due when these were claimed
            return calls


def make_due_calls(subscribers: Iterable[Subscriber]) -> int:
    """Make the calls that are due of every effect subscriber among `subscribers`, whoever
    owes them: one lock-free check for which have any, then their calls (see `run_due`); how
    many calls were made. A failure is logged and left to the next pass."""
    owing = {s.name: s for s in subscribers if isinstance(s, EffectSubscriber)}
    if not owing:
        return 0
    calls = 0
    for name in sorted(recorder().owing(list(owing), timezone.now())):
        try:
            calls += run_due(owing[name], look_first=False)
        except Exception:
            logger.exception("Making the calls due of subscriber %s failed", name)
    return calls


def _perform_in_lanes(subscriber: EffectSubscriber, claims: list[Claim]) -> None:
    """Make the claimed calls: those of one order in claim order, different orders at once,
    each beyond the first on a thread (and database connection) of its own."""
    lanes: dict[str, list[Claim]] = {}
    for claim in claims:
        event = claim.event
        key = event.correlation_id or f"{event.aggregate_type}/{event.aggregate_id}"
        lanes.setdefault(key, []).append(claim)
    first, *others = lanes.values()
    helpers = [
        threading.Thread(target=_perform_apart, args=(subscriber, lane), daemon=True)
        for lane in others
    ]
    for helper in helpers:
        helper.start()
    for claim in first:
        perform_claimed(subscriber, claim)
    for helper in helpers:
        helper.join()


def _perform_apart(subscriber: EffectSubscriber, claims: list[Claim]) -> None:
    """`perform_claimed` for each claim in turn on this thread's own connection, closed after."""
    try:
        for claim in claims:
            perform_claimed(subscriber, claim)
    except Exception:  # the claim's lease runs out and the call is made again
        logger.exception("%s: a call failed unrecorded", subscriber.name)
    finally:
        connections.close_all()


def retry_parked(subscriber_names: list[str] | None = None, *, ids: list[int] | None = None) -> int:
    """Make parked effects (of these subscribers, or with these ids) pending again with a fresh
    count of attempts, due now; how many. A withdrawn call is never made again: it is not
    parked, whatever it was before."""
    parked = Effect.objects.filter(status=PARKED)
    if subscriber_names is not None:
        parked = parked.filter(subscriber__in=subscriber_names)
    if ids is not None:
        parked = parked.filter(pk__in=ids)
    return parked.update(
        status=PENDING, attempts=0, due_at=timezone.now(), claim=None, updated_at=timezone.now()
    )
