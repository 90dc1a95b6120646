"""Settings for the order-processing project, read from the environment: one module per
concern, composed here, so DJANGO_SETTINGS_MODULE=config.settings loads them all.

    env.py            the parsers every variable is read with (env_flag, env_int, ...)
    base.py           Django: DEBUG, apps, middleware, templates, static files
    security.py       SECRET_KEY, VAULT_KEYS, ALLOWED_HOSTS, https
    database.py       DATABASE_URL and each engine's options
    drf.py            the API: REST framework, schema, request limits, throttles and their cache
    eventstore.py     EVENTSTORE_*, the health check, admission
    celery.py         CELERY_* (celery mode)
    email.py          EMAIL_*, DEFAULT_FROM_EMAIL
    observability.py  logs and metrics (traces: config/telemetry.py)
    services.py       SAGA_*, PAYMENTS_*, Web Push, WEBHOOKS_*

Without DEBUG, SECRET_KEY and VAULT_KEYS are required. config/settings_dev.py is these with
DEBUG on by default (what manage.py loads); it stays outside this package because it must set
DEBUG before any of these modules reads it. docs/OPERATIONS.md lists every variable.
"""

# In this order, so that a missing secret is reported before any other variable's problem.
# isort: off
from config.settings.base import *  # noqa: F403
from config.settings.security import *  # noqa: F403
from config.settings.database import *  # noqa: F403
from config.settings.drf import *  # noqa: F403
from config.settings.eventstore import *  # noqa: F403
from config.settings.celery import *  # noqa: F403
from config.settings.email import *  # noqa: F403
from config.settings.observability import *  # noqa: F403
from config.settings.services import *  # noqa: F403
# isort: on
