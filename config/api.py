"""Error answers: JSON under /api/ (every 4xx names what was wrong), HTML elsewhere."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults
from rest_framework import parsers, status
from rest_framework.exceptions import ParseError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from eventstore.store import AppendTimeout, ConcurrencyError

# Seconds a client is asked to wait before repeating a write that timed out on the log's lock.
APPEND_RETRY_AFTER_SECONDS = 3


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 (never 500) for a body nested deeper than the
    API_MAX_JSON_DEPTH setting."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_JSON_DEPTH
        too_deep = ParseError(f"JSON parse error - nested deeper than {limit} levels.")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise too_deep from error
        if _nested_deeper_than(data, limit):
            raise too_deep
        return data


def _nested_deeper_than(data, limit: int) -> bool:
    """Whether `data` holds objects and arrays more than `limit` levels deep (no recursion)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


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


def exception_handler(exc, context):
    """DRF's handler, plus 409 for a command that kept losing races for the same stream and 503
    (with Retry-After) for a write that waited too long for its turn."""
    if isinstance(exc, ConcurrencyError):
        # Every retry found the stream moved on: the request changed nothing and may be repeated.
        return Response(
            {"detail": "The resource was changed by concurrent requests; retry the request."},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, AppendTimeout):
        # Other writers held the log's lock for longer than the lock timeout: a load spike,
        # not a fault of the request, which wrote nothing and may be repeated as it is.
        return Response(
            {
                "detail": "The service is busy and nothing was written; "
                f"retry the request in {APPEND_RETRY_AFTER_SECONDS} seconds."
            },
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(APPEND_RETRY_AFTER_SECONDS)},
        )
    return drf_exception_handler(exc, context)
