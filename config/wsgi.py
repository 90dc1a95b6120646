"""WSGI entry point."""

import os

from django.core.wsgi import get_wsgi_application

from config.telemetry import setup as setup_telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Before the application loads its middleware: Django's instrumentation adds its own.
setup_telemetry()
application = get_wsgi_application()
