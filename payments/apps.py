from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """The payments service app."""

    name = "payments"
