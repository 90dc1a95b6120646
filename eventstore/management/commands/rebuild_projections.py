"""Reset read models and replay the whole log into them."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from eventstore.projections import ProjectionError, get_projections
from eventstore.replay import count_replay_events, rebuild


def selected_projections(names):
    """The named projections (all when none are named), or a CommandError naming the unknown."""
    try:
        return get_projections(names or None)
    except ProjectionError as error:
        raise CommandError(str(error)) from error


def progress_bar(total, verbosity, description):
    """A tqdm bar on stderr, hidden at verbosity 0."""
    return tqdm(
        total=total,
        unit="ev",
        desc=description,
        file=sys.stderr,
        disable=verbosity == 0,
        dynamic_ncols=True,
    )


class Command(BaseCommand):
    help = (
        "Empty the read models of the given projections (default: all) and replay every event "
        "into them in position order. Appends wait until it finishes."
    )

    def add_arguments(self, parser):
        parser.add_argument("projections", nargs="*", metavar="NAME", help="Projection names.")
        parser.add_argument(
            "--batch-size", type=int, default=None, help="Events read per query (default: setting)."
        )
        parser.add_argument(
            "--list", action="store_true", help="List the registered projections and exit."
        )

    def handle(self, *args, projections, batch_size, list, verbosity, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        chosen = selected_projections(projections)
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
