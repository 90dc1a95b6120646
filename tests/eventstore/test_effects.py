"""Effect subscribers: owed calls are recorded with the checkpoint, made with no transaction open,
retried with backoff, parked after the attempts setting, fenced by their claim."""

import io
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from eventstore.follower import effects
from eventstore.follower.dispatch import dispatch_committed
from eventstore.follower.effects import (
    EffectSubscriber,
    RequestProgress,
    TransactionOpen,
    requests_progress,
    require_no_transaction,
)
from eventstore.follower.subscriptions import Subscriber, catch_up
from eventstore.models import Effect
from eventstore.recorders import recorder
from eventstore.store import NewEvent
from tests.threads import run_threads

pytestmark = pytest.mark.django_db


class Refused(Exception):
    """A failure no retry can fix."""


class Recorder(EffectSubscriber):
    """Calls out for every `Asked` event: each call pops the next planned outcome."""

    name = "tests.recorder"
    event_types = frozenset({"Asked"})
    permanent_errors = (Refused,)

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = []
        self.failures = []

    def perform(self, event, *, attempt):
        self.calls.append(event.payload["n"])
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome

    def failed(self, event, *, error, attempt, parked):
        self.failures.append((event.payload["n"], type(error).__name__, attempt, parked))


@pytest.fixture
def ask(store):
    def append(n=1):
        return store.append_to_stream("thing", f"t-{n}", [NewEvent("Asked", {"n": n})])[0]

    return append


@pytest.fixture
def no_backoff(settings):
    settings.EVENTSTORE_EFFECT_BACKOFF = 0


def effect():
    return Effect.objects.get()


def test_an_owed_call_is_made_once_after_the_catch_up_and_marked_done(subscribe, ask):
    recorder = subscribe(Recorder())
    asked = ask()

    result = catch_up(recorder)

    assert (result.handled, result.calls, recorder.calls) == (1, 1, [1])
    assert (effect().status, effect().attempts, effect().event_id) == ("done", 1, asked.event_id)
    assert catch_up(recorder).calls == 0


def test_an_intent_owes_its_call_in_the_transaction_that_appends_it(subscribe, ask):
    subscribe(Recorder())

    with pytest.raises(RuntimeError), transaction.atomic():
        ask(1)
        assert Effect.objects.filter(status="pending").count() == 1  # owed with the event
        raise RuntimeError("the append rolls back")
    asked = ask(2)

    assert list(Effect.objects.values_list("event_id", "position")) == [
        (asked.event_id, asked.position)
    ]


def test_an_intent_appended_again_owes_no_second_call(subscribe, store):
    subscribe(Recorder())
    intent = NewEvent("Asked", {"n": 1})

    store.append_to_stream("thing", "t-1", [intent])
    store.append_to_stream("thing", "t-1", [intent])  # its event id is stored: nothing new

    assert Effect.objects.count() == 1


def test_an_event_handled_twice_owes_one_call(subscribe, ask):
    recorder = subscribe(Recorder())
    asked = ask()

    recorder.handle(asked)
    recorder.handle(asked)

    assert Effect.objects.count() == 1
    assert effects.run_due(recorder) == 1


def test_a_failed_call_waits_for_its_backoff_then_is_made_again(subscribe, ask, settings):
    settings.EVENTSTORE_EFFECT_BACKOFF = 10
    recorder = subscribe(Recorder(OSError("mail server down")))
    ask()

    before = timezone.now()
    catch_up(recorder)

    failed = effect()
    assert (failed.status, failed.attempts) == ("pending", 1)
    assert failed.last_error == "OSError: mail server down"
    assert failed.due_at >= before + timedelta(seconds=10)
    assert recorder.failures == [(1, "OSError", 1, False)]
    assert effects.run_due(recorder) == 0  # not due yet

    Effect.objects.update(due_at=timezone.now())
    assert effects.run_due(recorder) == 1
    assert (effect().status, effect().attempts, effect().last_error) == ("done", 2, "")
    assert recorder.calls == [1, 1]


def test_the_backoff_doubles_up_to_its_cap(settings):
    settings.EVENTSTORE_EFFECT_BACKOFF = 2
    settings.EVENTSTORE_EFFECT_BACKOFF_MAX = 10

    waits = [effects.backoff(attempt).total_seconds() for attempt in range(1, 6)]

    assert waits == [2, 4, 8, 10, 10]


def test_a_call_failing_every_attempt_is_parked(subscribe, ask, settings, no_backoff):
    settings.EVENTSTORE_EFFECT_ATTEMPTS = 3
    recorder = subscribe(Recorder(*[OSError("down")] * 5))
    ask()

    catch_up(recorder)

    assert (effect().status, effect().attempts) == ("parked", 3)
    assert [failure[2:] for failure in recorder.failures] == [(1, False), (2, False), (3, True)]


def test_a_permanent_error_parks_at_once_and_later_calls_still_run(subscribe, ask):
    recorder = subscribe(Recorder(Refused("never")))
    ask(1)
    ask(2)

    catch_up(recorder)

    statuses = dict(Effect.objects.values_list("position", "status"))
    assert sorted(statuses.values()) == ["done", "parked"]
    assert recorder.failures == [(1, "Refused", 1, True)]
    assert recorder.calls == [1, 2]


def test_retrying_parked_calls_makes_them_pending_with_fresh_attempts(subscribe, ask):
    recorder = subscribe(Recorder(Refused("not yet")))
    ask()
    catch_up(recorder)

    assert effects.retry_parked(["tests.other"]) == 0
    assert effects.retry_parked([recorder.name]) == 1
    assert (effect().status, effect().attempts) == ("pending", 0)
    assert catch_up(recorder).calls == 1
    assert effect().status == "done"


def test_a_failing_failure_hook_still_schedules_the_retry(subscribe, ask, settings):
    settings.EVENTSTORE_EFFECT_BACKOFF = 60

    class BrokenHook(Recorder):
        def failed(self, event, **kwargs):
            raise RuntimeError("could not record the failure")

    recorder = subscribe(BrokenHook(OSError("down")))
    ask()

    catch_up(recorder)

    assert (effect().status, effect().attempts) == ("pending", 1)


def test_a_claim_taken_over_after_its_lease_cannot_finish_the_effect(subscribe, ask, settings):
    settings.EVENTSTORE_EFFECT_LEASE = 0
    recorder = subscribe(Recorder())
    recorder.handle(ask())

    stale = effects.claim_next(recorder.name)
    current = effects.claim_next(recorder.name)

    assert (stale.attempt, current.attempt) == (1, 2)
    assert effects.perform_claimed(recorder, stale) == "done"  # the call is made ...
    assert effect().status == "pending"  # ... but only the current claim may finish it
    assert effects.perform_claimed(recorder, current) == "done"
    assert effect().status == "done"


def test_a_running_claim_keeps_other_workers_off_the_effect_until_its_lease_ends(
    subscribe, ask, settings
):
    settings.EVENTSTORE_EFFECT_LEASE = 60
    recorder = subscribe(Recorder())
    recorder.handle(ask())

    assert effects.claim_next(recorder.name) is not None
    assert effects.claim_next(recorder.name) is None


def test_calls_are_refused_inside_a_transaction(subscribe, ask):
    recorder = subscribe(Recorder())
    recorder.handle(ask())

    with pytest.raises(RuntimeError), transaction.atomic():
        effects.run_due(recorder)

    assert recorder.calls == []
    with pytest.raises(TransactionOpen, match="A call"), transaction.atomic():
        require_no_transaction("A call")
    require_no_transaction("A call")  # the test case's own transaction does not count


def test_effects_of_one_subscriber_are_not_made_by_another(subscribe, ask):
    recorder = subscribe(Recorder())
    recorder.handle(ask())

    class Other(Recorder):
        name = "tests.other"

    assert effects.run_due(subscribe(Other())) == 0
    assert Effect.objects.get().subscriber == recorder.name
    assert isinstance(Effect.objects.get().event_id, uuid.UUID)


# --- the admin and the retry_effects command ----------------------------------------------------


@pytest.fixture
def parked(subscribe, ask):
    """A recorder subscriber with one parked call (its first call was refused)."""
    recorder = subscribe(Recorder(Refused("card network down")))
    ask()
    catch_up(recorder)
    assert effect().status == "parked"
    return recorder


def test_the_admin_lists_parked_calls_with_their_error(client, admin_user, parked):
    client.force_login(admin_user)

    response = client.get("/admin/eventstore/effect/?status__exact=parked")

    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [effect().pk]
    assert "card network down" in response.content.decode()


def test_the_admin_action_retries_the_selected_parked_calls(client, admin_user, parked):
    client.force_login(admin_user)

    response = client.post(
        "/admin/eventstore/effect/",
        {"action": "retry_parked", "_selected_action": [effect().pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 parked call(s) will be made again." in response.content.decode()
    assert (effect().status, effect().attempts) == ("pending", 0)


def test_retry_effects_makes_parked_calls_again(parked):
    out = io.StringIO()

    call_command("retry_effects", parked.name, stdout=out)

    assert "1 parked call(s) are pending again." in out.getvalue()
    assert f"{parked.name}: made 1 call(s)" in out.getvalue()
    assert effect().status == "done"


def test_retry_effects_dry_run_lists_and_changes_nothing(parked):
    out = io.StringIO()

    call_command("retry_effects", "--dry-run", stdout=out)

    assert "card network down" in out.getvalue()
    assert "1 parked call(s) would be retried." in out.getvalue()
    assert effect().status == "parked"


def test_retry_effects_fails_when_a_call_fails_again(subscribe, ask):
    recorder = subscribe(Recorder(Refused("still down"), Refused("still down")))
    ask()
    catch_up(recorder)

    with pytest.raises(CommandError, match="1 call"):
        call_command("retry_effects", stdout=io.StringIO())

    assert (effect().status, effect().attempts) == ("parked", 1)


def test_retry_effects_rejects_an_unknown_subscriber():
    with pytest.raises(CommandError, match="Unknown subscriber"):
        call_command("retry_effects", "nobody")


def test_process_events_reports_the_calls_it_made(subscribe, ask):
    subscribe(Recorder())
    ask()
    out = io.StringIO()

    call_command("process_events", "tests.recorder", stdout=out)

    assert "tests.recorder: handled 1 event(s), made 1 outside call(s)" in out.getvalue()


class Reader(Subscriber):
    """Reads `Read` events and does nothing with them."""

    name = "tests.reader"
    event_types = frozenset({"Read"})

    def handle(self, event):
        pass


def test_a_wake_up_for_other_events_makes_the_calls_another_thread_left_due(subscribe, ask, store):
    """Another request's thread handled this request's events first and is busy with a call of
    its own: the wake-up of any commit that subscribers read takes the calls still due."""
    recorder = subscribe(Recorder())
    subscribe(Reader())
    recorder.handle(ask())  # owed by "another thread", not made yet
    unrelated = store.append_to_stream("thing", "t-9", [NewEvent("Read", {})])

    dispatch_committed(events=unrelated)

    assert recorder.calls == [1]
    assert effect().status == "done"


def test_a_commit_of_events_no_subscriber_reads_wakes_nothing(subscribe, ask, store):
    recorder = subscribe(Recorder())
    recorder.handle(ask())  # owed, due, not made yet
    unread = store.append_to_stream("thing", "t-9", [NewEvent("Unread", {})])

    with CaptureQueriesContext(connection) as queries:
        dispatch_committed(events=unread)

    assert recorder.calls == []
    assert len(queries) == 0


class Timed(EffectSubscriber):
    """Records when each call (of an `Asked` event) starts and ends, taking a moment."""

    name = "tests.timed"
    event_types = frozenset({"Asked"})

    def __init__(self):
        self.spans = {}

    def perform(self, event, *, attempt):
        started = time.monotonic()
        time.sleep(0.2)
        self.spans[event.payload["n"]] = (event.correlation_id, started, time.monotonic())


@pytest.mark.django_db(transaction=True)
def test_due_calls_of_different_orders_are_made_at_once_and_one_orders_in_turn(
    subscribe, store, settings
):
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False  # only the catch-up below calls
    timed = subscribe(Timed())
    for n, order in enumerate(["a", "b", "a", "b"]):
        store.append_to_stream(
            "thing", f"t-{n}", [NewEvent("Asked", {"n": n}, metadata={"correlation_id": order})]
        )

    assert catch_up(timed).calls == 4

    spans = timed.spans
    assert sorted(spans) == [0, 1, 2, 3]
    assert spans[0][2] <= spans[2][1] and spans[1][2] <= spans[3][1]  # each order's in turn
    assert spans[1][1] < spans[0][2]  # the other order's first call did not wait for it
    assert Effect.objects.filter(status=Effect.Status.DONE).count() == 4


# --- the progress of a request ------------------------------------------------------------------


def test_requests_progress_answers_each_request_in_order_past_one_statements_worth(store):
    asked = store.append_to_stream(
        "thing", "t-1", [NewEvent("Asked", {}, metadata={"correlation_id": "c-120"})]
    )[0]
    store.append_to_stream(
        "thing", "t-2", [NewEvent("Answered", {}, metadata={"correlation_id": "c-130"})]
    )
    store.append_to_stream(
        "thing", "t-3", [NewEvent("Asked", {}, metadata={"correlation_id": "c-130"})]
    )
    requests = [(f"c-{n}", "Asked", ["Answered"]) for n in range(150)]

    progress = requests_progress(requests)

    assert len(progress) == 150
    assert progress[120] == RequestProgress(asked.recorded_at, replied=False, started_at=None)
    # An answer recorded before the request does not answer it.
    assert progress[130] is not None and progress[130].replied is False
    assert [n for n, found in enumerate(progress) if found is not None] == [120, 130]


# --- withdrawn calls ----------------------------------------------------------------------------


class Withdrawing(Recorder):
    """A recorder whose `Asked` calls a `GaveUp` event of the same correlation withdraws; it
    reconciles a withdrawn call it attempted by popping the next planned lookup outcome."""

    name = "tests.withdrawing"

    def __init__(self, *outcomes, lookups=()):
        super().__init__(*outcomes)
        self.lookups = list(lookups)
        self.reconciled = []

    def withdraws(self, event):
        if event.event_type != "GaveUp":
            return None
        return effects.Withdrawal(frozenset({"Asked"}), f"gave up: {event.payload['why']}")

    def reconcile(self, event, *, attempt):
        self.reconciled.append((event.payload["n"], attempt))
        outcome = self.lookups.pop(0) if self.lookups else None
        if outcome is not None:
            raise outcome


@pytest.fixture
def ask_in(store):
    """Append an `Asked` event (payload n) in correlation `order`."""

    def append(n=1, order="o-1"):
        metadata = {"correlation_id": order}
        return store.append_to_stream("thing", f"t-{n}", [NewEvent("Asked", {"n": n}, metadata)])[0]

    return append


@pytest.fixture
def give_up(store):
    """Append a `GaveUp` event in correlation `order`: it withdraws that order's calls."""

    def append(order="o-1", why="too slow"):
        metadata = {"correlation_id": order}
        return store.append_to_stream(
            "saga", order, [NewEvent("GaveUp", {"why": why}, metadata)], expected_version=None
        )[0]

    return append


def test_a_call_not_made_yet_is_withdrawn_and_never_made(subscribe, ask_in, give_up):
    withdrawing = subscribe(Withdrawing())
    ask_in()

    give_up(why="timeout")

    withdrawn = effect()
    assert (withdrawn.status, withdrawn.attempts, withdrawn.due_at) == ("withdrawn", 0, None)
    assert withdrawn.withdrawn_reason == "gave up: timeout"
    assert withdrawn.withdrawn_at is not None
    assert effects.run_due(withdrawing) == 0
    assert catch_up(withdrawing).calls == 0
    assert (withdrawing.calls, withdrawing.reconciled) == ([], [])


def test_an_attempted_call_is_reconciled_once_and_never_made_again(
    subscribe, ask_in, give_up, settings
):
    settings.EVENTSTORE_EFFECT_BACKOFF = 60
    withdrawing = subscribe(Withdrawing(OSError("no answer")))
    ask_in()
    catch_up(withdrawing)
    assert (effect().status, effect().attempts) == ("pending", 1)

    give_up()

    assert (effect().status, effect().claim) == ("withdrawn", None)
    assert effect().due_at <= timezone.now()  # reconciled at once, whatever the backoff
    assert effects.run_due(withdrawing) == 1
    assert effects.run_due(withdrawing) == 0
    assert withdrawing.calls == [1]  # only the call made before the withdrawal
    assert withdrawing.reconciled == [(1, 2)]
    assert (effect().status, effect().due_at) == ("withdrawn", None)


def test_a_failing_reconciliation_is_retried_after_its_backoff_and_never_parked(
    subscribe, ask_in, give_up, settings
):
    settings.EVENTSTORE_EFFECT_ATTEMPTS = 1
    settings.EVENTSTORE_EFFECT_BACKOFF = 60
    withdrawing = subscribe(Withdrawing(Refused("no answer"), lookups=[OSError("cannot say")]))
    ask_in()
    catch_up(withdrawing)
    assert effect().status == "parked"
    give_up()

    assert effects.run_due(withdrawing) == 1

    failed = effect()
    assert (failed.status, failed.last_error) == ("withdrawn", "OSError: cannot say")
    assert failed.due_at > timezone.now() + timedelta(seconds=50)
    assert effects.run_due(withdrawing) == 0  # not due yet
    Effect.objects.update(due_at=timezone.now())
    assert effects.run_due(withdrawing) == 1
    assert (effect().status, effect().due_at) == ("withdrawn", None)
    assert withdrawing.calls == [1]
    assert [n for n, _ in withdrawing.reconciled] == [1, 1]


def test_a_reconciliation_that_can_never_succeed_is_settled_with_its_error(
    subscribe, ask_in, give_up, settings
):
    settings.EVENTSTORE_EFFECT_BACKOFF = 60
    withdrawing = subscribe(Withdrawing(OSError("no answer"), lookups=[Refused("unknown key")]))
    ask_in()
    catch_up(withdrawing)
    give_up()

    assert effects.run_due(withdrawing) == 1

    settled = effect()
    assert (settled.status, settled.due_at) == ("withdrawn", None)
    assert settled.last_error == "Refused: unknown key"
    assert withdrawing.calls == [1]


def test_only_calls_owed_before_the_withdrawal_in_its_correlation_and_not_done_are_withdrawn(
    subscribe, ask_in, give_up
):
    withdrawing = subscribe(Withdrawing())
    done = ask_in(1)
    effects.run_due(withdrawing)
    owed = ask_in(2)
    other_order = ask_in(3, order="o-2")

    give_up()
    later = ask_in(4)

    statuses = dict(Effect.objects.values_list("event_id", "status"))
    assert statuses == {
        done.event_id: "done",
        owed.event_id: "withdrawn",
        other_order.event_id: "pending",
        later.event_id: "pending",
    }


def test_a_withdrawal_rolls_back_with_the_append_that_made_it(subscribe, ask_in, give_up):
    subscribe(Withdrawing())
    ask_in()

    with pytest.raises(RuntimeError), transaction.atomic():
        give_up()
        raise RuntimeError("the append rolls back")

    assert effect().status == "pending"


def test_a_worker_in_flight_when_the_call_is_withdrawn_cannot_finish_it(
    subscribe, ask_in, give_up, settings
):
    """The race: a worker claimed the call and is making it when the withdrawal lands. Its
    finish is fenced off; the call is reconciled once the worker's lease is over, not before."""
    settings.EVENTSTORE_EFFECT_LEASE = 60
    withdrawing = subscribe(Withdrawing())
    ask_in()
    in_flight = effects.claim_next(withdrawing.name)
    lease_end = effect().due_at

    give_up()

    assert (effect().status, effect().claim, effect().due_at) == ("withdrawn", None, lease_end)
    effects.perform_claimed(withdrawing, in_flight)  # the provider answers the worker
    assert withdrawing.calls == [1]
    assert (effect().status, effect().due_at) == ("withdrawn", lease_end)  # fenced off
    assert effects.run_due(withdrawing) == 0  # the worker's lease is not over
    Effect.objects.update(due_at=timezone.now())
    assert effects.run_due(withdrawing) == 1
    assert withdrawing.reconciled == [(1, 2)]
    assert withdrawing.calls == [1]
    assert (effect().status, effect().due_at) == ("withdrawn", None)


@pytest.fixture
def withdrawn_after_parking(subscribe, ask_in, give_up):
    """A subscriber whose one call was parked, then withdrawn and reconciled."""
    withdrawing = subscribe(Withdrawing(Refused("card network down")))
    ask_in()
    catch_up(withdrawing)
    give_up(why="payment_timeout")
    effects.run_due(withdrawing)
    assert (effect().status, effect().due_at) == ("withdrawn", None)
    return withdrawing


def test_retrying_parked_calls_never_makes_a_withdrawn_one(withdrawn_after_parking):
    out = io.StringIO()

    call_command("retry_effects", "--dry-run", stdout=out)
    assert "0 parked call(s) would be retried." in out.getvalue()
    call_command("retry_effects", stdout=out)

    assert effects.retry_parked(ids=[effect().pk]) == 0
    assert effect().status == "withdrawn"
    assert withdrawn_after_parking.calls == [1]


def test_the_admin_shows_a_withdrawn_call_and_its_reason_and_does_not_retry_it(
    client, admin_user, withdrawn_after_parking
):
    client.force_login(admin_user)

    listed = client.get("/admin/eventstore/effect/?status__exact=withdrawn")
    retried = client.post(
        "/admin/eventstore/effect/",
        {"action": "retry_parked", "_selected_action": [effect().pk]},
        follow=True,
    )

    assert [row.pk for row in listed.context["cl"].result_list] == [effect().pk]
    assert "gave up: payment_timeout" in listed.content.decode()
    assert "0 parked call(s) will be made again." in retried.content.decode()
    assert effect().status == "withdrawn"


def test_a_withdrawn_call_is_no_backlog_for_admission(subscribe, ask_in, give_up):
    subscribe(Withdrawing())
    ask_in()
    assert recorder().oldest_unstarted_call(["tests.withdrawing"]) is not None

    give_up()

    assert recorder().oldest_unstarted_call(["tests.withdrawing"]) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_racing_a_withdrawal_not_yet_committed_never_makes_the_call(
    subscribe, ask_in, give_up, settings
):
    """On PostgreSQL claims and appends run at once: a worker that claims while the withdrawal's
    transaction is still open passes the call by, and nothing is left to make once it commits."""
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False  # only the claims below call
    withdrawing = subscribe(Withdrawing())
    ask_in()
    withdrawn, release = threading.Event(), threading.Event()

    def give_up_and_hold(index):
        with transaction.atomic():
            give_up()
            withdrawn.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=run_threads, args=(give_up_and_hold, 1))
    holder.start()
    try:
        assert withdrawn.wait(timeout=30), "the withdrawal never ran"
        racing_claim = effects.claim_next(withdrawing.name)
    finally:
        release.set()
        holder.join(timeout=30)

    assert racing_claim is None
    assert effects.run_due(withdrawing) == 0
    assert withdrawing.calls == []
    assert (effect().status, effect().attempts) == ("withdrawn", 0)
