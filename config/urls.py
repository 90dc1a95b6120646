"""Top-level routes: a home page, the API (with its browsable root), its schema and docs, and the
admin."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from config.operations import operations_view
from eventstore.http.urls import router as eventstore_router
from eventstore.http.views import HealthView, MetricsView
from inventory.urls import router as inventory_router
from notifications.urls import router as notifications_router
from notifications.views import push_page, push_service_worker
from orders.urls import router as orders_router
from payments.urls import router as payments_router
from webhooks.urls import router as webhooks_router

# One browsable root at /api/ listing every service's viewsets; each app keeps its own router.
api = DefaultRouter()
for app_router in (
    orders_router,
    inventory_router,
    payments_router,
    notifications_router,
    webhooks_router,
    eventstore_router,
):
    api.registry.extend(app_router.registry)

urlpatterns = [
    # What this is and where to go: the address the server prints and the admin's "View site".
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    # Before the admin's own routes, which would otherwise take the path as an app label.
    path("admin/operations/", admin.site.admin_view(operations_view), name="admin-operations"),
    path("admin/", admin.site.urls),
    path("api/health/", HealthView.as_view(), name="health"),
    path("push/", push_page, name="push-page"),
    # At the root, so the worker's scope is the whole site.
    path("service-worker.js", push_service_worker, name="push-service-worker"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/auth/", include("rest_framework.urls")),
    path("api/", include(api.urls)),
]

handler400 = "config.api.bad_request"
handler404 = "config.api.not_found"
handler500 = "config.api.server_error"
