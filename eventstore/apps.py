from django.apps import AppConfig


class EventStoreConfig(AppConfig):
    """Connects the event store's own projection and the after-commit subscriber dispatch."""

    name = "eventstore"
    verbose_name = "Event store"

    def ready(self) -> None:
        from eventstore import signals
        from eventstore.projections import StreamProjection, register_projection
        from eventstore.subscriptions import dispatch_committed

        register_projection(StreamProjection())
        signals.events_committed.connect(
            dispatch_committed, dispatch_uid="eventstore.subscriptions.dispatch_committed"
        )
