from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """The inventory service: products, stock and reservations."""

    name = "inventory"

    def ready(self) -> None:
        from eventstore.api import register_projection, register_subscriber, signals
        from inventory.handlers import InventoryRequestHandler
        from inventory.metrics import count_stock_adjustments
        from inventory.projections import ProductStockProjection, ReservationProjection

        register_projection(ProductStockProjection())
        register_projection(ReservationProjection())
        register_subscriber(InventoryRequestHandler())
        signals.events_recorded.connect(
            count_stock_adjustments, dispatch_uid="inventory.metrics.count_stock_adjustments"
        )
