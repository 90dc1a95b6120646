"""The payments API: staff only (customers see their payments through their orders)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status
from rest_framework.response import Response

from httpapi.caller import command_metadata
from httpapi.errors import ErrorAnswer
from httpapi.schema import (
    NOT_FOUND,
    STAFF_ONLY,
    SuccessOutputSerializer,
    staff_command,
)
from httpapi.viewsets import ServiceViewSet
from payments.aggregates import Payment
from payments.filters import PaymentFilter
from payments.gateway import GatewayTimeout
from payments.models import PaymentSummary
from payments.serializers import (
    ChargeFailedOutputSerializer,
    ChargeInputSerializer,
    ChargeOutputSerializer,
    PaymentOutputSerializer,
    RefundInputSerializer,
)
from payments.services import payment_charge, payment_refund


@extend_schema_view(
    list=extend_schema(
        summary="List payments (staff)",
        responses={200: PaymentOutputSerializer(many=True), 403: STAFF_ONLY},
    ),
    retrieve=extend_schema(
        summary="One payment (staff)",
        responses={200: PaymentOutputSerializer, 403: STAFF_ONLY},
    ),
)
class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """Payments and their outcomes; staff charge and refund (the order saga does the same
    through events)."""

    # The gateway did not answer: nothing was recorded, and the charge may be retried later.
    error_answers = {
        GatewayTimeout: ErrorAnswer(504, body={"success": False, "reason": "gateway_timeout"})
    }

    queryset = PaymentSummary.objects.all()
    serializer_class = PaymentOutputSerializer
    permission_classes = [permissions.IsAdminUser]
    filterset_class = PaymentFilter
    input_serializers = {"charge": ChargeInputSerializer, "refund": RefundInputSerializer}
    lookup_field = "payment_id"

    @staff_command(
        summary="Charge a customer once per payment_id (staff)",
        responses={
            200: ChargeOutputSerializer,
            402: ChargeFailedOutputSerializer,
            504: OpenApiResponse(
                ChargeFailedOutputSerializer,
                description="The gateway did not answer; nothing was recorded, retry later.",
            ),
        },
    )
    def charge(self, request):
        data = self.validated_input()
        payment = payment_charge(**data, metadata=command_metadata(request, data["payment_id"]))
        if payment.status == Payment.FAILED:
            body = {"success": False, "reason": payment.reason}
            return Response(body, status=status.HTTP_402_PAYMENT_REQUIRED)
        return Response({"success": True, "transaction_id": payment.transaction_id})

    @staff_command(
        summary="Refund a charge once (staff)",
        responses={200: SuccessOutputSerializer, 404: NOT_FOUND},
    )
    def refund(self, request):
        data = self.validated_input()
        payment_id = (
            PaymentSummary.objects.filter(transaction_id=data["transaction_id"])
            .values_list("payment_id", flat=True)
            .first()
        )
        if payment_id is None:
            detail = f"No payment has transaction id {data['transaction_id']!r}."
            return Response({"detail": detail}, status=status.HTTP_404_NOT_FOUND)
        # Only processed payments have a transaction id, so this payment is refundable.
        payment_refund(payment_id=payment_id, metadata=command_metadata(request, payment_id))
        return Response({"success": True})
