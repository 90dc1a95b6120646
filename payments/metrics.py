"""Payments' Prometheus series: how long each call to the payment provider takes.

A call is timed where it is made (`payments.services`), whatever happens to the outcome's
append afterwards: each observation is one real call to the provider.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Histogram

gateway_seconds = Histogram(
    "payments_gateway_seconds",
    "Seconds a payment provider call took, by operation (charge, refund, find_charge) and outcome.",
    ["operation", "outcome"],
)


class GatewayCall:
    """The outcome of one timed call; the caller names it ("approved", "declined", ...)."""

    outcome = "ok"


@contextmanager
def gateway_timed(operation: str) -> Iterator[GatewayCall]:
    """Time one provider call; an exception is recorded as its class name (e.g. GatewayTimeout)."""
    call = GatewayCall()
    started = time.perf_counter()
    try:
        yield call
    except Exception as error:
        call.outcome = type(error).__name__
        raise
    finally:
        gateway_seconds.labels(operation=operation, outcome=call.outcome).observe(
            time.perf_counter() - started
        )
