from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """The payments service: charges and refunds through the payment gateway."""

    name = "payments"

    def ready(self) -> None:
        from eventstore.projections import register_projection
        from eventstore.subscriptions import register_subscriber
        from payments.handlers import PaymentRequestHandler
        from payments.projections import PaymentProjection

        register_projection(PaymentProjection())
        register_subscriber(PaymentRequestHandler())
