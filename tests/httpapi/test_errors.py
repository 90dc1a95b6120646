"""The one exception handler: each domain error the view declares gets its answer, a subclass
its base class's, the event store's errors theirs (a lost database connection a 503), and
anything else DRF's."""

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from eventstore.store import AppendTimeout
from httpapi.errors import CONNECTION_RETRY_AFTER_SECONDS, ErrorAnswer, exception_handler
from httpapi.viewsets import ServiceViewSet


class Refused(Exception):
    pass


class RefusedForGood(Refused):
    pass


class AboutAField(Exception):
    pass


class Fixed(Exception):
    pass


class DeclaringViewSet(ServiceViewSet):
    error_answers = {
        Refused: ErrorAnswer(409),
        AboutAField: ErrorAnswer(422, field="items"),
        Fixed: ErrorAnswer(504, body={"success": False}, headers={"Retry-After": "3"}),
    }


def answer(error, view=None) -> Response | None:
    return exception_handler(error, {"view": view or DeclaringViewSet()})


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
    response = answer(RefusedForGood("not ever"))

    assert (response.status_code, response.data) == (409, {"detail": "not ever"})


def test_an_error_is_answered_only_by_the_view_that_declares_it():
    assert answer(Refused("no way"), view=ServiceViewSet()) is None


def test_the_event_stores_errors_are_answered_in_every_view():
    response = answer(AppendTimeout("busy"), view=ServiceViewSet())

    assert response.status_code == 503
    assert response["Retry-After"] == "3"


def test_other_errors_are_left_to_drf():
    assert answer(ValueError("x")) is None
    assert answer(NotFound("gone")).status_code == 404


# A statement that fails with an ordinary OperationalError on each database, leaving the
# connection usable: SQLite's unknown table, PostgreSQL's statement timeout.
ORDINARY_OPERATIONAL_ERROR = {
    "sqlite": ["SELECT * FROM no_such_table"],
    "postgresql": ["SET statement_timeout = 1", "SELECT pg_sleep(1)"],
}


def test_a_database_error_after_which_the_connection_is_gone_answers_503_with_retry_after():
    # As Django leaves it when a rollback failed on a connection the server ended, or when it
    # could not connect: no connection open.
    connection.close()

    response = answer(OperationalError("server closed the connection unexpectedly"))

    assert response.status_code == 503
    assert response["Retry-After"] == str(CONNECTION_RETRY_AFTER_SECONDS)
    assert "connection was lost" in response.data["detail"]
    assert "Idempotency-Key" in response.data["detail"]
    assert answer(InterfaceError("connection already closed")).status_code == 503


@pytest.mark.django_db
def test_an_operational_error_on_a_connection_still_usable_is_not_answered_503():
    with pytest.raises(OperationalError) as raised, connection.cursor() as cursor:
        for statement in ORDINARY_OPERATIONAL_ERROR[connection.vendor]:
            cursor.execute(statement)

    assert answer(raised.value) is None  # DRF's: the 500 of an unexpected error


@pytest.mark.django_db
def test_an_error_whose_sqlstate_ends_the_session_answers_503_while_the_driver_shows_it_idle():
    # pg_terminate_backend's error arrives before the driver sees the socket close.
    error = OperationalError("terminating connection due to administrator command")
    error.__cause__ = psycopg.errors.AdminShutdown()
    connection.ensure_connection()

    assert answer(error).status_code == 503


@pytest.mark.django_db
def test_an_error_of_the_driver_losing_the_server_answers_503_though_a_new_connection_is_open():
    # Django opens a new connection as the failed transaction ends, before the handler runs.
    error = OperationalError("consuming input failed: server closed the connection unexpectedly")
    error.__cause__ = psycopg.OperationalError("consuming input failed")
    connection.ensure_connection()

    assert answer(error).status_code == 503
