from django.apps import AppConfig
from django.core.signals import setting_changed


def forget_sender(setting: str, **kwargs) -> None:
    """Build the sender anew when a test overrides NOTIFICATIONS_SENDER."""
    if setting == "NOTIFICATIONS_SENDER":
        from notifications.sender import get_sender

        get_sender.cache_clear()


class NotificationsConfig(AppConfig):
    """The notifications service: tells customers about their orders."""

    name = "notifications"

    def ready(self) -> None:
        from eventstore.projections import register_projection
        from eventstore.subscriptions import register_subscriber
        from notifications.handlers import OrderOutcomeNotifier
        from notifications.projections import SentNotificationProjection

        register_projection(SentNotificationProjection())
        register_subscriber(OrderOutcomeNotifier())
        setting_changed.connect(forget_sender, dispatch_uid="notifications.sender.forget_sender")
