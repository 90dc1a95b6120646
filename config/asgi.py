"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

from config.telemetry import setup as setup_telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Before the application loads its middleware: Django's instrumentation adds its own.
setup_telemetry()
application = get_asgi_application()
