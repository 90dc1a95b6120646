"""Check that the live read models equal what the log says they should be."""

from django.core.management.base import CommandError

from eventstore.management.helpers import ProjectionsCommand, progress_bar, show_lag
from eventstore.replay import RebuildRefused, count_replay_events, verify, verify_online


class Command(ProjectionsCommand):
    help = (
        "Rebuild the given projections (default: all) into copies beside the live tables while "
        "appends go on, and list every read-model row that differs from the live one at the "
        "same point of the log (--in-place: rebuild inside a transaction that holds appends and "
        "is rolled back). Exits 1 on any drift."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--in-place",
            action="store_true",
            help="Rebuild in a rolled-back transaction that holds every append.",
        )

    def handle(self, *args, projections, batch_size, in_place, pace, verbosity, **options):
        chosen = self.chosen(projections, batch_size)
        pace = self.pace(pace, in_place)
        with progress_bar(count_replay_events(chosen), verbosity, "verify") as bar:
            if in_place:
                differences, result = verify(chosen, batch_size=batch_size, progress=bar.update)
            else:
                try:
                    differences, result = verify_online(
                        chosen,
                        batch_size=batch_size,
                        progress=bar.update,
                        lag=show_lag(bar),
                        pace=pace,
                    )
                except RebuildRefused as error:
                    raise CommandError(str(error)) from error
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
