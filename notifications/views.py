"""The notifications API: customers read their own; staff read all and send."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from httpapi.caller import CustomerScopedMixin, command_metadata, customer_id_for
from httpapi.errors import ErrorAnswer
from httpapi.schema import (
    NOT_FOUND,
    UNPROCESSABLE,
    ApiSchema,
    staff_command,
)
from httpapi.viewsets import ServiceViewSet
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
class NotificationViewSet(CustomerScopedMixin, mixins.ListModelMixin, ServiceViewSet):
    """Notifications sent to customers, newest first. A customer sees only their own."""

    error_answers = {OrderNotOfCustomer: ErrorAnswer(422, field="order_id")}

    queryset = SentNotification.objects.all()
    serializer_class = NotificationListOutputSerializer
    filterset_class = SentNotificationFilter
    input_serializers = {"send": SendInputSerializer}
    lookup_field = "customer_id"
    schema = CustomerListSchema()

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

    @staff_command(
        summary="Send a notification to a customer (staff)",
        responses={201: SendOutputSerializer, 422: UNPROCESSABLE},
    )
    def send(self, request):
        data = self.validated_input()
        notification = notification_send_checked(
            **data, metadata=command_metadata(request, data["order_id"])
        )
        body = {"success": True, "notification_id": notification.id}
        return Response(body, status=status.HTTP_201_CREATED)
