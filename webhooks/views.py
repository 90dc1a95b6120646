"""The webhooks API, staff only: endpoints (secret shown once, rotation, replay) and the
delivery log (redeliver one)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from httpapi.schema import UNPROCESSABLE
from webhooks import services
from webhooks.filters import DeliveryFilter, EndpointFilter, ReplayFilter
from webhooks.models import Delivery, Endpoint, Replay
from webhooks.serializers import (
    DeliverySerializer,
    EndpointSerializer,
    EndpointWithSecretSerializer,
    ReplayInputSerializer,
    ReplayOutputSerializer,
)

# Actions that read nothing from their body: an empty object, or none.
NO_INPUT = {"application/json": {"type": "object", "additionalProperties": False}}


class Conflict(APIException):
    """Not possible in the resource's present state."""

    status_code = status.HTTP_409_CONFLICT


class Unprocessable(ValidationError):
    """Allowed by the schema, but not acceptable here (a URL that is not public)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY


def _checked(call):
    try:
        return call()
    except DjangoValidationError as error:
        raise Unprocessable(
            error.message_dict if hasattr(error, "error_dict") else error.messages
        ) from None


@extend_schema_view(
    list=extend_schema(summary="List webhook endpoints (staff)"),
    create=extend_schema(summary="Register a webhook endpoint; its secret is shown once (staff)"),
    retrieve=extend_schema(summary="Show a webhook endpoint (staff)"),
    partial_update=extend_schema(
        summary="Change or enable/disable a webhook endpoint (staff)",
        responses={200: EndpointSerializer, 422: UNPROCESSABLE},
    ),
    destroy=extend_schema(summary="Delete a webhook endpoint and its deliveries (staff)"),
    rotate_secret=extend_schema(summary="Rotate an endpoint's signing secret (staff)"),
    replay=extend_schema(summary="Replay a range of the event log to an endpoint (staff)"),
)
class WebhookEndpointViewSet(viewsets.ModelViewSet):
    """Webhook endpoints. The signing secret is in the answer of create and rotate-secret only."""

    queryset = Endpoint.objects.all()
    serializer_class = EndpointSerializer
    permission_classes = [permissions.IsAdminUser]
    filterset_class = EndpointFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(responses={201: EndpointWithSecretSerializer, 422: UNPROCESSABLE})
    def create(self, request, *args, **kwargs):
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = _checked(lambda: services.endpoint_create(**serializer.validated_data))
        return Response(EndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        endpoint = self.get_object()
        serializer = EndpointSerializer(endpoint, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changed = _checked(
            lambda: services.endpoint_change(endpoint_id=endpoint.pk, **serializer.validated_data)
        )
        return Response(EndpointSerializer(changed).data)

    def destroy(self, request, *args, **kwargs):
        services.endpoint_delete(endpoint_id=self.get_object().pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=NO_INPUT, responses={200: EndpointWithSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new secret; the old one also signs for WEBHOOKS_ROTATION_WINDOW seconds."""
        endpoint = services.endpoint_rotate_secret(endpoint_id=self.get_object().pk)
        return Response(EndpointWithSecretSerializer(endpoint).data)

    @extend_schema(request=ReplayInputSerializer, responses={202: ReplayOutputSerializer})
    @action(detail=True, methods=["post"])
    def replay(self, request, pk=None):
        """Owe the endpoint every event it wants of a position or time range again: the worker
        reads the range in the background and sends them, with the webhook-ids of the first
        time; follow it at /api/webhooks/replays/{replay_id}/."""
        endpoint = self.get_object()
        serializer = ReplayInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        replay = services.replay_start(endpoint, **serializer.validated_data)
        return Response(ReplayOutputSerializer(replay).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="List webhook replays, newest first (staff)"),
    retrieve=extend_schema(summary="Show a webhook replay and its progress (staff)"),
)
class WebhookReplayViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Replays asked for, with how far the worker has read each."""

    queryset = Replay.objects.all()
    serializer_class = ReplayOutputSerializer
    permission_classes = [permissions.IsAdminUser]
    filterset_class = ReplayFilter


@extend_schema_view(
    list=extend_schema(summary="List webhook deliveries, newest event first (staff)"),
    retrieve=extend_schema(summary="Show a webhook delivery and its attempts (staff)"),
    redeliver=extend_schema(summary="Send a webhook delivery again (staff)"),
)
class WebhookDeliveryViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The delivery log: one delivery per (endpoint, event), each with its attempts."""

    queryset = Delivery.objects.prefetch_related("attempt_log").order_by("-position", "pk")
    serializer_class = DeliverySerializer
    permission_classes = [permissions.IsAdminUser]
    filterset_class = DeliveryFilter

    @extend_schema(
        request=NO_INPUT,
        responses={
            202: DeliverySerializer,
            409: OpenApiResponse(description="The delivery's endpoint is disabled."),
        },
    )
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        """Send the delivery again (same webhook-id), whatever its status; 409 while its
        endpoint is disabled (enable it first)."""
        delivery = self.get_object()
        if not delivery.endpoint.enabled:
            raise Conflict("The delivery's endpoint is disabled: enable it first.")
        services.redeliver(delivery)
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
