"""Catch every subscriber up with the event log; with --follow, keep doing so."""

import logging
import signal
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from eventstore.follower.subscriptions import catch_up_all, registry
from eventstore.management.helpers import selected
from eventstore.recorders.connections import connection_lost, replace_if_broken
from eventstore.signals import run_worker_pass

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Deliver every event each subscriber has not handled yet, from its checkpoint on. "
        "This is how a crashed process recovers; with --follow it is the worker loop."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "subscribers", nargs="*", metavar="NAME", help="Only these subscribers (default: all)."
        )
        parser.add_argument(
            "--follow", action="store_true", help="Keep polling for new events until stopped."
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="Seconds between polls with --follow (default 1).",
        )

    def handle(self, *args, subscribers, follow, interval, verbosity, **options):
        if interval <= 0:
            raise CommandError("--interval must be greater than 0")
        names = [subscriber.name for subscriber in selected(registry, subscribers)]
        if not names:
            self.stdout.write("No subscribers are registered; nothing to do.")
            return
        if not follow:
            failures = self._pass(names, verbosity, quiet_when_idle=False)
            if failures:
                raise CommandError(f"{failures} subscriber(s) or housekeeping task(s) failed")
            return
        self.stdout.write(f"Following the log for {len(names)} subscriber(s); Ctrl+C stops.")
        # A worker is stopped with SIGTERM: finish the pass in hand, then leave.
        stopping = []
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
        try:
            while not stopping:
                self._pass(names, verbosity, quiet_when_idle=True)
                if not stopping:
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write("Stopped.")

    def _pass(self, names, verbosity, *, quiet_when_idle):
        # A connection the server ended (a restart, a fail-over) under the last pass is
        # replaced, rather than failing every pass after it.
        replace_if_broken()
        failures = 0
        try:
            results = catch_up_all(names)
        except DatabaseError as error:
            if not connection_lost(error):
                raise
            # The next pass runs on a new connection and goes on from the checkpoints.
            logger.warning("The database connection was lost during a pass: %s", error)
            self.stderr.write(f"The database connection was lost: {error}")
            return 1
        # Housekeeping that must run without new events (overdue saga steps); it may append
        # events, which the next pass (or their own after-commit wake-up) delivers.
        for receiver, error in run_worker_pass(sender=self.__class__):
            failures += 1
            self.stderr.write(f"Housekeeping {receiver.__name__} failed: {error}")
        for result in results:
            if result.error:
                failures += 1
                self.stderr.write(
                    f"{result.name}: handled {result.handled}, stopped before the event after "
                    f"position {result.position}: {result.error}"
                )
            elif result.handled or result.calls or (verbosity >= 1 and not quiet_when_idle):
                calls = f", made {result.calls} outside call(s)" if result.calls else ""
                self.stdout.write(
                    f"{result.name}: handled {result.handled} event(s){calls}, "
                    f"checkpoint at position {result.position}"
                )
        return failures
