"""The Web Push settings: with DEBUG and no key, a development key pair made once in an ignored
file of the project folder and reused on every later start; none (push off) without DEBUG; a
bad key, key file or subject refused at start, naming what is wrong."""

import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from notifications.webpush import b64url_encode
from tests.config.test_settings import PRODUCTION_KEYS, PROJECT, load_settings

VAPID = "from config import settings as s; print(repr(s.VAPID_PRIVATE_KEY), s.VAPID_SUBJECT)"


def development_key(key_file) -> str:
    result = load_settings(DEBUG="1", VAPID_DEV_KEY_FILE=str(key_file), code=VAPID)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0].strip("'")


def test_debug_makes_a_key_pair_once_in_its_file_and_reuses_it(tmp_path):
    key_file = tmp_path / ".vapid-dev.pem"

    first = development_key(key_file)
    pem = key_file.read_bytes()
    again = development_key(key_file)

    key = serialization.load_pem_private_key(pem, password=None)
    assert key.curve.name == "secp256r1"
    assert first == again != ""
    assert key_file.read_bytes() == pem
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == [".vapid-dev.pem"]  # no draft left


def test_another_folder_gets_another_key(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    assert development_key(tmp_path / "a" / "k.pem") != development_key(tmp_path / "b" / "k.pem")


def test_a_key_set_in_the_environment_wins_and_no_file_is_made(tmp_path):
    key_file = tmp_path / ".vapid-dev.pem"
    key = "Ey7PdS0uUjgNtbn4yaRIK6Pz4vbB3LN385fAwB_vWwQ"

    result = load_settings(
        DEBUG="1", VAPID_PRIVATE_KEY=key, VAPID_DEV_KEY_FILE=str(key_file), code=VAPID
    )

    assert result.stdout.split()[0] == repr(key), result.stderr
    assert not key_file.exists()


def test_production_has_no_key_and_makes_no_file(tmp_path):
    key_file = tmp_path / ".vapid-dev.pem"

    result = load_settings(**PRODUCTION_KEYS, VAPID_DEV_KEY_FILE=str(key_file), code=VAPID)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["''", "mailto:webmaster@localhost"]
    assert not key_file.exists()


def test_a_key_file_that_holds_no_key_is_refused_naming_it(tmp_path):
    key_file = tmp_path / ".vapid-dev.pem"
    key_file.write_text("not a key\n")

    result = load_settings(DEBUG="1", VAPID_DEV_KEY_FILE=str(key_file), code=VAPID)

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {key_file} must hold a PEM P-256 private key" in result.stderr


def test_a_key_file_that_cannot_be_made_is_refused_naming_it(tmp_path):
    key_file = tmp_path / "missing-folder" / ".vapid-dev.pem"

    result = load_settings(DEBUG="1", VAPID_DEV_KEY_FILE=str(key_file), code=VAPID)

    assert result.returncode != 0
    assert f"The development VAPID key cannot be kept in {key_file}" in result.stderr


def test_by_default_the_key_file_is_in_the_project_folder_and_ignored_by_git():
    # What `make run` does: the file is made there (or reused) on the first start.
    key = development_key("")
    pem = serialization.load_pem_private_key(
        (PROJECT / ".vapid-dev.pem").read_bytes(), password=None
    )

    assert key == b64url_encode(pem.private_numbers().private_value.to_bytes(32, "big"))
    try:
        ignored = subprocess.run(["git", "check-ignore", "-q", ".vapid-dev.pem"], cwd=PROJECT)
    except FileNotFoundError:
        pytest.skip("git is not installed")
    if ignored.returncode == 128:
        pytest.skip("the project folder is not a git checkout")
    assert ignored.returncode == 0, ".vapid-dev.pem is not ignored by git"


def test_a_key_that_is_not_32_bytes_of_base64url_is_refused_naming_the_variable():
    result = load_settings(**PRODUCTION_KEYS, VAPID_PRIVATE_KEY="c2hvcnQ", code=VAPID)

    assert result.returncode != 0
    assert "ImproperlyConfigured: VAPID_PRIVATE_KEY must be the base64url" in result.stderr


def test_a_subject_that_is_not_mailto_or_https_is_refused():
    result = load_settings(**PRODUCTION_KEYS, VAPID_SUBJECT="webmaster@shop.example", code=VAPID)

    assert result.returncode != 0
    assert "VAPID_SUBJECT must be a mailto: or https: URL" in result.stderr
