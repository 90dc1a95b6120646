"""Make parked calls to the outside world pending again, and make them now."""

from django.core.management.base import BaseCommand, CommandError

from eventstore.follower import effects
from eventstore.follower.effects import EffectSubscriber
from eventstore.follower.subscriptions import registry
from eventstore.management.helpers import add_dry_run, selected, write_dry_run
from eventstore.models import Effect


class Command(BaseCommand):
    help = (
        "Retry the calls to the outside world (payments, email) that were parked after failing "
        "every attempt, once their cause is fixed: each gets a fresh count of attempts and is "
        "made at once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "subscribers",
            nargs="*",
            metavar="NAME",
            help="Only the parked calls of these subscribers (default: all).",
        )
        add_dry_run(parser, "List the parked calls that would be retried.")

    def handle(self, *args, subscribers, dry_run, **options):
        chosen = [
            subscriber
            for subscriber in selected(registry, subscribers)
            if isinstance(subscriber, EffectSubscriber)
        ]
        names = [subscriber.name for subscriber in chosen]
        if dry_run:
            parked = Effect.objects.filter(status=effects.PARKED, subscriber__in=names)
            write_dry_run(
                self,
                (
                    f"would retry: {effect.subscriber} #{effect.position} {effect.event_type} "
                    f"({effect.attempts} attempt(s): {effect.last_error})"
                    for effect in parked
                ),
                f"{parked.count()} parked call(s) would be retried.",
            )
            return
        count = effects.retry_parked(names)
        self.stdout.write(f"{count} parked call(s) are pending again.")
        for subscriber in chosen:
            calls = effects.run_due(subscriber)
            if calls:
                self.stdout.write(f"{subscriber.name}: made {calls} call(s)")
        still = Effect.objects.filter(status=effects.PARKED, subscriber__in=names).count()
        if still:
            raise CommandError(f"{still} call(s) failed again and are parked")
