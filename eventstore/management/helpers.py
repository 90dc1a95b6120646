"""What management commands share: picking registered parts by name, progress on long runs,
and listing what a --dry-run would do."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from eventstore import projections
from eventstore.projections import Projection
from eventstore.registry import Registry
from eventstore.replay import DEFAULT_PACE, check_pace

T = TypeVar("T")


def selected(registry: Registry[T], names: Iterable[str] | None) -> list[T]:
    """The named parts of the registry (all when none are named), or a CommandError naming
    the unknown ones."""
    try:
        return registry.get(names or None)
    except registry.error as error:
        raise CommandError(str(error)) from error


def add_dry_run(parser, help: str) -> None:
    """Add --dry-run: list what the command would change, change nothing."""
    parser.add_argument("--dry-run", action="store_true", help=help)


def write_dry_run(command: BaseCommand, lines: Iterable[str], summary: str) -> None:
    """Write what a --dry-run would change, one line each, then the summary line."""
    for line in lines:
        command.stdout.write(line)
    command.stdout.write(summary)


def progress_bar(total: int, verbosity: int, description: str, unit: str = "ev") -> tqdm:
    """A tqdm bar on stderr, hidden at verbosity 0."""
    return tqdm(
        total=total,
        unit=unit,
        desc=description,
        file=sys.stderr,
        disable=verbosity == 0,
        dynamic_ncols=True,
    )


def show_lag(bar: tqdm):
    """A callback that shows on the bar how many positions the copies are behind the log's
    head while they follow it (and grows the bar as the log does)."""

    def lag(behind: int) -> None:
        bar.total = max(bar.total or 0, bar.n + behind)
        bar.set_postfix(behind=behind, refresh=False)

    return lag


class ProjectionsCommand(BaseCommand):
    """A command that replays the log into the projections it names (default: all), reading
    --batch-size events per query; online (unless --in-place), at --pace."""

    def add_arguments(self, parser):
        parser.add_argument("projections", nargs="*", metavar="NAME", help="Projection names.")
        parser.add_argument(
            "--batch-size", type=int, default=None, help="Events read per query (default: setting)."
        )
        parser.add_argument(
            "--pace",
            type=float,
            default=None,
            help="After each batch replayed beside the live read models, sleep PACE times as "
            f"long as it took, leaving CPU to the orders (default {DEFAULT_PACE:g}; 0: flat out).",
        )

    @staticmethod
    def pace(pace: float | None, in_place: bool) -> float:
        """The --pace to replay at, once checked (CommandError otherwise)."""
        if pace is None:
            return 0.0 if in_place else DEFAULT_PACE
        if in_place:
            raise CommandError("--pace paces an online replay: it does not go with --in-place")
        try:
            return check_pace(pace)
        except ValueError as error:
            raise CommandError(f"--{error}") from error  # "--pace must be ..."

    @staticmethod
    def chosen(names: Iterable[str], batch_size: int | None) -> list[Projection]:
        """The named projections, once the options are checked (CommandError otherwise)."""
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        return selected(projections.registry, names)
