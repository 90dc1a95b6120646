"""Make parked calls to the outside world pending again, and make them now."""

from django.core.management.base import BaseCommand, CommandError

from eventstore import effects
from eventstore.effects import EffectSubscriber
from eventstore.models import Effect
from eventstore.subscriptions import SubscriberError, get_subscribers


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
        parser.add_argument(
            "--dry-run", action="store_true", help="List the parked calls that would be retried."
        )

    def handle(self, *args, subscribers, dry_run, **options):
        try:
            chosen = get_subscribers(subscribers or None)
        except SubscriberError as error:
            raise CommandError(str(error)) from error
        chosen = [subscriber for subscriber in chosen if isinstance(subscriber, EffectSubscriber)]
        names = [subscriber.name for subscriber in chosen]
        if dry_run:
            parked = Effect.objects.filter(status=effects.PARKED, subscriber__in=names)
            for effect in parked:
                self.stdout.write(
                    f"would retry: {effect.subscriber} #{effect.position} {effect.event_type} "
                    f"({effect.attempts} attempt(s): {effect.last_error})"
                )
            self.stdout.write(f"{parked.count()} parked call(s) would be retried.")
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
