"""Routes of the event store's API."""

from rest_framework.routers import SimpleRouter

from eventstore.http.views import EventViewSet

router = SimpleRouter()
router.register("events", EventViewSet, basename="event")

urlpatterns = router.urls
