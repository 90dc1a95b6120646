"""The inventory API: products and stock for everyone signed in; commands for staff."""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, permissions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from eventstore.api import Event, EventOutputSerializer, PositionCursorPagination
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
from inventory import events
from inventory.aggregates import (
    AdjustmentPastZero,
    ProductAlreadyExists,
    ProductNotFound,
    Reservation,
    ReservationNotFound,
    ReservationStateError,
)
from inventory.filters import ProductStockFilter
from inventory.models import ProductStock
from inventory.serializers import (
    REASON_MAX_LENGTH,
    AdjustInputSerializer,
    ProductCreateInputSerializer,
    ProductOutputSerializer,
    ProductUpdateInputSerializer,
    ReasonInputSerializer,
    ReleaseInputSerializer,
    ReservationFailedOutputSerializer,
    ReservationOutputSerializer,
    ReserveInputSerializer,
    RestockInputSerializer,
)
from inventory.services import (
    IdempotencyKeyReused,
    product_create,
    product_discontinue,
    product_restore,
    product_update,
    stock_add,
    stock_adjust,
    stock_release,
    stock_reserve,
)


def _product_answer(product_id: str, status_code: int = status.HTTP_200_OK) -> Response:
    product = ProductStock.objects.get(pk=product_id)
    return Response(ProductOutputSerializer(product).data, status=status_code)


def validated_query(serializer_class, request):
    """The request's query parameters as `serializer_class` validates them, or a 400."""
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


reason_parameter = OpenApiParameter(
    "reason",
    {"type": "string", "maxLength": REASON_MAX_LENGTH},
    OpenApiParameter.QUERY,
    required=False,
    description="Why (kept in the product's history).",
)


@extend_schema_view(
    list=extend_schema(
        summary="List products with their stock",
        description="Customers see products on sale; staff see discontinued ones too.",
    ),
    retrieve=extend_schema(summary="One product with its stock"),
)
class InventoryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """Products with their price, status and stock. Staff create products, change their price
    and name, discontinue and restore them, restock and correct their stock, read their
    history, and reserve and release stock for orders (the order saga does the same through
    events)."""

    error_answers = {
        ProductAlreadyExists: ErrorAnswer(409, field="product_id"),
        ProductNotFound: ErrorAnswer(404),
        AdjustmentPastZero: ErrorAnswer(409, field="quantity"),
        IdempotencyKeyReused: ErrorAnswer(422),
        ReservationNotFound: ErrorAnswer(404),
        ReservationStateError: ErrorAnswer(409),
    }

    queryset = ProductStock.objects.all()
    serializer_class = ProductOutputSerializer
    filterset_class = ProductStockFilter
    input_serializers = {
        "create": ProductCreateInputSerializer,
        "partial_update": ProductUpdateInputSerializer,
        "restore": ReasonInputSerializer,
        "restock": RestockInputSerializer,
        "adjust": AdjustInputSerializer,
        "reserve": ReserveInputSerializer,
        "release": ReleaseInputSerializer,
    }
    lookup_field = "product_id"

    def get_permissions(self):
        if self.action in ("create", "partial_update", "destroy"):
            return [permissions.IsAdminUser()]
        return super().get_permissions()

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.request.user.is_staff:
            return queryset
        return queryset.on_sale()

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

    @extend_schema(
        summary="Change a product's price and name (staff)",
        description="Orders already placed keep the price their stock was reserved at; an order "
        "reserved after the change pays the new price. A value the product has already writes "
        "nothing. PUT is not offered.",
        responses={200: ProductOutputSerializer, 400: VALIDATION_ERROR, 403: STAFF_ONLY},
    )
    def partial_update(self, request, product_id=None):
        data = self.validated_input()
        product_update(product_id=product_id, **data, metadata=command_metadata(request))
        return _product_answer(product_id)

    @extend_schema(
        summary="Discontinue a product (staff)",
        description="New orders for it are refused as out of stock; its stock, the "
        "reservations already made and its history stay. Discontinuing it again writes nothing.",
        parameters=[reason_parameter],
        responses={200: ProductOutputSerializer, 400: VALIDATION_ERROR, 403: STAFF_ONLY},
    )
    def destroy(self, request, product_id=None):
        data = validated_query(ReasonInputSerializer, request)
        product_discontinue(product_id=product_id, **data, metadata=command_metadata(request))
        return _product_answer(product_id)

    @staff_command(
        detail=True,
        summary="Put a discontinued product back on sale (staff)",
        responses={200: ProductOutputSerializer, 404: NOT_FOUND},
    )
    def restore(self, request, product_id=None):
        data = self.validated_input()
        product_restore(product_id=product_id, **data, metadata=command_metadata(request))
        return _product_answer(product_id)

    @staff_command(
        detail=True,
        summary="Correct a product's available stock, with a reason (staff)",
        description="Adds or removes available units (damage, loss, a recount); reserved and "
        "sold units are never touched, and available stock never goes below zero.",
        parameters=[idempotency_key_parameter],
        responses={
            200: ProductOutputSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(
                description="It would remove more units than are available; nothing is written."
            ),
            422: OpenApiResponse(
                DetailOutputSerializer,
                description="The Idempotency-Key was used before for another correction.",
            ),
        },
    )
    def adjust(self, request, product_id=None):
        data = self.validated_input()
        stock_adjust(
            product_id=product_id,
            **data,
            idempotency_key=idempotency_key(request),
            metadata=command_metadata(request),
        )
        return _product_answer(product_id)

    @extend_schema(
        summary="A product's history: every event of its stream, oldest first (staff)",
        filters=False,
        responses={
            200: EventOutputSerializer(many=True),
            400: OpenApiResponse(description="A page_size that is not a whole number."),
            404: OpenApiResponse(
                DetailOutputSerializer, description="No such product, page or cursor."
            ),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        permission_classes=[permissions.IsAdminUser],
        filter_backends=[],
        pagination_class=PositionCursorPagination,
    )
    def history(self, request, product_id=None):
        product = self.get_object()
        rows = Event.objects.filter(aggregate_type=events.PRODUCT, aggregate_id=product.product_id)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(EventOutputSerializer(page, many=True).data)

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
