"""Re-encrypt every secret the vault holds under the newest key of VAULT_KEYS."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from eventstore.management.helpers import add_dry_run, progress_bar
from eventstore.models import VaultedSecret
from eventstore.vault import vault_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret the vault holds under the first key of VAULT_KEYS, in short "
        "batches, while the shop runs. Run it once every process has the new key first; the old "
        "keys may be removed from VAULT_KEYS once it reports none left to rotate. Safe to run "
        "again: secrets already under the first key are left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Secrets per transaction (default: 500)."
        )
        add_dry_run(parser, "Count the secrets that would be re-encrypted; change nothing.")

    def handle(self, *args, batch_size, dry_run, verbosity, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        now = timezone.now()
        total = VaultedSecret.objects.filter(erase_after__gt=now).count()
        if verbosity >= 1:
            self.stdout.write(f"Checking {total} secret(s) in the vault")
        with progress_bar(total, verbosity, "rotate", unit="secret") as bar:
            result = vault_rotate(
                batch_size=batch_size, dry_run=dry_run, progress=bar.update, now=now
            )
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        self.stdout.write(
            f"{result.rotated} secret(s) {verb} under the newest key, "
            f"{result.current} already under it."
        )
        if result.unreadable:
            self.stderr.write(
                self.style.WARNING(
                    f"{result.unreadable} secret(s) are not decrypted by any key of VAULT_KEYS: "
                    "they read as absent and are erased once their retention runs out."
                )
            )
