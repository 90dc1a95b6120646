"""How the API's lists are paged, as their schema says: numbered pages, and the log by position.

Its own module: DRF imports the default pagination class while its own modules load, so this
one must not import the schema machinery (httpapi.schema does).
"""

from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import _positive_int


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF's numbered pages, where `page` is a number from 1 (not also "last"); any other
    value, an empty one included, is no such page (404), as the schema says."""

    last_page_strings = ()

    def get_page_number(self, request, paginator):
        """`page` as sent (DRF takes an empty one for page 1); 1 when it is not sent."""
        return request.query_params.get(self.page_query_param, 1)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters


class PositionCursorPagination(pagination.CursorPagination):
    """Pages through the log by position, stable while new events are appended."""

    ordering = "position"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        """`page_size` when given (a whole number; over the maximum, the maximum), else the
        default. DRF ignores a malformed one; the schema promises a 400."""
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":
            return self.page_size
        try:
            return _positive_int(raw, strict=True, cutoff=self.max_page_size)
        except ValueError:
            raise ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            ) from None

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["allowEmptyValue"] = True
                # Over the maximum is answered with the maximum, so it is no error.
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters
