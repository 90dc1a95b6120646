"""The fields a request's body is read with."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
IDENTIFIER_HELP = "1 to 64 letters, digits, '-' or '_'."
# An identifier in a URL path (the router anchors the pattern itself).
IDENTIFIER_LOOKUP = IDENTIFIER_PATTERN.removeprefix("^").removesuffix("$")


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


# Free text as the API takes it: a character other than a space, and no NUL anywhere (DRF's
# CharField refuses one, and PostgreSQL cannot store it). Linear to match: the two runs around
# the first non-space character cannot overlap.
TEXT_PATTERN = r"^\s*[^\s\x00][^\x00]*$"
# Optional free text: possibly empty, no NUL character.
OPTIONAL_TEXT_PATTERN = r"^[^\x00]*$"


def text_field(*, max_length: int, **kwargs: Any) -> StringField:
    """A serializer field for free text: a string of at most `max_length` characters, not blank,
    no NUL. Its schema's pattern says both, as the field trims surrounding spaces."""
    return StringField(
        TEXT_PATTERN,
        max_length=max_length,
        error_messages={"invalid": "Must be a string with more than spaces, and no NUL character."},
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
