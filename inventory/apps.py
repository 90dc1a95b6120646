from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """The inventory service app."""

    name = "inventory"
