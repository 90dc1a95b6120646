"""The orders API: customers place and read their own orders; staff act for anyone."""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from eventstore.dispatch import reactions_run_later
from eventstore.models import Event
from eventstore.serializers import EventOutputSerializer
from httpapi.caller import CustomerScopedMixin, actor_for, command_metadata, customer_id_for
from httpapi.errors import ErrorAnswer
from httpapi.headers import (
    PREFER_WAIT_MAX,
    idempotency_key,
    idempotency_key_parameter,
    prefer_parameter,
    prefer_wait,
)
from httpapi.schema import NOT_FOUND, VALIDATION_ERROR, DetailOutputSerializer
from httpapi.throttling import ScopedRateThrottle
from httpapi.viewsets import ServiceViewSet
from orders.filters import OrderFilter
from orders.models import OrderSummary, SagaSummary
from orders.serializers import (
    CancelOrderInputSerializer,
    OrderOutputSerializer,
    OrderSagaOutputSerializer,
    PlaceOrderInputSerializer,
)
from orders.services import (
    IdempotencyKeyReused,
    InvalidOrder,
    OrderNotCancellable,
    UnknownProducts,
    order_cancel,
    order_place,
    order_wait_final,
)


def _names_only(payload: object, customer_id: str) -> bool:
    """Whether an event's payload names no customer but `customer_id` (or none at all)."""
    if not isinstance(payload, dict) or "customer_id" not in payload:
        return True
    return str(payload["customer_id"]) == customer_id


# The headers of a placement's answer (201 and 202).
PLACED = [201, 202]
placement_headers = [
    OpenApiParameter(
        "Location",
        {"type": "string"},
        OpenApiParameter.HEADER,
        response=PLACED,
        required=True,
        description="The order's URL: poll it for the outcome.",
    ),
    OpenApiParameter(
        "Idempotent-Replayed",
        {"type": "string", "enum": ["true"]},
        OpenApiParameter.HEADER,
        response=PLACED,
        description="The Idempotency-Key placed this order before: nothing new was created.",
    ),
    OpenApiParameter(
        "Preference-Applied",
        {"type": "string", "pattern": "^wait=[0-9]+$"},
        OpenApiParameter.HEADER,
        response=PLACED,
        description="`wait=N` (celery dispatch only): the answer waited up to N seconds for the "
        f"order to be final, as `Prefer: wait` asked (N at most {PREFER_WAIT_MAX}).",
    ),
]


@extend_schema_view(
    list=extend_schema(summary="List orders (customers: their own; staff: everyone's)"),
    retrieve=extend_schema(summary="One order"),
)
class OrderViewSet(
    CustomerScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ServiceViewSet,
):
    """Orders, newest first. Placing one runs its fulfilment saga: stock is reserved, the
    customer charged and the order completed, or every step undone and the order cancelled."""

    error_answers = {
        # Lines the schema allows but the order cannot take: a product on two lines, or one
        # the catalogue does not know.
        InvalidOrder: ErrorAnswer(422, field="items"),
        UnknownProducts: ErrorAnswer(422, field="items"),
        IdempotencyKeyReused: ErrorAnswer(422),
        OrderNotCancellable: ErrorAnswer(409),
    }

    queryset = OrderSummary.objects.all()
    serializer_class = OrderOutputSerializer
    filterset_class = OrderFilter
    input_serializers = {"create": PlaceOrderInputSerializer, "cancel": CancelOrderInputSerializer}
    lookup_field = "order_id"
    # Placing an order runs a saga: it has its own budget (THROTTLE_ORDERS) besides the user's.
    throttle_scope = "orders"

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.action in ("create", "cancel"):
            throttles.append(ScopedRateThrottle())
        return throttles

    @extend_schema(
        summary="Place an order",
        parameters=[idempotency_key_parameter, prefer_parameter, *placement_headers],
        responses={
            201: OpenApiResponse(
                OrderOutputSerializer,
                description="The order, placed (or placed before, with Idempotent-Replayed). "
                "Inline dispatch: as far as its saga got in this request, normally final. "
                "Celery dispatch: final (completed or cancelled).",
            ),
            202: OpenApiResponse(
                OrderOutputSerializer,
                description="Celery dispatch only: the order is placed and its saga runs on the "
                "workers; the body is the order as it stands (normally pending). Poll Location, "
                "or send `Prefer: wait=N` to be answered once it is final.",
            ),
            400: VALIDATION_ERROR,
            403: OpenApiResponse(
                DetailOutputSerializer, description="A customer named another customer."
            ),
            422: OpenApiResponse(
                description="The Idempotency-Key was used before for a different order "
                "(`detail`), or the lines name an unknown product or one product twice "
                "(`items`); nothing is written.",
            ),
        },
    )
    def create(self, request):
        data = self.validated_input()
        key = idempotency_key(request)
        own_id = customer_id_for(request.user)
        customer_id = data.get("customer_id") or own_id
        if not request.user.is_staff and customer_id != own_id:
            raise PermissionDenied("Customers place orders for themselves only.")
        placed = order_place(
            customer_id=customer_id,
            items=data["items"],
            payment_token=data["payment_token"],
            idempotency_key=key,
            idempotency_scope=actor_for(request.user),
            metadata=command_metadata(request),
        )
        headers = {"Location": f"{request.path}{placed.order.id}/"}
        if not placed.created:
            headers["Idempotent-Replayed"] = "true"
        if reactions_run_later():
            # The saga runs on the workers: answer at once, or once the order is final if the
            # client prefers to wait; 202 while it is still under way.
            wait = prefer_wait(request)
            order = order_wait_final(order_id=placed.order.id, timeout=wait or 0)
            if wait:
                headers["Preference-Applied"] = f"wait={wait}"
            answer = status.HTTP_201_CREATED if order.is_final else status.HTTP_202_ACCEPTED
        else:
            # The saga ran after the order committed; the read model shows where it got to.
            order = OrderSummary.objects.get(pk=placed.order.id)
            answer = status.HTTP_201_CREATED
        body = OrderOutputSerializer(order).data
        return Response(body, status=answer, headers=headers)

    @extend_schema(
        summary="Cancel an order (customers: their own; staff: anyone's)",
        description=(
            "An order in fulfilment (pending, inventory_reserved) stops at its saga's next step "
            "and is cancelled with reason `cancel_requested`; a completed one is `cancelling` "
            "while its cancellation saga refunds the payment and returns the stock, then "
            "`refunded`. Any other status answers 409. There is no DELETE alias: the order is "
            "kept, and its cancellation is a command with an outcome."
        ),
        parameters=[idempotency_key_parameter, prefer_parameter],
        request=CancelOrderInputSerializer,
        responses={
            200: OpenApiResponse(
                OrderOutputSerializer,
                description="The cancellation was taken (or taken before, with "
                "Idempotent-Replayed). Inline dispatch: as far as the sagas got in this request. "
                "Celery dispatch: final (cancelled or refunded).",
            ),
            202: OpenApiResponse(
                OrderOutputSerializer,
                description="Celery dispatch only: the cancellation was taken and the sagas run "
                "on the workers; the body is the order as it stands. Poll the order, or send "
                "`Prefer: wait=N`.",
            ),
            400: VALIDATION_ERROR,
            404: NOT_FOUND,
            409: OpenApiResponse(
                description="The order cannot be cancelled from its `status` (given beside "
                "`detail`): it is cancelled, cancelling, refunded, or failing already."
            ),
            422: OpenApiResponse(
                description="The Idempotency-Key cancelled this order before with another "
                "`reason`; nothing is written."
            ),
        },
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def cancel(self, request, order_id=None):
        order = self.get_object()  # 404 for an order the caller may not see
        data = self.validated_input()
        cancelled = order_cancel(
            order_id=order.order_id,
            reason=data["reason"],
            idempotency_key=idempotency_key(request),
            idempotency_scope=actor_for(request.user),
            metadata=command_metadata(request),
        )
        headers = {}
        if not cancelled.recorded:
            headers["Idempotent-Replayed"] = "true"
        if reactions_run_later():
            wait = prefer_wait(request)
            summary = order_wait_final(order_id=order.order_id, timeout=wait or 0)
            if wait:
                headers["Preference-Applied"] = f"wait={wait}"
            done = summary.is_final and summary.status != summary.Status.COMPLETED
            answer = status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED
        else:
            summary = OrderSummary.objects.get(pk=order.order_id)
            answer = status.HTTP_200_OK
        return Response(OrderOutputSerializer(summary).data, status=answer, headers=headers)

    @extend_schema(
        summary="Every event of the order, from every service, in log order",
        description=(
            "Staff see every event correlated with the order; a customer sees those that name "
            "no other customer (an event whose payload has another `customer_id` is left out)."
        ),
        filters=False,
        responses={200: EventOutputSerializer(many=True), 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def events(self, request, order_id=None):
        order = self.get_object()
        rows = Event.objects.filter(correlation_id=order.order_id).order_by("position")
        if not request.user.is_staff:
            # A correlation id is only a claim: an event that names another customer (a
            # notification to someone else about this order) is theirs, not this customer's.
            rows = [row for row in rows if _names_only(row.payload, order.customer_id)]
        return Response(EventOutputSerializer(rows, many=True).data)

    @extend_schema(
        summary="The order's fulfilment saga (and cancellation saga): state, step log and "
        "compensations",
        filters=False,
        responses={200: OrderSagaOutputSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def saga(self, request, order_id=None):
        order = self.get_object()
        found = {s.kind: s for s in SagaSummary.objects.filter(order_id=order.order_id)}
        saga = found.get(SagaSummary.Kind.FULFILMENT)
        if saga is None:
            raise NotFound("The order's saga has not started yet.")
        context = {"cancellation": found.get(SagaSummary.Kind.CANCELLATION)}
        return Response(OrderSagaOutputSerializer(saga, context=context).data)
