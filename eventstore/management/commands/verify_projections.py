"""Check that the live read models equal what the log says they should be."""

from django.core.management.base import CommandError

from eventstore.management.helpers import ProjectionsCommand, progress_bar
from eventstore.replay import count_replay_events, verify


class Command(ProjectionsCommand):
    help = (
        "Rebuild the given projections (default: all) inside a transaction that is rolled back, "
        "and list every read-model row that differs from the live one. Exits 1 on any drift."
    )

    def handle(self, *args, projections, batch_size, verbosity, **options):
        chosen = self.chosen(projections, batch_size)
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
