from django.apps import AppConfig


class EventStoreConfig(AppConfig):
    """Connects the event store's own projection, the after-commit subscriber dispatch, the
    vault's housekeeping, and the mapping of the database's lock timeouts to AppendTimeout."""

    name = "eventstore"
    verbose_name = "Event store"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from eventstore import signals
        from eventstore.projections import StreamProjection, register_projection
        from eventstore.store import install_append_timeouts
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
        connection_created.connect(
            install_append_timeouts, dispatch_uid="eventstore.store.install_append_timeouts"
        )
