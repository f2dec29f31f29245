"""What the image and the servers rely on: the deploy check, build-time collectstatic, and a
refusal to serve without a secret key."""

import json
import secrets

import pytest

from tests import servers

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_HTTPS": "true",
    "DJANGO_TRUST_X_FORWARDED_PROTO": "true",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
}


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    return servers.app_env(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        **PRODUCTION,
    )


def test_check_deploy_is_clean_with_production_settings(production_env):
    result = servers.manage("check", "--deploy", "--fail-level", "DEBUG", env=production_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_the_missing_secret_key_variable(production_env):
    del production_env["DJANGO_SECRET_KEY"]

    result = servers.manage("check", "--deploy", env=production_env)

    assert result.returncode != 0
    assert "djchat.E001" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_check_deploy_warns_when_https_is_off(production_env):
    production_env["DJANGO_HTTPS"] = "false"

    result = servers.manage("check", "--deploy", "--fail-level", "WARNING", env=production_env)

    assert result.returncode != 0
    assert "security.W008" in result.stderr  # SECURE_SSL_REDIRECT


def test_collectstatic_needs_no_secret_key_database_or_redis(collected_static):
    result, static_root = collected_static

    assert result.returncode == 0, result.stderr
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    hashed_script = manifest["paths"]["chat/chat.js"]
    assert hashed_script != "chat/chat.js"
    assert (static_root / hashed_script).is_file()


@pytest.mark.parametrize("module", ["djchat.wsgi", "djchat.asgi"])
def test_servers_refuse_to_start_without_a_secret_key(production_env, module):
    del production_env["DJANGO_SECRET_KEY"]

    result = servers.run_python(f"import {module}", env=production_env)

    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is required" in result.stderr


@pytest.mark.parametrize("module", ["djchat.wsgi", "djchat.asgi"])
def test_servers_start_with_the_key_given_as_a_file(production_env, tmp_path, module):
    key = production_env.pop("DJANGO_SECRET_KEY")
    (tmp_path / "secret_key").write_text(key + "\n")
    production_env["DJANGO_SECRET_KEY_FILE"] = str(tmp_path / "secret_key")

    result = servers.run_python(
        f"import {module}; from django.conf import settings; print(len(settings.SECRET_KEY))",
        env=production_env,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(key))


def test_release_checks_then_migrates(production_env, tmp_path):
    result = servers.manage("release", env=production_env)

    assert result.returncode == 0, result.stderr
    assert "Applying chat.0001_initial" in result.stdout
    assert (tmp_path / "db.sqlite3").is_file()


def test_release_stops_on_a_value_the_app_rejects_before_migrating(production_env, tmp_path):
    production_env["CHAT_RESUME_LIMIT"] = "0"

    result = servers.manage("release", env=production_env)

    assert result.returncode != 0
    assert "CHAT_RESUME_LIMIT" in result.stderr, result.stderr
    assert not (tmp_path / "db.sqlite3").exists(), "migrations ran after the settings failed"


def test_release_stops_on_a_failed_deploy_check_before_migrating(production_env, tmp_path):
    del production_env["DJANGO_SECRET_KEY"]

    result = servers.manage("release", env=production_env)

    assert result.returncode != 0
    assert "djchat.E001" in result.stderr, result.stderr
    assert not (tmp_path / "db.sqlite3").exists(), "migrations ran after a failed deploy check"


def test_migrate_runs_without_a_secret_key(production_env):
    del production_env["DJANGO_SECRET_KEY"]

    result = servers.manage("migrate", "--noinput", env=production_env)

    assert result.returncode == 0, result.stderr
