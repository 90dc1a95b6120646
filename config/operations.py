"""The admin's operations page: subscriber lag and errors, the running transactions that hold
subscribers back (PostgreSQL), sagas by state, the last hour's
orders by outcome. It reads the log and orders' read models, so it lives in config, the one
package that may see every app (eventstore may import no service)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from eventstore.follower.subscriptions import lags
from eventstore.recorders import recorder
from orders.models import OrderSummary, SagaSummary

# The outcome chart: one horizontal bar per outcome, the longest as wide as BAR_MAX_WIDTH.
BAR_HEIGHT = 22
BAR_GAP = 6
BAR_MAX_WIDTH = 400
LABEL_WIDTH = 220
OUTCOME_WINDOW = timedelta(hours=1)


def outcome_bars(counts: dict[str, int]) -> list[dict[str, object]]:
    """The chart's bars, completed first, then cancellations by reason and refunds, then open
    orders:
    each with its outcome, count and geometry (SVG user units)."""

    def rank(outcome: str) -> tuple[int, str]:
        if outcome == "completed":
            return (0, outcome)
        return (2, outcome) if outcome == "open" else (1, outcome)

    largest = max(counts.values(), default=0)
    bars = []
    for index, outcome in enumerate(sorted(counts, key=rank)):
        # A bar for one order stays visible however large the largest is.
        width = max(1, round(BAR_MAX_WIDTH * counts[outcome] / largest))
        y = index * (BAR_HEIGHT + BAR_GAP)
        bars.append(
            {
                "outcome": outcome,
                # completed, cancelled, refunded or open: its colour
                "kind": outcome.split(":")[0],
                "count": counts[outcome],
                "width": width,
                "y": y,
                "text_y": y + BAR_HEIGHT - 7,
                "count_x": LABEL_WIDTH + width + 6,
            }
        )
    return bars


def operations_view(request: HttpRequest) -> HttpResponse:
    """Staff only (wrapped in `admin.site.admin_view` by the URLconf): one lag query per
    subscriber, one of pg_stat_activity on PostgreSQL, and one grouped query each for sagas
    and orders, whatever their number."""
    since = timezone.now() - OUTCOME_WINDOW
    bars = outcome_bars(OrderSummary.objects.filter(created_at__gte=since).outcome_counts())
    context = {
        **admin.site.each_context(request),
        "title": "Operations",
        "subscriber_lags": lags(),
        "held_by": recorder().held_by(),
        "held_limit": settings.HEALTH_MAX_HELD_SECONDS,
        "saga_states": SagaSummary.objects.state_counts(),
        "since": since,
        "bars": bars,
        "orders_total": sum(bar["count"] for bar in bars),
        "bar_height": BAR_HEIGHT,
        "label_width": LABEL_WIDTH,
        "chart_width": LABEL_WIDTH + BAR_MAX_WIDTH + 60,
        "chart_height": max(len(bars) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP, 0),
    }
    return TemplateResponse(request, "admin/operations.html", context)
