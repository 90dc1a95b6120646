"""The channel that delivers notifications. The shipped sender is simulated: it logs the email
it would send. Set NOTIFICATIONS_SENDER to the dotted path of a class with the same `send`
to deliver for real."""

from __future__ import annotations

import logging
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

EMAIL = "email"


class Sender(Protocol):
    """Delivers one message to a customer."""

    channel: str

    def send(self, *, notification_id: str, customer_id: str, message: str) -> None: ...


class LoggingEmailSender:
    """Logs each email instead of sending it."""

    channel = EMAIL

    def send(self, *, notification_id: str, customer_id: str, message: str) -> None:
        logger.info("Email to customer %s [%s]: %s", customer_id, notification_id, message)


@cache
def get_sender() -> Sender:
    """The configured sender (NOTIFICATIONS_SENDER), built once per process."""
    return import_string(settings.NOTIFICATIONS_SENDER)()
