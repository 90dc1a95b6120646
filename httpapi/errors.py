"""One exception handler for the whole API: the answer a viewset declares for a domain error
(its `error_answers`), the event store's own errors' answers, else DRF's; so no view action
catches a domain error itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from eventstore.admission import Overloaded
from eventstore.store import AppendTimeout, ConcurrencyError


class UnprocessableInput(APIException):
    """Input the schema allows that the service cannot act on (an unknown product, a product on
    two lines, another customer's order): 422, with the field and its messages; nothing is
    written. A 400 always means the input broke the schema."""

    status_code = 422
    default_code = "unprocessable"

    def __init__(self, field: str, message: str) -> None:
        super().__init__({field: [message]})


@dataclasses.dataclass(frozen=True)
class ErrorAnswer:
    """How the API answers a domain error: its status, and a body that is `{"detail": message}`,
    `{field: [message]}` when the error is about one input `field` (as UnprocessableInput's),
    or a fixed `body` whatever the error says."""

    status: int
    field: str | None = None
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def response(self, error: Exception) -> Response:
        """The answer to `error`."""
        if self.body is not None:
            body = dict(self.body)
        elif self.field is not None:
            body = {self.field: [str(error)]}
        else:
            body = {"detail": str(error)}
        return Response(body, status=self.status, headers=dict(self.headers))


# Seconds a client is asked to wait before repeating a write that timed out on the log's lock.
APPEND_RETRY_AFTER_SECONDS = 3
# Seconds a client is asked to wait before placing an order the shop turned away (overload).
ADMISSION_RETRY_AFTER_SECONDS = 5

# The event store's errors, which any command may meet: declared here, as no service owns them.
STORE_ANSWERS: Mapping[type[Exception], ErrorAnswer] = {
    # Every retry found the stream moved on: the request changed nothing and may be repeated.
    ConcurrencyError: ErrorAnswer(
        409,
        body={"detail": "The resource was changed by concurrent requests; retry the request."},
    ),
    # Other writers held the log's lock for longer than the lock timeout: a load spike, not
    # a fault of the request, which wrote nothing and may be repeated as it is.
    AppendTimeout: ErrorAnswer(
        503,
        body={
            "detail": "The service is busy and nothing was written; "
            f"retry the request in {APPEND_RETRY_AFTER_SECONDS} seconds."
        },
        headers={"Retry-After": str(APPEND_RETRY_AFTER_SECONDS)},
    ),
    # More work waits than the shop can start in time (eventstore.admission): the client is
    # asked to slow down, as a throttle does; 5xx stays for faults.
    Overloaded: ErrorAnswer(429, headers={"Retry-After": str(ADMISSION_RETRY_AFTER_SECONDS)}),
}


def answer_for(
    error: Exception, answers: Mapping[type[Exception], ErrorAnswer] = STORE_ANSWERS
) -> ErrorAnswer | None:
    """The answer declared in `answers` for `error`'s class or its nearest base class; None
    without one."""
    for cls in type(error).__mro__:
        if cls in answers:
            return answers[cls]
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's exception handler: the answer the view's `error_answers` (or STORE_ANSWERS)
    declares for a domain error, else DRF's."""
    declared = getattr(context.get("view"), "error_answers", {})
    answer = answer_for(exc, {**STORE_ANSWERS, **declared})
    if answer is not None:
        return answer.response(exc)
    return drf_exception_handler(exc, context)
