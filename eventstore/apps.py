from django.apps import AppConfig


class EventStoreConfig(AppConfig):
    """Connects the event store's own projection, its subscribers' lag and held-back gauges,
    the after-commit subscriber dispatch, the vault's housekeeping, the end of each request's
    log context, and the mapping of the database's lock timeouts to AppendTimeout."""

    name = "eventstore"
    verbose_name = "Event store"

    def ready(self) -> None:
        from django.core.signals import request_finished, setting_changed
        from django.db.backends.signals import connection_created

        from eventstore import signals
        from eventstore.follower.admission import backlog_seconds
        from eventstore.follower.dispatch import calls_owed, choose_again, dispatch_committed
        from eventstore.follower.effects import withdraw_on_append
        from eventstore.follower.subscriptions import lags
        from eventstore.observability.logs import end_request
        from eventstore.observability.metrics import (
            BacklogCollector,
            HeldFollowersCollector,
            SubscriberLagCollector,
            register_collector,
        )
        from eventstore.projections import StreamProjection, register_projection
        from eventstore.recorders import recorder
        from eventstore.store import event_store, install_append_timeouts
        from eventstore.vault import erase_expired_secrets_on_worker_pass

        register_projection(StreamProjection())
        register_collector(SubscriberLagCollector(lags))
        register_collector(HeldFollowersCollector(lambda: recorder().held_by()))
        register_collector(BacklogCollector(backlog_seconds))
        signals.events_committed.connect(
            dispatch_committed, dispatch_uid="eventstore.dispatch.dispatch_committed"
        )
        setting_changed.connect(choose_again, dispatch_uid="eventstore.dispatch.choose_again")
        event_store.calls_owed = calls_owed
        signals.events_recorded.connect(
            withdraw_on_append, dispatch_uid="eventstore.effects.withdraw_on_append"
        )
        signals.worker_pass.connect(
            erase_expired_secrets_on_worker_pass,
            dispatch_uid="eventstore.vault.erase_expired_secrets",
        )
        connection_created.connect(
            install_append_timeouts, dispatch_uid="eventstore.store.install_append_timeouts"
        )
        request_finished.connect(end_request, dispatch_uid="eventstore.logs.end_request")
