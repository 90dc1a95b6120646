"""HTTP helpers every service's views share: input validation, who the caller is, idempotency keys.

A customer is a non-staff user; their `customer_id` is their user's primary key as a string
(stable for the life of the account, unlike a username). Staff act for any customer_id.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
IDENTIFIER_HELP = "1 to 64 letters, digits, '-' or '_'."
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_LENGTH = 255


def identifier_field(**kwargs: Any) -> serializers.RegexField:
    """A serializer field for an id: 1 to 64 letters, digits, '-' or '_'."""
    kwargs.setdefault("help_text", IDENTIFIER_HELP)
    return serializers.RegexField(
        IDENTIFIER_PATTERN,
        max_length=64,
        error_messages={"invalid": f"Must be {IDENTIFIER_HELP}"},
        **kwargs,
    )


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
    """Metadata for the events an API command appends: who asked, and for which order."""
    metadata = {"actor": actor_for(request.user)}
    if correlation_id:
        metadata["correlation_id"] = correlation_id
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
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Repeating a request with the same key returns the first answer and changes nothing; "
        "the same key with a different body answers 422."
    ),
)


class SuccessOutputSerializer(serializers.Serializer):
    """A command's answer when there is nothing more to say than that it worked."""

    success = serializers.BooleanField()


class DetailOutputSerializer(serializers.Serializer):
    """An error answer that is not about one field."""

    detail = serializers.CharField()


VALIDATION_ERROR = OpenApiResponse(
    description="Invalid input: the body maps each bad field to its messages; nothing is written."
)
STAFF_ONLY = OpenApiResponse(DetailOutputSerializer, description="Staff only.")
NOT_FOUND = OpenApiResponse(DetailOutputSerializer, description="No such resource.")
