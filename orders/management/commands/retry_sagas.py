"""Send the failed compensations of sagas in compensation_failed again."""

from django.core.management.base import BaseCommand, CommandError

from eventstore.api import add_dry_run, write_dry_run
from orders.aggregates import IllegalTransition, OrderNotFound
from orders.models import SagaSummary
from orders.saga import saga_retry


class Command(BaseCommand):
    help = (
        "Retry the compensations of sagas left in compensation_failed (after fixing what made "
        "them fail): each failed compensation is requested again."
    )

    def add_arguments(self, parser):
        parser.add_argument("order_ids", nargs="*", metavar="ORDER_ID", help="Sagas to retry.")
        parser.add_argument(
            "--all", action="store_true", help="Retry every saga in compensation_failed."
        )
        add_dry_run(parser, "List the sagas that would be retried.")

    def handle(self, *args, order_ids, all, dry_run, **options):
        if bool(order_ids) == bool(all):
            raise CommandError("Name the sagas to retry (their order ids), or pass --all.")
        if all:
            order_ids = list(
                SagaSummary.objects.filter(state=SagaSummary.State.COMPENSATION_FAILED)
                .values_list("order_id", flat=True)
                .distinct()
            )
        if dry_run:
            write_dry_run(
                self,
                (f"would retry: {order_id}" for order_id in order_ids),
                f"{len(order_ids)} saga(s) would be retried.",
            )
            return
        errors = []
        for order_id in order_ids:
            # An order's parked saga: its fulfilment's, or its cancellation's.
            kinds = SagaSummary.objects.filter(
                order_id=order_id, state=SagaSummary.State.COMPENSATION_FAILED
            ).values_list("kind", flat=True)
            try:
                for kind in list(kinds) or ["fulfilment"]:
                    saga = saga_retry(order_id=order_id, kind=kind)
            except (IllegalTransition, OrderNotFound) as error:
                errors.append(f"{order_id}: {error}")
                continue
            self.stdout.write(f"{order_id}: retried, now {saga.state}")
        self.stdout.write(f"Retried {len(order_ids) - len(errors)} saga(s).")
        if errors:
            raise CommandError("\n".join(errors))
