"""Check that the live read models equal what the log says they should be."""

from django.core.management.base import BaseCommand, CommandError

from eventstore.management.commands.rebuild_projections import progress_bar, selected_projections
from eventstore.replay import count_replay_events, verify


class Command(BaseCommand):
    help = (
        "Rebuild the given projections (default: all) inside a transaction that is rolled back, "
        "and list every read-model row that differs from the live one. Exits 1 on any drift."
    )

    def add_arguments(self, parser):
        parser.add_argument("projections", nargs="*", metavar="NAME", help="Projection names.")
        parser.add_argument(
            "--batch-size", type=int, default=None, help="Events read per query (default: setting)."
        )

    def handle(self, *args, projections, batch_size, verbosity, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        chosen = selected_projections(projections)
        with progress_bar(count_replay_events(chosen), verbosity, "verify") as bar:
            differences, result = verify(chosen, batch_size=batch_size, progress=bar.update)
        for difference in differences:
            self.stdout.write(difference.describe())
        if differences:
            raise CommandError(
                f"{len(differences)} read-model row(s) differ from a rebuild of "
                f"{result.events} events"
            )
        self.stdout.write(
            f"OK: {len(chosen)} projection(s) match a rebuild of {result.events} events"
        )
