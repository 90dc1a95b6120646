"""Routes of the webhooks API."""

from rest_framework.routers import SimpleRouter

from webhooks.views import WebhookDeliveryViewSet, WebhookEndpointViewSet, WebhookReplayViewSet

router = SimpleRouter()
router.register("webhooks/endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("webhooks/deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("webhooks/replays", WebhookReplayViewSet, basename="webhook-replay")

urlpatterns = router.urls
