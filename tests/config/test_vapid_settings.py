"""The Web Push settings: a development key with DEBUG, none (push off) without it, and a bad
key or subject refused at start, naming the variable."""

from tests.config.test_settings import PRODUCTION_KEYS, load_settings

VAPID = "from config import settings as s; print(repr(s.VAPID_PRIVATE_KEY), s.VAPID_SUBJECT)"


def test_debug_gets_a_development_key_and_production_none():
    development = load_settings(DEBUG="1", code=VAPID)
    production = load_settings(**PRODUCTION_KEYS, code=VAPID)

    assert development.returncode == 0, development.stderr
    assert development.stdout.split()[0] != "''"
    assert production.returncode == 0, production.stderr
    assert production.stdout.split() == ["''", "mailto:webmaster@localhost"]


def test_a_key_that_is_not_32_bytes_of_base64url_is_refused_naming_the_variable():
    result = load_settings(**PRODUCTION_KEYS, VAPID_PRIVATE_KEY="c2hvcnQ", code=VAPID)

    assert result.returncode != 0
    assert "ImproperlyConfigured: VAPID_PRIVATE_KEY must be the base64url" in result.stderr


def test_a_subject_that_is_not_mailto_or_https_is_refused():
    result = load_settings(**PRODUCTION_KEYS, VAPID_SUBJECT="webmaster@shop.example", code=VAPID)

    assert result.returncode != 0
    assert "VAPID_SUBJECT must be a mailto: or https: URL" in result.stderr
