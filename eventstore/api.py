"""HTTP helpers every service's views share: input validation, who the caller is, idempotency
keys, and the client's preferences (RFC 7240 `Prefer`).

A customer is a non-staff user; their `customer_id` is their user's primary key as a string
(stable for the life of the account, unlike a username). Staff act for any customer_id.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, ValidationError

from eventstore.logs import set_correlation_id

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
IDENTIFIER_HELP = "1 to 64 letters, digits, '-' or '_'."
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_LENGTH = 255
PREFER_HEADER = "Prefer"
# The longest `Prefer: wait=N` honoured, in seconds: a request holds a server worker that long.
PREFER_WAIT_MAX = 10


class StringField(serializers.RegexField):
    """A string matching a pattern; a JSON number or boolean is refused, not turned into text,
    as the schema (type string) says."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def identifier_field(**kwargs: Any) -> serializers.RegexField:
    """A serializer field for an id: 1 to 64 letters, digits, '-' or '_'."""
    kwargs.setdefault("help_text", IDENTIFIER_HELP)
    return StringField(
        IDENTIFIER_PATTERN,
        max_length=64,
        error_messages={"invalid": f"Must be {IDENTIFIER_HELP}"},
        **kwargs,
    )


def text_field(*, max_length: int, **kwargs: Any) -> serializers.RegexField:
    """A serializer field for free text: at most `max_length` characters, not blank. Its schema
    says "not blank" (a non-space character), as the field trims surrounding spaces."""
    return serializers.RegexField(
        r"\S",
        max_length=max_length,
        error_messages={"invalid": "Must contain more than spaces."},
        **kwargs,
    )


# An amount of money as the API takes it: a decimal string over 0 with at most two places and
# at most ten digits before the point ("9.99", "0.5", "12").
AMOUNT_PATTERN = r"^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,9}(\.[0-9]{1,2})?)$"


@extend_schema_field(
    {
        "type": "string",
        "pattern": AMOUNT_PATTERN,
        "example": "9.99",
        "description": 'A decimal string over 0, at most two places (e.g. "9.99").',
    }
)
class AmountField(serializers.DecimalField):
    """A positive amount of money, given as a decimal string (a JSON number is refused: it
    may already have lost a cent on its way)."""

    default_error_messages = {"not_a_string": 'Give the amount as a decimal string, e.g. "9.99".'}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", Decimal("0.01"))
        super().__init__(max_digits=12, decimal_places=2, coerce_to_string=True, **kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class InputSerializersMixin:
    """Viewset mixin: an action listed in `input_serializers` uses that serializer, so the
    browsable API offers a form with the fields the action takes."""

    input_serializers: dict[str, type[serializers.Serializer]] = {}

    def get_serializer_class(self):
        return self.input_serializers.get(self.action) or super().get_serializer_class()


class CustomerScopedMixin:
    """Viewset mixin: staff see every row, a customer only the rows of their own customer_id
    (anyone else's then answers 404, as if it did not exist)."""

    def get_queryset(self):
        queryset = super().get_queryset()
        user = self.request.user
        if user.is_staff:
            return queryset
        return queryset.filter(customer_id=customer_id_for(user))


def validated(serializer_class: type[serializers.Serializer], data: Any) -> Any:
    """The validated data of `data`, or a 400 naming each bad field (ValidationError)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def customer_id_for(user) -> str:
    """The customer id of an account: its primary key as a string."""
    return str(user.pk)


def actor_for(user) -> str:
    """How events record who asked for a change."""
    return f"user:{user.pk}"


def command_metadata(request, correlation_id: str | None = None) -> dict[str, str]:
    """Metadata for the events an API command appends: who asked, and for which order (which
    the request's log records then carry too)."""
    metadata = {"actor": actor_for(request.user)}
    if correlation_id:
        metadata["correlation_id"] = correlation_id
        set_correlation_id(correlation_id)
    return metadata


def idempotency_key(request) -> str | None:
    """The request's Idempotency-Key header (None when absent); 400 when it is empty or too long."""
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise ValidationError(
            {
                IDEMPOTENCY_KEY_HEADER: [
                    f"Must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters when given."
                ]
            }
        )
    return key


idempotency_key_parameter = OpenApiParameter(
    IDEMPOTENCY_KEY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        f"1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters. Repeating a request with the same key "
        "returns the first answer and changes nothing; the same key with a different body "
        "answers 422."
    ),
)


def prefer_wait(request) -> int | None:
    """The seconds the request's `Prefer: wait=N` asks the server to wait, at most
    PREFER_WAIT_MAX; None without one. As RFC 7240 says, a preference the server cannot read
    (not a whole number of seconds over 0) is ignored, other preferences beside it do not
    matter, and only the first `wait` counts."""
    header = request.headers.get(PREFER_HEADER, "")
    for preference in header.split(","):
        # token [= word] followed by ;-separated parameters, which `wait` does not take.
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        seconds = value.strip().strip('"').lstrip("0")
        if not re.fullmatch(r"[1-9][0-9]*", seconds):
            return None
        if len(seconds) > len(str(PREFER_WAIT_MAX)):
            return PREFER_WAIT_MAX  # over the cap (and int() refuses thousands of digits)
        return min(int(seconds), PREFER_WAIT_MAX)
    return None


prefer_parameter = OpenApiParameter(
    PREFER_HEADER,
    {"type": "string"},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Preferences (RFC 7240). `wait=N` (N whole seconds over 0) asks the server to answer "
        f"once the result is final or N seconds have passed, at most {PREFER_WAIT_MAX} (a larger "
        "N waits that long); a preference that cannot be read is ignored."
    ),
)


class SuccessOutputSerializer(serializers.Serializer):
    """A command's answer when there is nothing more to say than that it worked."""

    success = serializers.BooleanField()


class DetailOutputSerializer(serializers.Serializer):
    """An error answer that is not about one field."""

    detail = serializers.CharField()


class UnprocessableInput(APIException):
    """Input the schema allows that the service cannot act on (an unknown product, a product on
    two lines, another customer's order): 422, with the field and its messages; nothing is
    written. A 400 always means the input broke the schema."""

    status_code = 422
    default_code = "unprocessable"

    def __init__(self, field: str, message: str) -> None:
        super().__init__({field: [message]})


UNPROCESSABLE = OpenApiResponse(
    description="Allowed by the schema, but the service cannot act on it: it names something "
    "unknown here or repeats a product (the body maps the field to its messages); nothing is "
    "written."
)
VALIDATION_ERROR = OpenApiResponse(
    description="Invalid input: the body maps each bad field to its messages; nothing is written."
)
STAFF_ONLY = OpenApiResponse(DetailOutputSerializer, description="Staff only.")
NOT_FOUND = OpenApiResponse(DetailOutputSerializer, description="No such resource.")


# The answers many operations share, added to each operation that can give them (ApiSchema).
NOT_AUTHENTICATED = OpenApiResponse(
    DetailOutputSerializer, description="No credentials, or credentials that are not valid."
)
FORBIDDEN = OpenApiResponse(
    DetailOutputSerializer,
    description="Not allowed: a staff-only operation, or a session request without its CSRF token.",
)
MALFORMED_BODY = OpenApiResponse(
    description=(
        "Invalid input (malformed JSON, a bad field): the body maps each bad field to its "
        "messages, or has a `detail`; nothing is written."
    )
)
CONCURRENT_CHANGES = OpenApiResponse(
    DetailOutputSerializer,
    description="Concurrent requests kept changing the same resource: nothing was written, retry.",
)
BODY_TOO_LARGE = OpenApiResponse(
    DetailOutputSerializer,
    description="The body is over the size limit (1 MiB by default); nothing is written.",
)
UNSUPPORTED_MEDIA_TYPE = OpenApiResponse(
    DetailOutputSerializer,
    description="The body is not JSON (Content-Type: application/json); nothing is written.",
)
BAD_FILTER = OpenApiResponse(
    description="A filter's value is invalid: the body maps each bad filter to its messages."
)
NO_SUCH_PAGE = OpenApiResponse(DetailOutputSerializer, description="No such page or cursor.")
THROTTLED = OpenApiResponse(
    DetailOutputSerializer,
    description="Too many requests: wait the seconds the Retry-After header gives, then retry.",
)
BUSY = OpenApiResponse(
    DetailOutputSerializer,
    description="The write could not get its turn in time (the event log's lock): nothing was "
    "written; repeat the request after the seconds the Retry-After header gives.",
)
retry_after_header = OpenApiParameter(
    "Retry-After",
    {"type": "integer", "minimum": 0},
    OpenApiParameter.HEADER,
    response=[429, 503],
    description="Seconds to wait before the next request may succeed.",
)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ApiSchema(AutoSchema):
    """The project's OpenAPI schema: besides what each operation declares, it lists the answers
    an operation can give because of how it is served (authentication, permissions, throttles,
    body parsing, filters and pagination), each described once here."""

    def shared_responses(self) -> dict[str, OpenApiResponse]:
        """The answers this operation can give that its own declaration need not repeat."""
        view, method = self.view, self.method
        found: dict[str, OpenApiResponse] = {}
        checks = view.get_permissions()
        open_to_anyone = all(isinstance(check, permissions.AllowAny) for check in checks)
        if method in BODY_METHODS:
            found["400"] = MALFORMED_BODY
        if not open_to_anyone:
            found["401"] = NOT_AUTHENTICATED
            staff_only = any(isinstance(check, permissions.IsAdminUser) for check in checks)
            csrf_checked = method in BODY_METHODS and any(
                isinstance(authenticator, SessionAuthentication)
                for authenticator in view.get_authenticators()
            )
            if staff_only or csrf_checked:
                found["403"] = FORBIDDEN
        if "{" in self.path:
            found["404"] = NOT_FOUND
        if method == "GET" and self._is_list_view():
            if self.get_filter_backends() and getattr(view, "filterset_class", None):
                found["400"] = BAD_FILTER
            if self._get_paginator() is not None:
                found["404"] = NO_SUCH_PAGE
        if method in BODY_METHODS:
            found["409"] = CONCURRENT_CHANGES
            found["413"] = BODY_TOO_LARGE
            found["415"] = UNSUPPORTED_MEDIA_TYPE
            found["503"] = BUSY
        if view.get_throttles():
            found["429"] = THROTTLED
        return found

    def _get_filter_parameters(self):
        # django-filter ignores a filter sent empty (the browsable API's filter form sends every
        # field): the schema says so, rather than promising a 400 the API does not give.
        return [
            {**parameter, "allowEmptyValue": True} for parameter in super()._get_filter_parameters()
        ]

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.view.get_throttles() or self.method in BODY_METHODS:
            parameters.append(retry_after_header)
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, response in self.shared_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return dict(sorted(responses.items()))
