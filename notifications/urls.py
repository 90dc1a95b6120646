"""Routes of the notifications API."""

from rest_framework.routers import SimpleRouter

from notifications.views import NotificationViewSet, PushSubscriptionViewSet

router = SimpleRouter()
# Before the notifications' own routes, whose /notifications/{customer_id}/ would match it.
router.register(
    "notifications/push-subscriptions", PushSubscriptionViewSet, basename="push-subscription"
)
router.register("notifications", NotificationViewSet, basename="notification")

urlpatterns = router.urls
