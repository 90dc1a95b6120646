"""The event log API (staff only), the health check and the Prometheus metrics."""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from prometheus_client import generate_latest
from rest_framework import mixins, permissions, viewsets
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from eventstore.http.filters import EventFilter
from eventstore.http.health import health_check
from eventstore.http.pagination import PositionCursorPagination
from eventstore.http.serializers import EventOutputSerializer, HealthOutputSerializer
from eventstore.models import Event
from eventstore.observability import metrics


@extend_schema_view(
    list=extend_schema(summary="List the event log in position order (staff)"),
    retrieve=extend_schema(summary="One event (staff)"),
)
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
    back by running transactions (`followers`), and answers 503 when one of them has held them
    back longer than HEALTH_MAX_HELD_SECONDS or the log holds transaction ids the database has
    not reached (a dump restored into a new cluster, docs/OPERATIONS.md)."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    # Monitoring polls it from one address: never throttled.
    throttle_classes = []

    @extend_schema(
        summary="Whether the service can take work: database, subscribers' lag, broker",
        responses={
            200: HealthOutputSerializer,
            503: OpenApiResponse(
                HealthOutputSerializer,
                description="Database unreachable or its transaction ids behind the log's, "
                "subscribers held back too long by a transaction, a subscriber too far behind, "
                "or (celery mode) the broker unreachable",
            ),
        },
    )
    def get(self, request):
        body, healthy = health_check()
        return Response(body, status=200 if healthy else 503)


class MetricsPermission(permissions.BasePermission):
    """Staff only (session or token), or anyone when METRICS_PUBLIC is on."""

    def has_permission(self, request, view) -> bool:
        if settings.METRICS_PUBLIC:
            return True
        return bool(request.user and request.user.is_staff)


class FirstRendererNegotiation(BaseContentNegotiation):
    """Whatever a scraper accepts, the answer is the Prometheus text format (errors as JSON)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return None


# What generate_latest writes: the classic text format every Prometheus version reads.
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@extend_schema(exclude=True)
class MetricsView(APIView):
    """GET /metrics: every Prometheus series in the text format (docs/METRICS.md)."""

    permission_classes = [MetricsPermission]
    content_negotiation_class = FirstRendererNegotiation
    renderer_classes = [JSONRenderer]
    # Prometheus scrapes from one address every few seconds: never throttled.
    throttle_classes = []

    def get(self, request):
        return HttpResponse(
            generate_latest(metrics.scrape_registry()), content_type=PROMETHEUS_TEXT
        )
