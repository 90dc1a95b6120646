from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """The orders service app."""

    name = "orders"
