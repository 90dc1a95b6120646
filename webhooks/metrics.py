"""Webhooks' Prometheus series: delivery attempts by outcome."""

from __future__ import annotations

from prometheus_client import Counter

deliveries = Counter(
    "webhooks_delivery_total",
    "Webhook delivery attempts, by outcome (delivered, retry, failed, gone, refused).",
    ["outcome"],
)
