"""Development settings: what `manage.py` (and so `make run`) loads unless
DJANGO_SETTINGS_MODULE says otherwise. They are config.settings with DEBUG on by default, so
management commands run on a development machine as they are, with a development SECRET_KEY and
VAULT_KEYS, localhost names and plain http.

Production processes load config.settings: wsgi, asgi and Celery default to it, and it needs
SECRET_KEY and VAULT_KEYS. A production `manage.py` sets DJANGO_SETTINGS_MODULE=config.settings
(as `make cluster` does) or DEBUG=0.
"""

import os
import warnings

# Before config.settings reads the environment: every DEBUG-dependent default (SECRET_KEY,
# VAULT_KEYS, ALLOWED_HOSTS, the https settings, EMAIL_BACKEND, LOG_FORMAT) follows it. The
# environment, not a module variable, so the development server's reloading child process sees
# it too.
os.environ.setdefault("DEBUG", "1")

from config.settings import *  # noqa: F403

# runserver serves the apps' own static files; nothing is collected, and WhiteNoise need not
# warn in every process that STATIC_ROOT does not exist.
warnings.filterwarnings("ignore", message=r"No directory at: ", category=UserWarning)
