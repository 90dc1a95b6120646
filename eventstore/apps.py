from django.apps import AppConfig


class EventStoreConfig(AppConfig):
    """Connects the event store's own projection, the after-commit subscriber dispatch and the
    vault's housekeeping."""

    name = "eventstore"
    verbose_name = "Event store"

    def ready(self) -> None:
        from eventstore import signals
        from eventstore.projections import StreamProjection, register_projection
        from eventstore.subscriptions import dispatch_committed
        from eventstore.vault import erase_expired_secrets_on_worker_pass

        register_projection(StreamProjection())
        signals.events_committed.connect(
            dispatch_committed, dispatch_uid="eventstore.subscriptions.dispatch_committed"
        )
        signals.worker_pass.connect(
            erase_expired_secrets_on_worker_pass,
            dispatch_uid="eventstore.vault.erase_expired_secrets",
        )
