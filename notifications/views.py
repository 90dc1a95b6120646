"""The notifications API: customers read their own; staff read all and send."""

from django.contrib.auth.decorators import login_required
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from httpapi.caller import CustomerScopedMixin, command_metadata, customer_id_for
from httpapi.errors import ErrorAnswer
from httpapi.schema import (
    NOT_FOUND,
    UNPROCESSABLE,
    VALIDATION_ERROR,
    ApiSchema,
    staff_command,
)
from httpapi.viewsets import ServiceViewSet
from notifications import webpush
from notifications.filters import PushSubscriptionFilter, SentNotificationFilter
from notifications.models import PushSubscription, SentNotification
from notifications.serializers import (
    NotificationListOutputSerializer,
    NotificationOutputSerializer,
    PushSubscriptionInputSerializer,
    PushSubscriptionOutputSerializer,
    SendInputSerializer,
    SendOutputSerializer,
    VapidPublicKeyOutputSerializer,
)
from notifications.services import (
    OrderNotOfCustomer,
    PushEndpointRefused,
    PushKeysRefused,
    PushSubscriptionNotFound,
    PushSubscriptionTaken,
    notification_send_checked,
    push_subscription_add,
    push_subscription_remove,
)


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


@extend_schema_view(
    list=extend_schema(
        summary="List push subscriptions (customers: their own; staff: everyone's)",
    ),
    retrieve=extend_schema(
        summary="One push subscription",
        responses={200: PushSubscriptionOutputSerializer, 404: NOT_FOUND},
    ),
)
class PushSubscriptionViewSet(
    CustomerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet
):
    """Browsers' Web Push subscriptions: each notification is pushed to its customer's live
    ones. A customer subscribes, lists and unsubscribes only their own."""

    error_answers = {
        PushSubscriptionTaken: ErrorAnswer(422, field="endpoint"),
        PushEndpointRefused: ErrorAnswer(422, field="endpoint"),
        PushKeysRefused: ErrorAnswer(422, field="keys"),
        PushSubscriptionNotFound: ErrorAnswer(404),
    }

    queryset = PushSubscription.objects.all()
    serializer_class = PushSubscriptionOutputSerializer
    filterset_class = PushSubscriptionFilter
    input_serializers = {"create": PushSubscriptionInputSerializer}
    lookup_field = "subscription_id"

    @extend_schema(
        summary="Subscribe this browser to push notifications",
        description="Takes the browser's PushSubscription JSON. An endpoint the customer "
        "subscribed already answers 200 with that subscription.",
        request=PushSubscriptionInputSerializer,
        responses={
            200: PushSubscriptionOutputSerializer,
            201: PushSubscriptionOutputSerializer,
            400: VALIDATION_ERROR,
            422: UNPROCESSABLE,
        },
    )
    def create(self, request):
        data = self.validated_input()
        subscription, created = push_subscription_add(
            customer_id=customer_id_for(request.user),
            endpoint=data["endpoint"],
            p256dh=data["keys"]["p256dh"],
            auth=data["keys"]["auth"],
            expiration_time=data.get("expirationTime"),
            metadata=command_metadata(request),
        )
        row = PushSubscription.objects.get(subscription_id=subscription.id)
        return Response(
            PushSubscriptionOutputSerializer(row).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Unsubscribe a browser from push notifications",
        responses={204: None, 404: NOT_FOUND},
    )
    def destroy(self, request, subscription_id=None):
        row = self.get_object()
        push_subscription_remove(
            subscription_id=row.subscription_id,
            reason=PushSubscription.Status.UNSUBSCRIBED,
            customer_id=row.customer_id,
            metadata=command_metadata(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="The VAPID public key browsers subscribe with",
        description="For PushManager.subscribe({applicationServerKey}). 503 while push "
        "delivery is off (no VAPID_PRIVATE_KEY).",
        responses={
            200: VapidPublicKeyOutputSerializer,
            503: OpenApiResponse(description="Push is off."),
        },
    )
    @action(
        detail=False,
        methods=["get"],
        url_path="public-key",
        permission_classes=[permissions.AllowAny],
        filter_backends=[],
        pagination_class=None,
    )
    def public_key(self, request):
        try:
            key = webpush.public_key()
        except webpush.PushNotConfigured as error:
            return Response({"detail": str(error)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"public_key": key})


# --- the push page ---------------------------------------------------------------------------


@login_required(login_url="rest_framework:login")
def push_page(request):
    """A page where a signed-in customer turns push on or off for this browser."""
    config = {
        "csrf_token": get_token(request),
        "service_worker": reverse("push-service-worker"),
        "subscriptions": reverse("push-subscription-list"),
        "public_key": reverse("push-subscription-public-key"),
    }
    return render(request, "notifications/push/page.html", {"config": config})


def push_service_worker(request):
    """The service worker that shows pushes, served at the site root for the root scope."""
    response = render(
        request,
        "notifications/push/service-worker.js",
        content_type="text/javascript; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    return response
