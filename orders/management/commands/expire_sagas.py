"""Fail saga steps (and resend compensations) whose reply is overdue."""

from collections import Counter

from django.core.management.base import BaseCommand

from eventstore.api import add_dry_run, write_dry_run
from orders.models import SagaSummary
from orders.saga import sagas_expire, sagas_overdue


def _kind_noted(kind: str) -> str:
    """A cancellation saga is named as such; a fulfilment saga by its order id alone."""
    return "" if kind == SagaSummary.Kind.FULFILMENT else f" ({kind})"


class Command(BaseCommand):
    help = (
        "Give up on every overdue saga reply (no reply SAGA_STEP_TIMEOUT seconds after the "
        "service's call began, or not started within SAGA_QUEUE_TIMEOUT): the step fails and "
        "the steps done are compensated, or an unanswered compensation is sent again (up to "
        "SAGA_COMPENSATION_ATTEMPTS times). process_events does the same on every pass."
    )

    def add_arguments(self, parser):
        add_dry_run(parser, "List the overdue sagas; change nothing.")

    def handle(self, *args, dry_run, verbosity, **options):
        if dry_run:
            overdue = sagas_overdue()
            write_dry_run(
                self,
                (
                    f"{order_id}{_kind_noted(kind)}: {waiting.kind} {waiting.name}: {error}"
                    for kind, order_id, waiting, error in overdue
                ),
                f"{len(overdue)} saga(s) overdue.",
            )
            return
        expired = sagas_expire()
        if verbosity >= 2:
            for order_id in expired:
                self.stdout.write(f"expired: {order_id}")
        states = Counter(
            SagaSummary.objects.filter(order_id__in=expired).values_list("state", flat=True)
        )
        summary = ", ".join(f"{count} now {state}" for state, count in sorted(states.items()))
        self.stdout.write(
            f"Expired {len(expired)} overdue saga step(s)" + (f": {summary}." if summary else ".")
        )
