from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """The orders service: orders, their fulfilment saga, and the catalogue they may name."""

    name = "orders"

    def ready(self) -> None:
        from eventstore.api import (
            register_collector,
            register_projection,
            register_subscriber,
            register_upcaster,
            signals,
        )
        from httpapi.representations import register_representation
        from orders import events
        from orders.handlers import FulfilmentSagaHandler, expire_sagas_on_worker_pass
        from orders.metrics import SagaStateCollector, count_final_orders
        from orders.projections import CatalogProjection, OrderProjection, SagaProjection

        # Events stored before payment tokens were vaulted read with the token masked.
        register_upcaster(events.ORDER_CREATED, 1, events.order_created_v1_to_v2)
        register_upcaster(events.PAYMENT_REQUESTED, 1, events.payment_requested_v1_to_v2)
        register_projection(OrderProjection())
        register_projection(SagaProjection())
        register_projection(CatalogProjection())
        register_subscriber(FulfilmentSagaHandler())
        signals.worker_pass.connect(
            expire_sagas_on_worker_pass, dispatch_uid="orders.handlers.expire_sagas"
        )
        signals.events_recorded.connect(
            count_final_orders, dispatch_uid="orders.metrics.count_final_orders"
        )
        register_collector(SagaStateCollector())
        register_representation("order", _order_representation)


def _order_representation(order_id: str) -> dict | None:
    """The order as `GET /api/orders/{id}/` shows it (for webhooks), or None."""
    from orders.models import OrderSummary
    from orders.serializers import OrderOutputSerializer

    order = OrderSummary.objects.filter(order_id=order_id).first()
    return None if order is None else OrderOutputSerializer(order).data
