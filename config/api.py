"""Django's error views: JSON under /api/ (every 4xx names what was wrong), HTML elsewhere.

What a DRF view raises is answered by httpapi.errors.exception_handler instead."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """404 as JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse({"detail": f"No endpoint at {request.path}."}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    """400 as JSON under /api/ (413 for an oversized body), Django's page elsewhere."""
    if _is_api(request):
        if isinstance(exception, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return JsonResponse(
                {"detail": f"Request body is too large: the limit is {limit} bytes."}, status=413
            )
        return JsonResponse({"detail": f"Bad request: {exception}"}, status=400)
    return defaults.bad_request(request, exception)


def server_error(request):
    """500 as JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
