from django.apps import AppConfig
from django.core.signals import setting_changed


def forget_gateway(setting: str, **kwargs) -> None:
    """Build the gateway anew when a test overrides one of its settings."""
    if setting.startswith("PAYMENTS_"):
        from payments.gateway import get_gateway

        get_gateway.cache_clear()


class PaymentsConfig(AppConfig):
    """The payments service: charges and refunds through the payment gateway."""

    name = "payments"

    def ready(self) -> None:
        from eventstore.api import (
            register_projection,
            register_subscriber,
            vault_describer_register,
        )
        from payments.events import PAYMENT_TOKEN_SECRET
        from payments.gateway import payment_token_described
        from payments.handlers import PaymentRequestHandler
        from payments.projections import PaymentProjection

        register_projection(PaymentProjection())
        register_subscriber(PaymentRequestHandler())
        # Only the gateway knows which card a token stands for; orders asks through the vault.
        vault_describer_register(kind=PAYMENT_TOKEN_SECRET, describe=payment_token_described)
        setting_changed.connect(forget_gateway, dispatch_uid="payments.gateway.forget_gateway")
