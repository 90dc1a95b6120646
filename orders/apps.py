from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """The orders service: orders, their fulfilment saga, and the catalogue they may name."""

    name = "orders"

    def ready(self) -> None:
        from eventstore import signals
        from eventstore.projections import register_projection
        from eventstore.subscriptions import register_subscriber
        from orders.handlers import FulfilmentSagaHandler, expire_sagas_on_worker_pass
        from orders.projections import CatalogProjection, OrderProjection, SagaProjection

        register_projection(OrderProjection())
        register_projection(SagaProjection())
        register_projection(CatalogProjection())
        register_subscriber(FulfilmentSagaHandler())
        signals.worker_pass.connect(
            expire_sagas_on_worker_pass, dispatch_uid="orders.handlers.expire_sagas"
        )
