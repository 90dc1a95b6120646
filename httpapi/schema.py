"""The project's OpenAPI schema: the answers operations share, each described once, the
schema class that adds them to every operation that can give them, and the declaration of a
staff command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action


class SuccessOutputSerializer(serializers.Serializer):
    """A command's answer when there is nothing more to say than that it worked."""

    success = serializers.BooleanField()


class DetailOutputSerializer(serializers.Serializer):
    """An error answer that is not about one field."""

    detail = serializers.CharField()


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
# A string without a NUL character, which Django's and DRF's text fields refuse.
NO_NUL_PATTERN = r"^[^\x00]*$"


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

    def get_operation_id(self):
        # A viewset's own action with one method is named by its path alone ("inventory_reserve",
        # "orders_saga"), not by the method's word too ("inventory_reserve_create"); standard
        # actions keep it (orders_list, orders_create, orders_retrieve).
        extra_actions = {
            extra.__name__: extra for extra in getattr(self.view, "get_extra_actions", list)()
        }
        extra = extra_actions.get(getattr(self.view, "action", None))
        if extra is None or len(extra.mapping) > 1:
            return super().get_operation_id()
        return "_".join(token.replace("-", "_") for token in self._tokenize_path())

    def _get_filter_parameters(self):
        # django-filter ignores a filter sent empty (the browsable API's filter form sends every
        # field): the schema says so, rather than promising a 400 the API does not give. A text
        # filter refuses a NUL (Django's form fields do): its pattern says so.
        parameters = []
        for parameter in super()._get_filter_parameters():
            schema = parameter["schema"]
            if schema.get("type") == "string" and not {"format", "enum", "pattern"} & set(schema):
                schema = {**schema, "pattern": NO_NUL_PATTERN}
            parameters.append({**parameter, "schema": schema, "allowEmptyValue": True})
        return parameters

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


def staff_command(*, detail: bool = False, **schema: Any) -> Callable[[Callable], Callable]:
    """Declare a viewset method a POST action only staff may call, without list filters or
    pages. Its schema (extend_schema's `schema`) answers 400 to invalid input and 403 to anyone
    but staff, besides the `responses` given."""
    responses = {400: VALIDATION_ERROR, 403: STAFF_ONLY, **schema.pop("responses")}
    as_action = action(
        detail=detail,
        methods=["post"],
        permission_classes=[permissions.IsAdminUser],
        filter_backends=[],
        pagination_class=None,
    )

    def declare(method: Callable) -> Callable:
        # extend_schema goes on last: @action replaces the schema settings an earlier one left.
        return extend_schema(responses=responses, **schema)(as_action(method))

    return declare
