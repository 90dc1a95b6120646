"""Request limits under /api/, answered as JSON before any other work."""

from django.conf import settings
from django.http import JsonResponse


class RequestLimitsMiddleware:
    """Under /api/: a URL longer than API_MAX_URL_LENGTH characters answers 414 and a header
    whose "Name: value" is longer than API_MAX_HEADER_FIELD_SIZE bytes answers 431, both as JSON.

    The gunicorn config the project ships (config/gunicorn.py) allows more than these limits,
    so these answers come first and clients get JSON rather than gunicorn's HTML page.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    @staticmethod
    def _refusal(request) -> JsonResponse | None:
        url_limit = settings.API_MAX_URL_LENGTH
        if len(request.get_full_path()) > url_limit:
            return JsonResponse(
                {"detail": f"The URL is too long: the limit is {url_limit} characters."},
                status=414,
            )
        field_limit = settings.API_MAX_HEADER_FIELD_SIZE
        for name, value in request.headers.items():
            if len(name) + len(": ") + len(value) > field_limit:
                return JsonResponse(
                    {
                        "detail": f"The {name} header is too large: the limit is "
                        f"{field_limit} bytes for its name and value."
                    },
                    status=431,
                )
        return None
