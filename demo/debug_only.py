"""The guard of the demo's management commands: they create accounts whose passwords anyone
can read in this repository, so they run only on a local machine (DEBUG on) unless forced."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class DebugOnlyCommand(BaseCommand):
    """A command that takes `--force` and, without it, refuses to run with DEBUG off before
    `run` does anything."""

    force_help = "Run even with DEBUG off."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help=self.force_help)

    def handle(self, *args, force, verbosity, **options):
        if not settings.DEBUG and not force:
            command = type(self).__module__.rsplit(".", 1)[-1]
            raise CommandError(
                f"{command} creates accounts with known passwords, so it runs only with DEBUG on "
                "(a local machine). Pass --force to run it anyway."
            )
        self.run(verbosity)

    def run(self, verbosity: int) -> None:
        """What the command does, once allowed to run."""
        raise NotImplementedError
