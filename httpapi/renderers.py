"""How answers are rendered: JSON, and the browsable API, whose command forms hold a body the API
accepts as it stands once the required fields are filled in."""

from __future__ import annotations

from typing import Any

from rest_framework import renderers, serializers
from rest_framework.fields import empty
from rest_framework.request import override_method


def form_body(serializer: serializers.Serializer) -> dict[str, Any]:
    """The body a command's form starts with: every required field (blank, to be filled in),
    each list of objects with one blank object, and an optional field only with a value the API
    takes (its default), never a placeholder it would refuse."""
    body: dict[str, Any] = {}
    for name, field in serializer.fields.items():
        if field.read_only or isinstance(field, serializers.HiddenField):
            continue
        if isinstance(field, serializers.ListField) and isinstance(
            field.child, serializers.Serializer
        ):
            value: Any = [form_body(field.child)]
        elif isinstance(field, serializers.Serializer):
            value = form_body(field)
        elif field.default is not empty and not callable(field.default):
            value = field.to_representation(field.default)
        else:
            value = field.get_initial()
        if not field.required and not _accepted(field, value):
            continue
        body[name] = value
    return body


def _accepted(field: serializers.Field, value: Any) -> bool:
    try:
        field.run_validation(value)
    except serializers.ValidationError:
        return False
    return True


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's browsable API, whose raw-data form for a POST starts from `form_body`: sent as it
    stands, with the required fields filled in, it is accepted (DRF's own form fills every
    field with a blank the API refuses, such as an empty optional id)."""

    def get_raw_data_form(self, data, view, method, request):
        form = super().get_raw_data_form(data, view, method, request)
        if form is None or method != "POST" or not form.fields["_content"].initial:
            return form
        with override_method(view, request, method):
            serializer = view.get_serializer()
        if isinstance(serializer, serializers.ListSerializer):
            return form
        content = renderers.JSONRenderer().render(
            form_body(serializer), renderer_context={"indent": 4}
        )
        form.fields["_content"].initial = content.decode()
        return form
