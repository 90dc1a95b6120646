from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """The notifications service: tells customers about their orders, by email and Web Push."""

    name = "notifications"

    def ready(self) -> None:
        from eventstore.api import (
            register_projection,
            register_subscriber,
            register_upcaster,
            signals,
        )
        from notifications import events
        from notifications.handlers import (
            NotificationDeliverer,
            NotificationPusher,
            OrderOutcomeNotifier,
        )
        from notifications.metrics import count_deliveries
        from notifications.projections import (
            OrderOwnerProjection,
            PushSubscriptionProjection,
            SentNotificationProjection,
        )

        register_upcaster(events.NOTIFICATION_SENT, 1, events.notification_sent_v1_to_v2)
        register_projection(SentNotificationProjection())
        register_projection(OrderOwnerProjection())
        register_projection(PushSubscriptionProjection())
        register_subscriber(OrderOutcomeNotifier())
        register_subscriber(NotificationDeliverer())
        register_subscriber(NotificationPusher())
        signals.events_recorded.connect(
            count_deliveries, dispatch_uid="notifications.metrics.count_deliveries"
        )
