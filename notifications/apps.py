from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """The notifications service: tells customers about their orders, by email."""

    name = "notifications"

    def ready(self) -> None:
        from eventstore.projections import register_projection
        from eventstore.subscriptions import register_subscriber
        from notifications.handlers import NotificationDeliverer, OrderOutcomeNotifier
        from notifications.projections import SentNotificationProjection

        register_projection(SentNotificationProjection())
        register_subscriber(OrderOutcomeNotifier())
        register_subscriber(NotificationDeliverer())
