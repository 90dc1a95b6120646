"""Routes of the payments API."""

from rest_framework.routers import SimpleRouter

from payments.views import PaymentViewSet

router = SimpleRouter()
router.register("payments", PaymentViewSet, basename="payment")

urlpatterns = router.urls
