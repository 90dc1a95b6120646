from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Webhooks: the shop's own systems hear about public events, signed (Standard Webhooks)."""

    name = "webhooks"

    def ready(self) -> None:
        from eventstore.api import register_projection, register_subscriber, signals
        from webhooks.handlers import WebhookDispatcher, deliver_due_on_worker_pass
        from webhooks.projections import EndpointProjection

        register_projection(EndpointProjection())
        register_subscriber(WebhookDispatcher())
        signals.worker_pass.connect(
            deliver_due_on_worker_pass, dispatch_uid="webhooks.handlers.deliver_due"
        )
