"""Observability: logs, metrics and traces (docs/OPERATIONS.md). Traces are off unless the
standard OTEL_* variables ask for them; config/telemetry.py reads those."""

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import DEBUG
from config.settings.env import env_flag

# Prometheus: django-prometheus's HTTP series (its app and outermost middleware are in
# config/settings/base.py; METRICS_DATABASE, its database series, in database.py).
# GET /metrics answers staff only (session or token) unless METRICS_PUBLIC is on.
METRICS_PUBLIC = env_flag("METRICS_PUBLIC")

# Logs: one JSON object per record (json, for log collectors) or readable lines (text). Records
# logged while a subscriber handles an event, or while a request is served, carry its fields
# (eventstore.logs): correlation_id, causation_id, event_position, subscriber, request_id.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or ("text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "eventstore.logs.LogContextFilter"}},
    "formatters": {
        "text": {
            "()": "eventstore.logs.TextFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Django's own loggers print through the root handler only (not twice).
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
