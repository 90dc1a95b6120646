"""The notifications API: customers read their own; staff read all and send."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from eventstore.api import (
    NOT_FOUND,
    STAFF_ONLY,
    UNPROCESSABLE,
    VALIDATION_ERROR,
    ApiSchema,
    CustomerScopedMixin,
    InputSerializersMixin,
    UnprocessableInput,
    command_metadata,
    customer_id_for,
    validated,
)
from notifications.filters import SentNotificationFilter
from notifications.models import SentNotification
from notifications.serializers import (
    NotificationListOutputSerializer,
    NotificationOutputSerializer,
    SendInputSerializer,
    SendOutputSerializer,
)
from notifications.services import OrderNotOfCustomer, notification_send_checked


class CustomerListSchema(ApiSchema):
    """Documents one customer's notifications as the plain array `retrieve` answers, where the
    generator would assume the viewset's pagination for any list response."""

    def _get_paginator(self):
        if getattr(self.view, "action", None) == "retrieve":
            return None
        return super()._get_paginator()


@extend_schema_view(
    list=extend_schema(
        summary="List notifications (customers: their own; staff: everyone's)",
    ),
)
class NotificationViewSet(
    CustomerScopedMixin, InputSerializersMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """Notifications sent to customers, newest first. A customer sees only their own."""

    queryset = SentNotification.objects.all()
    serializer_class = NotificationListOutputSerializer
    filterset_class = SentNotificationFilter
    input_serializers = {"send": SendInputSerializer}
    lookup_field = "customer_id"
    lookup_value_regex = "[A-Za-z0-9_-]{1,64}"
    schema = CustomerListSchema()

    def get_permissions(self):
        if self.action == "send":
            return [permissions.IsAdminUser()]
        return super().get_permissions()

    @extend_schema(
        summary="One customer's notifications, newest first",
        operation_id="notifications_for_customer",
        filters=False,
        responses={200: NotificationOutputSerializer(many=True), 404: NOT_FOUND},
    )
    def retrieve(self, request, customer_id=None):
        # Another customer's notifications answer 404, as if that customer did not exist.
        if not request.user.is_staff and customer_id != customer_id_for(request.user):
            raise NotFound("No such customer.")
        rows = self.get_queryset().filter(customer_id=customer_id)
        return Response(NotificationOutputSerializer(rows, many=True).data)

    @extend_schema(
        summary="Send a notification to a customer (staff)",
        request=SendInputSerializer,
        responses={
            201: SendOutputSerializer,
            400: VALIDATION_ERROR,
            403: STAFF_ONLY,
            422: UNPROCESSABLE,
        },
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def send(self, request):
        data = validated(SendInputSerializer, request.data)
        try:
            notification = notification_send_checked(
                **data,
                metadata=command_metadata(request, data["order_id"]),
            )
        except OrderNotOfCustomer as error:
            raise UnprocessableInput("order_id", str(error)) from error
        body = {"success": True, "notification_id": notification.id}
        return Response(body, status=status.HTTP_201_CREATED)
