"""expire_sagas and retry_sagas: give up on overdue replies, send given-up compensations again."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from eventstore.models import Event
from orders.aggregates import Saga
from orders.services import order_cancel, orders, sagas

pytestmark = pytest.mark.django_db


def run(name, *args, **options):
    """Run a command; its standard output."""
    out = StringIO()
    call_command(name, *args, stdout=out, **options)
    return out.getvalue()


def state_of(order_id):
    return sagas.load(order_id).state


@pytest.fixture
def given_up(place_waiting, switched_off, settings):
    """A function placing `count` orders whose sagas end in compensation_failed: the payment
    gets no answer, then neither does the stock's release (SAGA_COMPENSATION_ATTEMPTS is 1).

    Any later commit lets inventory answer the missed releases, so call this last."""
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    settings.SAGA_COMPENSATION_ATTEMPTS = 1

    def make(count=1):
        order_ids = [place_waiting() for _ in range(count)]
        with switched_off("inventory.requests"):
            call_command("expire_sagas", stdout=StringIO())
            call_command("expire_sagas", stdout=StringIO())
        assert {state_of(order_id) for order_id in order_ids} == {Saga.COMPENSATION_FAILED}
        return order_ids

    return make


# --- expire_sagas --------------------------------------------------------------------------------


def test_expire_sagas_with_nothing_overdue_says_so(place_waiting):
    place_waiting()

    assert run("expire_sagas") == "Expired 0 overdue saga step(s).\n"


def test_expire_sagas_fails_overdue_steps_and_sums_up_where_the_sagas_are_now(
    place_waiting, settings
):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    first, second = place_waiting(), place_waiting()

    output = run("expire_sagas")

    # The releases are sent; inventory answers them once this (test) transaction commits.
    assert output == "Expired 2 overdue saga step(s): 2 now compensating.\n"
    assert state_of(first) == state_of(second) == Saga.COMPENSATING


def test_expire_sagas_sums_up_each_state_it_left_sagas_in(
    place, place_waiting, switched_off, settings
):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    settings.SAGA_COMPENSATION_ATTEMPTS = 1
    paid_late = place_waiting()
    with switched_off("inventory.requests"):
        run("expire_sagas")  # its payment step fails; the release is sent, unanswered
        unreserved = place()  # waits for a reservation that never comes

        output = run("expire_sagas")

    assert (
        output == "Expired 2 overdue saga step(s): 1 now compensated, 1 now compensation_failed.\n"
    )
    assert state_of(paid_late) == Saga.COMPENSATION_FAILED
    assert state_of(unreserved) == Saga.COMPENSATED


def test_expire_sagas_lists_each_saga_at_verbosity_2(place_waiting, settings):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    order_id = place_waiting()

    output = run("expire_sagas", verbosity=2)

    assert output.splitlines() == [
        f"expired: {order_id}",
        "Expired 1 overdue saga step(s): 1 now compensating.",
    ]


def test_expire_sagas_dry_run_lists_the_overdue_sagas_and_changes_nothing(place_waiting, settings):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    order_id = place_waiting()
    count = Event.objects.count()

    output = run("expire_sagas", dry_run=True)

    assert output.splitlines() == [
        f"{order_id}: step process_payment: no reply within 0 s of the call",
        "1 saga(s) overdue.",
    ]
    assert Event.objects.count() == count
    assert state_of(order_id) == Saga.RUNNING


def test_expire_sagas_dry_run_with_nothing_overdue_says_so(place_waiting, settings):
    settings.SAGA_STEP_TIMEOUT = 2.5
    place_waiting()

    assert run("expire_sagas", "--dry-run") == "0 saga(s) overdue.\n"


# --- retry_sagas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "options"),
    [((), {}), (("o-1",), {"all": True})],
    ids=["neither", "both"],
)
def test_retry_sagas_needs_either_order_ids_or_all(args, options):
    with pytest.raises(CommandError, match="Name the sagas to retry"):
        run("retry_sagas", *args, **options)


def test_retry_sagas_sends_the_given_up_compensation_again(given_up, run_after_commit):
    [order_id] = given_up()

    with run_after_commit():
        output = run("retry_sagas", order_id)

    assert output.splitlines() == [
        f"{order_id}: retried, now compensating",
        "Retried 1 saga(s).",
    ]
    # Inventory is listening again: the release is answered and the order cancelled.
    assert state_of(order_id) == Saga.COMPENSATED


def test_retry_sagas_all_retries_every_saga_in_compensation_failed(given_up, make_product, place):
    make_product("p1", stock=100)
    completed = place()
    failed = set(given_up(count=2))

    output = run("retry_sagas", "--all")

    assert output.splitlines()[-1] == "Retried 2 saga(s)."
    assert {line.split(":")[0] for line in output.splitlines()[:-1]} == failed
    assert {state_of(order_id) for order_id in failed} == {Saga.COMPENSATING}
    assert state_of(completed) == Saga.COMPLETED


def test_retry_sagas_dry_run_lists_the_sagas_and_changes_nothing(given_up):
    [order_id] = given_up()
    count = Event.objects.count()

    output = run("retry_sagas", "--all", "--dry-run")

    assert output.splitlines() == [f"would retry: {order_id}", "1 saga(s) would be retried."]
    assert Event.objects.count() == count
    assert state_of(order_id) == Saga.COMPENSATION_FAILED


def test_retry_sagas_retries_what_it_can_and_fails_naming_the_rest(given_up, make_product, place):
    make_product("p1", stock=100)
    completed = place()
    [order_id] = given_up()
    out = StringIO()

    with pytest.raises(CommandError) as failed:
        call_command("retry_sagas", "no-such-order", order_id, completed, stdout=out)

    assert out.getvalue().splitlines() == [
        f"{order_id}: retried, now compensating",
        "Retried 1 saga(s).",
    ]
    assert str(failed.value).splitlines() == [
        "no-such-order: No saga runs for order 'no-such-order'",
        f"{completed}: Saga '{completed}' is completed: only a saga in compensation_failed "
        "can be retried",
    ]
    assert state_of(order_id) == Saga.COMPENSATING


def test_retry_sagas_all_sends_a_stalled_cancellation_step_again(
    make_product, place, switched_off, expire_overdue, run_after_commit, deliver, settings
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 1
    make_product("p1", stock=10)
    order_id = place()
    with switched_off("payments.requests"):
        with run_after_commit():
            order_cancel(order_id=order_id)
        expire_overdue()

        output = run("retry_sagas", all=True)

    assert output.splitlines() == [f"{order_id}: retried, now running", "Retried 1 saga(s)."]
    deliver()
    assert orders.load(order_id).status == "refunded"
