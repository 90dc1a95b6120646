"""Email backends that stand in for a mail server misbehaving (set as EMAIL_BACKEND)."""

import smtplib
from collections.abc import Callable

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend


class UnreachableSMTPBackend(BaseEmailBackend):
    """Fails every send the way smtplib does when the server hangs up."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


class SilentBackend(BaseEmailBackend):
    """Raises nothing but sends nothing, as a misconfigured backend may."""

    def send_messages(self, email_messages):
        return 0


class MeanwhileBackend(LocmemBackend):
    """The locmem backend that first runs `meanwhile`: what another worker does while the mail
    server takes the message."""

    meanwhile: Callable[[], None] | None = None

    def send_messages(self, email_messages):
        if MeanwhileBackend.meanwhile is not None:
            MeanwhileBackend.meanwhile()
        return super().send_messages(email_messages)
