#!/usr/bin/env python
"""Django's command-line utility for administrative tasks, on the development settings
(config/settings_dev.py) unless DJANGO_SETTINGS_MODULE names others."""

import os
import sys


def main() -> None:
    """Run a management command."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_dev")
    from django.core.management import execute_from_command_line

    from config.telemetry import setup as setup_telemetry

    setup_telemetry()  # traces, when the OTEL_* environment asks for them

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
