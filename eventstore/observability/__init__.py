"""Watching the event store at work: Prometheus series (`metrics`), OpenTelemetry traces
(`tracing`), and the fields log records carry (`logs`)."""
