"""The event log API (staff only) and the health check."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from eventstore.filters import EventFilter
from eventstore.health import health_check
from eventstore.models import Event
from eventstore.pagination import PositionCursorPagination
from eventstore.serializers import EventOutputSerializer, HealthOutputSerializer


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The whole event log in position order, and single events by event id."""

    queryset = Event.objects.all()
    serializer_class = EventOutputSerializer
    permission_classes = [permissions.IsAdminUser]
    filterset_class = EventFilter
    pagination_class = PositionCursorPagination
    lookup_field = "event_id"
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"


class HealthView(APIView):
    """200 when the database answers, no subscriber partition is more than
    HEALTH_MAX_LAG_EVENTS events behind, and in celery mode the broker accepts a connection;
    503 naming what is wrong otherwise. On PostgreSQL it also shows how far subscribers are held
    back by running transactions (`followers`), and answers 503 when the log holds transaction
    ids the database has not reached (a dump restored into a new cluster, ARCHITECTURE.md)."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    # Monitoring polls it from one address: never throttled.
    throttle_classes = []

    @extend_schema(
        responses={
            200: HealthOutputSerializer,
            503: OpenApiResponse(
                HealthOutputSerializer,
                description="Database unreachable or its transaction ids behind the log's, a "
                "subscriber too far behind, or (celery mode) the broker unreachable",
            ),
        }
    )
    def get(self, request):
        body, healthy = health_check()
        return Response(body, status=200 if healthy else 503)
