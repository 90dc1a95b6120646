"""Reset read models and replay the whole log into them."""

from eventstore.management.helpers import ProjectionsCommand, progress_bar
from eventstore.replay import count_replay_events, rebuild


class Command(ProjectionsCommand):
    help = (
        "Empty the read models of the given projections (default: all) and replay every event "
        "into them in position order. Appends wait until it finishes."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--list", action="store_true", help="List the registered projections and exit."
        )

    def handle(self, *args, projections, batch_size, list, verbosity, **options):
        chosen = self.chosen(projections, batch_size)
        if list:
            for projection in chosen:
                self.stdout.write(projection.name)
            return
        total = count_replay_events(chosen)
        names = ", ".join(projection.name for projection in chosen)
        if verbosity >= 1:
            self.stdout.write(f"Rebuilding {names} from {total} event(s)")
        with progress_bar(total, verbosity, "replay") as bar:
            result = rebuild(chosen, batch_size=batch_size, progress=bar.update)
        self.stdout.write(
            f"Rebuilt {len(chosen)} projection(s) from {result.events} events "
            f"in {result.seconds:.2f} s ({result.events_per_second:,.0f} events/s)"
        )
