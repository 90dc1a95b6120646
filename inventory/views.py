"""The inventory API: products and stock for everyone signed in; commands for staff."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status
from rest_framework.response import Response

from httpapi.caller import command_metadata
from httpapi.errors import ErrorAnswer
from httpapi.headers import idempotency_key, idempotency_key_parameter
from httpapi.schema import (
    NOT_FOUND,
    STAFF_ONLY,
    UNPROCESSABLE,
    VALIDATION_ERROR,
    DetailOutputSerializer,
    SuccessOutputSerializer,
    staff_command,
)
from httpapi.viewsets import ServiceViewSet
from inventory.aggregates import (
    ProductAlreadyExists,
    ProductNotFound,
    Reservation,
    ReservationNotFound,
    ReservationStateError,
)
from inventory.filters import ProductStockFilter
from inventory.models import ProductStock
from inventory.serializers import (
    ProductCreateInputSerializer,
    ProductOutputSerializer,
    ReleaseInputSerializer,
    ReservationFailedOutputSerializer,
    ReservationOutputSerializer,
    ReserveInputSerializer,
    RestockInputSerializer,
)
from inventory.services import (
    IdempotencyKeyReused,
    product_create,
    stock_add,
    stock_release,
    stock_reserve,
)


def _product_answer(product_id: str, status_code: int = status.HTTP_200_OK) -> Response:
    product = ProductStock.objects.get(pk=product_id)
    return Response(ProductOutputSerializer(product).data, status=status_code)


@extend_schema_view(
    list=extend_schema(summary="List products with their stock"),
    retrieve=extend_schema(summary="One product with its stock"),
)
class InventoryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """Products with their price and stock. Staff create and restock products, and reserve and
    release stock for orders (the order saga does the same through events)."""

    error_answers = {
        ProductAlreadyExists: ErrorAnswer(409, field="product_id"),
        ProductNotFound: ErrorAnswer(404),
        IdempotencyKeyReused: ErrorAnswer(422),
        ReservationNotFound: ErrorAnswer(404),
        ReservationStateError: ErrorAnswer(409),
    }

    queryset = ProductStock.objects.all()
    serializer_class = ProductOutputSerializer
    filterset_class = ProductStockFilter
    input_serializers = {
        "create": ProductCreateInputSerializer,
        "restock": RestockInputSerializer,
        "reserve": ReserveInputSerializer,
        "release": ReleaseInputSerializer,
    }
    lookup_field = "product_id"

    def get_permissions(self):
        if self.action == "create":
            return [permissions.IsAdminUser()]
        return super().get_permissions()

    @extend_schema(
        summary="Create a product (staff)",
        responses={
            201: ProductOutputSerializer,
            400: VALIDATION_ERROR,
            403: STAFF_ONLY,
            409: OpenApiResponse(description="A product with this product_id exists already."),
        },
    )
    def create(self, request):
        data = self.validated_input()
        product_create(**data, metadata=command_metadata(request))
        return _product_answer(data["product_id"], status.HTTP_201_CREATED)

    @staff_command(
        detail=True,
        summary="Add received units to a product (staff)",
        parameters=[idempotency_key_parameter],
        responses={
            200: ProductOutputSerializer,
            404: NOT_FOUND,
            422: OpenApiResponse(
                DetailOutputSerializer,
                description="The Idempotency-Key was used before with another quantity.",
            ),
        },
    )
    def restock(self, request, product_id=None):
        data = self.validated_input()
        stock_add(
            product_id=product_id,
            quantity=data["quantity"],
            idempotency_key=idempotency_key(request),
            metadata=command_metadata(request),
        )
        return _product_answer(product_id)

    @staff_command(
        summary="Reserve stock for an order, all lines or none (staff)",
        responses={
            200: ReservationOutputSerializer,
            409: ReservationFailedOutputSerializer,
            422: UNPROCESSABLE,
        },
    )
    def reserve(self, request):
        data = self.validated_input()
        reservation = stock_reserve(
            reservation_id=data["reservation_id"],
            items=data["items"],
            metadata=command_metadata(request, data["reservation_id"]),
        )
        if reservation.status == Reservation.FAILED:
            body = {"success": False, "reason": reservation.reason, "details": reservation.details}
            return Response(body, status=status.HTTP_409_CONFLICT)
        if not reservation.lines:
            body = {"success": False, "reason": "released", "details": []}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(
            {"success": True, "reservation_id": reservation.id, "lines": reservation.lines}
        )

    @staff_command(
        summary="Release a reservation's stock (staff)",
        responses={
            200: SuccessOutputSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(
                DetailOutputSerializer, description="The reservation was committed (sold)."
            ),
        },
    )
    def release(self, request):
        data = self.validated_input()
        stock_release(
            reservation_id=data["reservation_id"],
            metadata=command_metadata(request, data["reservation_id"]),
        )
        return Response({"success": True})
