"""The one exception handler: each declared domain error gets its answer, a subclass its base
class's, and anything else DRF's."""

import pytest
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from httpapi.errors import ErrorAnswer, answer_errors, answer_for, exception_handler


class Refused(Exception):
    pass


class RefusedForGood(Refused):
    pass


class AboutAField(Exception):
    pass


class Fixed(Exception):
    pass


@pytest.fixture(autouse=True)
def declared():
    answer_errors(
        {
            Refused: ErrorAnswer(409),
            AboutAField: ErrorAnswer(422, field="items"),
            Fixed: ErrorAnswer(504, body={"success": False}, headers={"Retry-After": "3"}),
        }
    )


def answer(error) -> Response:
    return exception_handler(error, {})


def test_a_declared_error_answers_its_status_with_its_message_as_detail():
    response = answer(Refused("no way"))

    assert (response.status_code, response.data) == (409, {"detail": "no way"})


def test_an_error_about_one_field_answers_with_the_field_and_its_message():
    response = answer(AboutAField("p1 appears twice"))

    assert (response.status_code, response.data) == (422, {"items": ["p1 appears twice"]})


def test_a_fixed_body_and_headers_are_answered_whatever_the_error_says():
    response = answer(Fixed("anything"))

    assert (response.status_code, response.data) == (504, {"success": False})
    assert response["Retry-After"] == "3"


def test_a_subclass_without_an_answer_of_its_own_gets_its_base_classs():
    assert answer_for(RefusedForGood("x")) is answer_for(Refused("x"))


def test_other_errors_are_left_to_drf():
    assert answer_for(ValueError("x")) is None
    assert answer(ValueError("x")) is None
    assert answer(NotFound("gone")).status_code == 404
