"""Email: notifications are delivered through Django's mail framework."""

import os

from config.settings.base import BASE_DIR, DEBUG
from config.settings.env import env_flag, env_float, env_int

# The backend: by default the console backend when DEBUG (`make run` prints each email), SMTP
# otherwise. django.core.mail.backends.filebased.EmailBackend writes them to EMAIL_FILE_PATH.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend"
)
# The SMTP server, and the account it is used with (both empty: no login).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
# STARTTLS on the SMTP connection (port 587 servers usually require it).
EMAIL_USE_TLS = env_flag("EMAIL_USE_TLS")
# Seconds the SMTP connection waits on the server before the attempt fails (and is retried
# later). Keep it well under EVENTSTORE_EFFECT_LEASE, or a hung server lets a second worker
# send the same email meanwhile.
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 20.0)
# Folder the file-based backend writes emails to (unused by the other backends).
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))
# The sender of every notification; its domain also names each email's Message-ID
# (<notification id@domain>).
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "orders@localhost")
