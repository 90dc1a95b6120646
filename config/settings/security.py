"""Secrets and https: SECRET_KEY and VAULT_KEYS (required unless DEBUG is on), the host names
served, and https by default in production."""

import os

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from config.settings.base import DEBUG
from config.settings.env import env_flag, env_int, env_list

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "django-insecure-development-key-only-used-when-debug-is-on"

# The keys the vault (eventstore.vault) encrypts its secrets with: Fernet keys, comma-separated.
# The first encrypts, every one decrypts, so keys rotate: put a new key first, keep the old ones
# until `manage.py vault_rotate` has re-encrypted every secret (docs/OPERATIONS.md).
# `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`
VAULT_KEYS = env_list("VAULT_KEYS")
if not VAULT_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("VAULT_KEYS must be set when DEBUG is off")
    # base64 of b"development-vault-key-not-secret": public, like the development SECRET_KEY.
    VAULT_KEYS = ["ZGV2ZWxvcG1lbnQtdmF1bHQta2V5LW5vdC1zZWNyZXQ="]
for _number, _key in enumerate(VAULT_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError as error:
        # The key itself is never printed: the message may end up in a log.
        raise ImproperlyConfigured(
            f"VAULT_KEYS must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated: "
            f"key {_number} of {len(VAULT_KEYS)} is not one"
        ) from error

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")

# HTTPS. With DEBUG off every default is the production one (`manage.py check --deploy` passes);
# with DEBUG on they allow plain http on 127.0.0.1 (`make run`). Each can be set either way.
# Redirect plain-http requests to https (301).
SECURE_SSL_REDIRECT = env_flag("SECURE_SSL_REDIRECT", not DEBUG)
# Except the health check: load balancers and orchestrators probe it over plain http.
SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]
# Send the session and CSRF cookies over https only.
SESSION_COOKIE_SECURE = env_flag("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_flag("CSRF_COOKIE_SECURE", not DEBUG)
# HSTS: browsers that saw the header refuse plain http for this long (one year), subdomains
# included, and the site may be submitted to browsers' preload lists. Lower it while trying
# https out: a browser keeps the promise for the whole period.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_flag("SECURE_HSTS_PRELOAD", not DEBUG)
# Behind a proxy that ends TLS: the header it sets to "https" on secure requests (e.g.
# X-Forwarded-Proto), so Django sees them as secure and does not redirect them again. Unset by
# default, since a header is only trustworthy when the proxy overwrites whatever the client sent.
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
