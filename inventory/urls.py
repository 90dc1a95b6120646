"""Routes of the inventory API."""

from rest_framework.routers import SimpleRouter

from inventory.views import InventoryViewSet

router = SimpleRouter()
router.register("inventory", InventoryViewSet, basename="inventory")

urlpatterns = router.urls
