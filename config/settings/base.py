"""Django itself: DEBUG, the apps and their middleware, templates, static files."""

import os
from pathlib import Path

from config.settings.env import env_flag

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Every DEBUG-dependent default in the other modules follows it (security, email, logs).
DEBUG = env_flag("DEBUG")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "eventstore",
    "orders",
    "inventory",
    "payments",
    "notifications",
    "webhooks",
    "demo",
    # Prometheus's HTTP series (config/settings/observability.py).
    "django_prometheus",
]

MIDDLEWARE = [
    # Outermost, so that django-prometheus's HTTP series count every request and answer.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Before all: every record of the request carries its id, every answer echoes it.
    "config.middleware.RequestIdMiddleware",
    # Then: an over-long URL or header under /api/ is refused before any other work.
    "config.middleware.RequestLimitsMiddleware",
    # Outside the API: the store's lock timeout or a lost connection answers a 503 page.
    "config.middleware.StoreUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's styles, the API docs' scripts) from the app itself, under
    # gunicorn as under runserver: no other server to configure.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The site's own templates (the admin index links the operations page).
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py collectstatic` gathers them for WhiteNoise: compressed, and named after their
# content so that browsers may keep them for ever (a deployment runs collectstatic after each
# upgrade; `make cluster` does). With DEBUG on, runserver serves them from the apps unhashed.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
