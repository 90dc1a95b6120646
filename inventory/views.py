"""The inventory API: products and stock for everyone signed in; commands for staff."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from eventstore.api import (
    NOT_FOUND,
    STAFF_ONLY,
    UNPROCESSABLE,
    VALIDATION_ERROR,
    DetailOutputSerializer,
    InputSerializersMixin,
    SuccessOutputSerializer,
    command_metadata,
    idempotency_key,
    idempotency_key_parameter,
    validated,
)
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

STAFF_ACTIONS = frozenset({"create", "restock", "reserve", "release"})


def _product_answer(product_id: str, status_code: int = status.HTTP_200_OK) -> Response:
    product = ProductStock.objects.get(pk=product_id)
    return Response(ProductOutputSerializer(product).data, status=status_code)


@extend_schema_view(
    list=extend_schema(summary="List products with their stock"),
    retrieve=extend_schema(
        summary="One product with its stock",
        responses={200: ProductOutputSerializer, 404: NOT_FOUND},
    ),
)
class InventoryViewSet(
    InputSerializersMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Products with their price and stock. Staff create and restock products, and reserve and
    release stock for orders (the order saga does the same through events)."""

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
    lookup_value_regex = "[A-Za-z0-9_-]{1,64}"

    def get_permissions(self):
        if self.action in STAFF_ACTIONS:
            return [permissions.IsAdminUser()]
        return super().get_permissions()

    @extend_schema(
        summary="Create a product (staff)",
        request=ProductCreateInputSerializer,
        responses={
            201: ProductOutputSerializer,
            400: VALIDATION_ERROR,
            403: STAFF_ONLY,
            409: OpenApiResponse(description="A product with this product_id exists already."),
        },
    )
    def create(self, request):
        data = validated(ProductCreateInputSerializer, request.data)
        try:
            product_create(**data, metadata=command_metadata(request))
        except ProductAlreadyExists as error:
            return Response({"product_id": [str(error)]}, status=status.HTTP_409_CONFLICT)
        return _product_answer(data["product_id"], status.HTTP_201_CREATED)

    @extend_schema(
        summary="Add received units to a product (staff)",
        request=RestockInputSerializer,
        parameters=[idempotency_key_parameter],
        responses={
            200: ProductOutputSerializer,
            400: VALIDATION_ERROR,
            403: STAFF_ONLY,
            404: NOT_FOUND,
            422: OpenApiResponse(
                DetailOutputSerializer,
                description="The Idempotency-Key was used before with another quantity.",
            ),
        },
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def restock(self, request, product_id=None):
        data = validated(RestockInputSerializer, request.data)
        try:
            stock_add(
                product_id=product_id,
                quantity=data["quantity"],
                idempotency_key=idempotency_key(request),
                metadata=command_metadata(request),
            )
        except ProductNotFound as error:
            return Response({"detail": str(error)}, status=status.HTTP_404_NOT_FOUND)
        except IdempotencyKeyReused as error:
            return Response({"detail": str(error)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        return _product_answer(product_id)

    @extend_schema(
        summary="Reserve stock for an order, all lines or none (staff)",
        request=ReserveInputSerializer,
        responses={
            200: ReservationOutputSerializer,
            400: VALIDATION_ERROR,
            403: STAFF_ONLY,
            409: ReservationFailedOutputSerializer,
            422: UNPROCESSABLE,
        },
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def reserve(self, request):
        data = validated(ReserveInputSerializer, request.data)
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

    @extend_schema(
        summary="Release a reservation's stock (staff)",
        request=ReleaseInputSerializer,
        responses={
            200: SuccessOutputSerializer,
            400: VALIDATION_ERROR,
            403: STAFF_ONLY,
            404: NOT_FOUND,
            409: OpenApiResponse(
                DetailOutputSerializer, description="The reservation was committed (sold)."
            ),
        },
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def release(self, request):
        data = validated(ReleaseInputSerializer, request.data)
        try:
            stock_release(
                reservation_id=data["reservation_id"],
                metadata=command_metadata(request, data["reservation_id"]),
            )
        except ReservationNotFound as error:
            return Response({"detail": str(error)}, status=status.HTTP_404_NOT_FOUND)
        except ReservationStateError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response({"success": True})
