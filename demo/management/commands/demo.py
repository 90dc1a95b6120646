"""Run the order scenarios against the local database and print what every service recorded."""

import logging
from contextlib import contextmanager

from django.conf import settings
from django.core.management.base import CommandError

from demo import report
from demo.debug_only import DebugOnlyCommand
from demo.scenarios import (
    SCENARIOS,
    DemoError,
    ReplayResult,
    ScenarioResult,
    replay_and_compare,
    run_scenario,
)
from demo.seeding import seed_demo

CUSTOMER = "alice"


@contextmanager
def quiet_info_logs(quiet: bool):
    """Hold back INFO log lines (the simulated gateway's charges, the logged emails) while the
    demo prints its own account of them; warnings and errors still show."""
    previous = logging.root.manager.disable
    if quiet:
        logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)


class Command(DebugOnlyCommand):
    help = (
        "Place demo orders for alice through the services and print, for each, its final status, "
        "its event timeline and the stock and payment figures: a completed order, an inventory "
        "shortage, a declined card; then rebuild every read model from the log and compare. "
        "Creates the demo data first if needed and restocks what ran low, so it can be run "
        "again. Exits with an error when a scenario does not end as expected. -v 2 also shows "
        "the services' INFO logs. Needs DEBUG on (or --force), as seed_demo does."
    )

    force_help = "Run even with DEBUG off (it creates the demo accounts, with public passwords)."

    def run(self, verbosity: int) -> None:
        with quiet_info_logs(verbosity < 2):
            try:
                customer = seed_demo(check_passwords=False).account(CUSTOMER)
                self.stdout.write(
                    f"Orders are placed for {customer.username} (customer_id "
                    f"{customer.customer_id}) through order_place, as POST /api/orders/ does."
                )
                if settings.PAYMENTS_FAILURE_RATE:
                    self.stderr.write(
                        f"PAYMENTS_FAILURE_RATE is {settings.PAYMENTS_FAILURE_RATE:g}: the gateway "
                        "declines some charges, so the happy path may fail."
                    )
                results = []
                for scenario in SCENARIOS:
                    result = run_scenario(scenario, customer_id=customer.customer_id)
                    self.write_scenario(result, verbosity)
                    results.append(result)
                replayed = replay_and_compare()
            except DemoError as error:
                raise CommandError(str(error)) from error
        self.write_replay(replayed, verbosity)
        failures = [
            f"{result.scenario.key}. {problem}" for result in results for problem in result.problems
        ]
        if not replayed.identical:
            failures.append("d. the rebuilt read models differ from the ones they replaced")
        if failures:
            raise CommandError(
                "The demo did not end as expected:\n" + "\n".join(f"- {f}" for f in failures)
            )
        self.stdout.write("")
        self.stdout.write(f"All {len(SCENARIOS) + 1} scenarios ended as expected.")

    def write_scenario(self, result: ScenarioResult, verbosity: int) -> None:
        """Heading, outcome, and at verbosity >= 1 the timeline, stock and payment tables."""
        scenario, order = result.scenario, result.order
        self.stdout.write("")
        self.stdout.write(report.heading(f"{scenario.key}. {scenario.title}"))
        for product_id, units in result.topped_up.items():
            self.stdout.write(f"Restocked {product_id} with {units} units so the order can run.")
        self.stdout.write(f"Order {result.order_id}")
        outcome = f"Status: {order.status}"
        if order.cancel_reason:
            outcome += f" (reason: {order.cancel_reason})"
        if order.total_amount is not None:
            outcome += f", total {order.total_amount:.2f}"
        verdict = "as expected" if result.as_expected else "NOT as expected"
        self.stdout.write(f"{outcome} -- {verdict}")
        if verbosity >= 1:
            self.stdout.write("")
            self.stdout.write(f"Event timeline ({len(result.timeline)} events across all streams):")
            self.stdout.write(report.timeline_table(result.timeline))
            self.stdout.write("")
            self.stdout.write("Stock (before -> after):")
            self.stdout.write(report.stock_table(result.stock_before, result.stock_after))
            self.stdout.write("")
            self.stdout.write("Payment:")
            self.stdout.write(report.payment_table(result.payment))
            self.stdout.write("")
            self.stdout.write("Customer notified:")
            for notification in result.notifications:
                self.stdout.write(f"  {notification.channel}: {notification.message}")
        for problem in result.problems:
            self.stderr.write(f"Unexpected: {problem}")

    def write_replay(self, result: ReplayResult, verbosity: int) -> None:
        """The rebuild's figures, the per-read-model comparison and the verdict."""
        self.stdout.write("")
        self.stdout.write(
            report.heading("d. Replay: rebuild every read model from the log and compare")
        )
        if verbosity >= 1:
            self.stdout.write(report.replay_table(result))
            self.stdout.write("")
        rate = result.events / result.seconds if result.seconds > 0 else 0.0
        self.stdout.write(
            f"Replayed {result.events} events into {len(result.models)} read models "
            f"({result.rows} rows) in {result.seconds:.2f} s ({rate:,.0f} events/s)"
        )
        self.stdout.write(f"identical: {'yes' if result.identical else 'no'}")
        for model in result.models:
            for difference in model.differences:
                self.stderr.write(difference)
