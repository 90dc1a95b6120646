"""OpenTelemetry traces, off unless the standard OTEL_* environment variables ask for them.

`setup()` runs at each process's start (manage.py, wsgi, asgi, Celery's worker and beat). When
OTEL_TRACES_EXPORTER names an exporter (`console`, `otlp`, or any installed exporter's entry
point name; several, comma-separated) and OTEL_SDK_DISABLED is not `true`, it installs the
SDK's tracer provider (service name and resource from OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES, sampler from OTEL_TRACES_SAMPLER, batching from OTEL_BSP_*), turns on
the Django, psycopg and Celery instrumentations and the event store's own spans
(`eventstore.observability.tracing`). Unset, or `none`, nothing is imported beyond the API and
no span is recorded: unlike the SDK's default (`otlp`), no exporter means off.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points

logger = logging.getLogger(__name__)

_provider = None


def exporter_names() -> list[str]:
    """The span exporters the environment asks for ([] when tracing is off)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")
    return [name.strip() for name in names if name.strip() and name.strip() != "none"]


def span_exporter(name: str):
    """The exporter registered under `name`. `otlp` is OTLP over http/protobuf (the protocol
    the specification makes the default; the grpc exporter is not installed)."""
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        name = "otlp_proto_grpc" if protocol == "grpc" else "otlp_proto_http"
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise RuntimeError(f"OTEL_TRACES_EXPORTER: no span exporter {name!r} is installed")
    return next(iter(found)).load()()


def setup() -> bool:
    """Trace this process when the environment asks for it (see the module); whether it is
    traced. Safe to call again: the second call changes nothing."""
    global _provider
    if _provider is not None:
        return True
    names = exporter_names()
    if not names:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from eventstore.observability import tracing

    provider = TracerProvider(resource=Resource.create())
    for name in names:
        # The batch processor's export thread is started again in a forked child (gunicorn's
        # and Celery's prefork workers) by the SDK itself.
        provider.add_span_processor(BatchSpanProcessor(span_exporter(name)))
    trace.set_tracer_provider(provider)
    tracing.configure(provider)
    DjangoInstrumentor().instrument(tracer_provider=provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    _provider = provider
    logger.info("Traces are exported to %s", ", ".join(names))
    return True
