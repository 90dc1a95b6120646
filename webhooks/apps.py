from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Webhooks: the shop's own systems hear about public events, signed (Standard Webhooks)."""

    name = "webhooks"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from eventstore.api import register_subscriber, signals
        from webhooks.handlers import WebhookDispatcher, deliver_due_on_worker_pass
        from webhooks.models import Endpoint
        from webhooks.services import forget_enabled_endpoints

        register_subscriber(WebhookDispatcher())
        signals.worker_pass.connect(
            deliver_due_on_worker_pass, dispatch_uid="webhooks.handlers.deliver_due"
        )
        for signal in (post_save, post_delete):
            signal.connect(
                forget_enabled_endpoints, sender=Endpoint, dispatch_uid=f"webhooks.{signal}"
            )
