"""One exception handler for the whole API: the answer a viewset declares for a domain error
(its `error_answers`), the event store's own errors' answers (a lost database connection among
them), else DRF's; so no view action catches a domain error itself."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from eventstore.api import AppendTimeout, ConcurrencyError, Overloaded, connection_lost

logger = logging.getLogger(__name__)


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
            # An error may add fields to its answer (e.g. the status that refused a command).
            body = {"detail": str(error), **getattr(error, "answer_fields", {})}
        return Response(body, status=self.status, headers=dict(self.headers))


class DatabaseConnectionLost(Exception):
    """The database connection was lost during the request (`eventstore.recorders.connections`): the
    server ended it (a restart, a fail-over) or could not be reached."""


# Seconds a client is asked to wait before repeating a write that timed out on the log's lock.
APPEND_RETRY_AFTER_SECONDS = 3
# Seconds a client is asked to wait before placing an order the shop turned away (overload).
ADMISSION_RETRY_AFTER_SECONDS = 5
# Seconds a client is asked to wait before repeating a request that lost its connection: the
# next request opens a new one.
CONNECTION_RETRY_AFTER_SECONDS = 1

# The event store's errors, and a lost database connection, which any command may meet: declared
# here, as no service owns them.
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
    # More work waits than the shop can start in time (eventstore.follower.admission): the client is
    # asked to slow down, as a throttle does; 5xx stays for faults.
    Overloaded: ErrorAnswer(429, headers={"Retry-After": str(ADMISSION_RETRY_AFTER_SECONDS)}),
    # The connection broke under the request, which may have been applied or not: repeating it
    # is safe for a read, and for a write sent with an Idempotency-Key (applied at most once).
    DatabaseConnectionLost: ErrorAnswer(
        503,
        body={
            "detail": "The database connection was lost; the request may be repeated in "
            f"{CONNECTION_RETRY_AFTER_SECONDS} second(s). A write repeated with the same "
            "Idempotency-Key is applied at most once."
        },
        headers={"Retry-After": str(CONNECTION_RETRY_AFTER_SECONDS)},
    ),
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
    declares for a domain error (a database error that lost the connection is
    DatabaseConnectionLost), else DRF's."""
    answers = {**STORE_ANSWERS, **getattr(context.get("view"), "error_answers", {})}
    answer = answer_for(exc, answers)
    if answer is None and connection_lost(exc):
        # Django replaces the broken connection once the request ends (close_old_connections).
        logger.warning("The database connection was lost: %s", exc)
        exc = DatabaseConnectionLost(str(exc))
        answer = answer_for(exc, answers)
    if answer is not None:
        return answer.response(exc)
    return drf_exception_handler(exc, context)
