"""Rebuild read models from the log: beside the live ones while appends go on (the default),
or in place, holding appends."""

from django.core.management.base import CommandError

from eventstore.management.helpers import ProjectionsCommand, progress_bar, show_lag
from eventstore.replay import RebuildRefused, count_replay_events, rebuild, rebuild_online


class Command(ProjectionsCommand):
    help = (
        "Rebuild the read models of the given projections (default: all) from every event in "
        "the log: into copies beside the live tables while appends go on, then each "
        "projection's switched in while appends wait for its last events (--in-place: empty "
        "the tables and replay into them, appends waiting until it finishes)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--list", action="store_true", help="List the registered projections and exit."
        )
        parser.add_argument(
            "--in-place",
            action="store_true",
            help="Empty and refill the live tables in one transaction that holds every append "
            "(small databases, tests).",
        )

    def handle(self, *args, projections, batch_size, list, in_place, pace, verbosity, **options):
        chosen = self.chosen(projections, batch_size)
        pace = self.pace(pace, in_place)
        if list:
            for projection in chosen:
                self.stdout.write(projection.name)
            return
        total = count_replay_events(chosen)
        names = ", ".join(projection.name for projection in chosen)
        if verbosity >= 1:
            how = "in place" if in_place else "beside the live read models"
            self.stdout.write(f"Rebuilding {names} from {total} event(s), {how}")
        with progress_bar(total, verbosity, "replay") as bar:
            if in_place:
                result = rebuild(chosen, batch_size=batch_size, progress=bar.update)
            else:
                try:
                    result = rebuild_online(
                        chosen,
                        batch_size=batch_size,
                        progress=bar.update,
                        lag=show_lag(bar),
                        pace=pace,
                    )
                except RebuildRefused as error:
                    raise CommandError(str(error)) from error
        line = (
            f"Rebuilt {len(chosen)} projection(s) from {result.events} events "
            f"in {result.seconds:.2f} s ({result.events_per_second:,.0f} events/s)"
        )
        if not in_place:
            line += (
                f"; appends held {result.held_seconds * 1000:.1f} ms for the longest of "
                f"{result.switches} switch(es)"
            )
            if result.switch_attempts > 1:
                line += f" (one switched at try {result.switch_attempts})"
        self.stdout.write(line)
