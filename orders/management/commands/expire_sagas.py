"""Fail saga steps (and resend compensations) whose reply is overdue."""

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from eventstore.management.helpers import add_dry_run, write_dry_run
from orders.models import SagaSummary
from orders.saga import sagas_expire


class Command(BaseCommand):
    help = (
        "Give up on every saga reply older than SAGA_STEP_TIMEOUT seconds: the step fails and "
        "the steps done are compensated, or an unanswered compensation is sent again (up to "
        "SAGA_COMPENSATION_ATTEMPTS times). process_events does the same on every pass."
    )

    def add_arguments(self, parser):
        add_dry_run(parser, "List the overdue sagas; change nothing.")

    def handle(self, *args, dry_run, verbosity, **options):
        timeout = float(settings.SAGA_STEP_TIMEOUT)
        cutoff = timezone.now() - timedelta(seconds=timeout)
        if dry_run:
            overdue = SagaSummary.objects.waiting_since_before(cutoff)
            write_dry_run(
                self,
                (
                    f"{saga.order_id}: {saga.waiting_kind} {saga.waiting_for} waiting since "
                    f"{saga.waiting_since:%Y-%m-%d %H:%M:%S}"
                    for saga in overdue
                ),
                f"{overdue.count()} saga(s) overdue (timeout {timeout:g} s).",
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
