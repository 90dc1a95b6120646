"""How long a wake-up may wait on a broker that does not answer: at most the connection timeout
(CELERY_BROKER_CONNECTION_TIMEOUT), with a real kombu connection, as a request's commit sends."""

import time

import pytest
from django.conf import settings
from kombu.exceptions import OperationalError

from config.celery import app
from eventstore.follower.tasks import catch_up_partition
from tests.processes import HOST, free_port


def test_a_broker_that_refuses_connections_costs_a_send_less_than_the_connection_timeout():
    nothing_listens = f"amqp://guest:guest@{HOST}:{free_port()}//"

    with app.connection_for_write(nothing_listens) as connection:
        started = time.monotonic()
        with pytest.raises(OperationalError):
            catch_up_partition.apply_async(("tests.none", 0), retry=False, connection=connection)
        waited = time.monotonic() - started

    assert connection.connect_timeout == settings.CELERY_BROKER_CONNECTION_TIMEOUT
    assert waited < settings.CELERY_BROKER_CONNECTION_TIMEOUT
