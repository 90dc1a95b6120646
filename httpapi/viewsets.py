"""The base of every service's viewset: rows looked up by an identifier, and each command's
body read with the one input serializer its action names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers, viewsets

from httpapi.errors import ErrorAnswer
from httpapi.fields import IDENTIFIER_LOOKUP


class ServiceViewSet(viewsets.GenericViewSet):
    """A viewset whose rows are looked up by an identifier (see identifier_field) under
    `lookup_field`. An action listed in `input_serializers` reads its body with that serializer,
    which its schema and the browsable API's form show too. A domain error any action lets out
    is answered as `error_answers` declares (httpapi.errors.exception_handler)."""

    lookup_value_regex = IDENTIFIER_LOOKUP
    input_serializers: dict[str, type[serializers.Serializer]] = {}
    error_answers: Mapping[type[Exception], ErrorAnswer] = {}

    def get_serializer_class(self):
        return self.input_serializers.get(self.action) or super().get_serializer_class()

    def validated_input(self) -> Any:
        """The request's body as the action's input serializer validates it, or a 400 naming
        each bad field (ValidationError)."""
        serializer = self.get_serializer_class()(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data
