"""Traces are off unless the OTEL_* environment names an exporter; on, a process's start-up
installs the SDK and the instrumentations."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from config import telemetry
from eventstore.observability import tracing

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("environment", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": " otlp , console "}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, ["otlp"]),
    ],
)
def test_the_environment_names_the_exporters(monkeypatch, environment, names):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert telemetry.exporter_names() == names


def test_exporters_are_found_by_their_standard_names(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)

    assert isinstance(telemetry.span_exporter("console"), ConsoleSpanExporter)
    assert isinstance(telemetry.span_exporter("otlp"), OTLPSpanExporter)
    with pytest.raises(RuntimeError, match="no span exporter 'zipkin'"):
        telemetry.span_exporter("zipkin")


def test_without_an_exporter_setup_changes_nothing(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)

    assert telemetry.setup() is False
    assert not tracing.enabled()


PROBE = """
import django
from config.telemetry import setup
assert setup() and setup()
django.setup()
from django.conf import settings
from eventstore.observability import tracing
print(settings.MIDDLEWARE[0])
with tracing.span("probe", {"probe.answer": 42}):
    pass
"""


def test_with_the_console_exporter_a_process_prints_its_spans_with_the_service_name():
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "orders-probe",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    middleware, _, printed = result.stdout.partition("\n")
    assert (
        middleware
        == "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
    )
    span = json.loads(printed)
    assert span["name"] == "probe"
    assert span["attributes"] == {"probe.answer": 42}
    assert span["resource"]["attributes"]["service.name"] == "orders-probe"
