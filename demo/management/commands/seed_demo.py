"""Create the demo accounts, their API tokens and the demo catalogue, once."""

from demo import report
from demo.debug_only import DebugOnlyCommand
from demo.seeding import LOW_STOCK_PRODUCT, SeedResult, seed_demo


def existed_lines(what: str, items, attribute: str, unchanged: str) -> list[str]:
    """Which of `items` this run created, and which already existed (left as they were)."""
    created = [getattr(item, attribute) for item in items if item.created]
    existing = [getattr(item, attribute) for item in items if not item.created]
    lines = []
    if created:
        lines.append(f"{what} created: {', '.join(created)}.")
    if existing:
        lines.append(f"{what} already there ({unchanged}): {', '.join(existing)}.")
    return lines


class Command(DebugOnlyCommand):
    help = (
        "Create the demo data once: a staff user admin, customers alice and bob (each with a "
        "known password and an API token) and a catalogue of products with stock. A second run "
        "creates nothing and changes nothing; it prints the same table. Needs DEBUG on (or "
        "--force): the passwords are printed and written in this repository."
    )

    force_help = "Run even with DEBUG off (the accounts' passwords are public)."

    def run(self, verbosity: int) -> None:
        result = seed_demo()
        self.write_result(result, verbosity)

    def write_result(self, result: SeedResult, verbosity: int) -> None:
        """The accounts table (always), then the catalogue and what already existed."""
        self.stdout.write("Demo accounts (for this machine only: the passwords are public):")
        self.stdout.write(report.accounts_table(result.accounts))
        if verbosity >= 1:
            for line in existed_lines(
                "Accounts", result.accounts, "username", "password and token unchanged"
            ):
                self.stdout.write(line)
            self.stdout.write("")
            self.stdout.write("Demo catalogue:")
            self.stdout.write(report.products_table(result.products))
            for line in existed_lines("Products", result.products, "product_id", "unchanged"):
                self.stdout.write(line)
            low = next((p for p in result.products if p.product_id == LOW_STOCK_PRODUCT), None)
            if low is not None:
                self.stdout.write(
                    f"{low.product_id} has {low.available} units available: "
                    f"order {low.available + 1} to see a shortage."
                )
            self.stdout.write("")
            self.stdout.write(
                "API calls send `Authorization: Token <API token>`; /admin/ takes admin's "
                "password.\n`manage.py demo` places orders for alice and prints what happened."
            )
