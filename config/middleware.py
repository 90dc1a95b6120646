"""Request limits under /api/, answered as JSON before any other work; request ids for logs;
the store's "try again" errors answered 503 outside the API."""

import re
import uuid

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from eventstore.observability.logs import start_request
from eventstore.recorders.connections import connection_lost
from httpapi.errors import DatabaseConnectionLost, answer_for
from httpapi.headers import HEADER_CONTROL_CHARACTERS


class RequestLimitsMiddleware:
    """Under /api/: a URL longer than API_MAX_URL_LENGTH characters answers 414, a header
    whose "Name: value" is longer than API_MAX_HEADER_FIELD_SIZE bytes answers 431, and a header
    value holding a control character (NUL, DEL, ...) answers 400, all as JSON.

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
            # Before any view reads it: an Idempotency-Key is stored, and PostgreSQL refuses
            # a NUL in text.
            if HEADER_CONTROL_CHARACTERS.search(value):
                return JsonResponse(
                    {name: ["Must not contain control characters (NUL, DEL, ...)."]},
                    status=400,
                )
        return None


# A request id a client sends is kept when it is this short and made of these characters;
# anything else is replaced, so a header cannot forge log lines or bloat every record.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Gives each request an id: the client's X-Request-ID when it sends a sensible one, else a
    new one. Every record logged while handling it carries the id
    (eventstore.observability.logs), and the response echoes it in X-Request-ID."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        sent = request.headers.get("X-Request-ID", "")
        request_id = sent if REQUEST_ID_PATTERN.match(sent) else uuid.uuid4().hex
        request.request_id = request_id
        # Cleared again on request_finished (eventstore.apps), after Django's own log of the
        # answer, which it writes once every middleware has returned.
        start_request(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class StoreUnavailableMiddleware:
    """Outside /api/ (the admin, the operations page): a lock timeout or a lost database
    connection answers the 503 page with Retry-After, as the API answers them (its
    STORE_ANSWERS), rather than a 500. Under /api/ the API's exception handler answers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if request.path.startswith("/api/"):
            return None
        if connection_lost(exception):
            exception = DatabaseConnectionLost(str(exception))
        answer = answer_for(exception)
        if answer is None or answer.status != 503:
            return None
        # No request context: the page must not need the database (the user, the session).
        page = render_to_string("503.html", {"retry_after": answer.headers["Retry-After"]})
        return HttpResponse(page, status=answer.status, headers=dict(answer.headers))
