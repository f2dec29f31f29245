"""Configuration: the environment readers, the derived configs, and settings.py wiring them up."""

import json
import re
import subprocess

import pytest
from django.core.exceptions import ImproperlyConfigured

from djchat import config
from djchat.bounds import INTEGERS
from djchat.cpus import auto_workers, usable_cpus
from djchat.env import env_bool, env_bounded, env_int, env_list, env_str
from tests import servers

# --- the readers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("Yes", True), ("false", False), ("0", False), ("off", False)],
)
def test_env_bool_reads_common_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)

    assert env_bool("FLAG", not expected) is expected


def test_env_bool_rejects_anything_else_naming_the_variable(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")

    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe' is not a boolean"):
        env_bool("FLAG", False)


def test_env_int_rejects_text_and_values_below_the_minimum(monkeypatch):
    monkeypatch.setenv("COUNT", "ten")
    with pytest.raises(ImproperlyConfigured, match="COUNT='ten' is not an integer"):
        env_int("COUNT", 1)
    monkeypatch.setenv("COUNT", "0")
    with pytest.raises(ImproperlyConfigured, match="COUNT=0 is below the minimum of 1"):
        env_int("COUNT", 1, minimum=1)


@pytest.mark.parametrize("name", sorted(INTEGERS))
def test_every_declared_integer_is_refused_just_outside_its_range(monkeypatch, name):
    bound = INTEGERS[name]
    monkeypatch.setenv(name, str(bound.minimum - 1))
    with pytest.raises(
        ImproperlyConfigured,
        match=rf"{name}={bound.minimum - 1} is below the minimum of {bound.minimum} "
        rf"\({name} must be between {bound.minimum} and {bound.maximum}\)",
    ):
        env_bounded(name)
    monkeypatch.setenv(name, str(bound.maximum + 1))
    with pytest.raises(ImproperlyConfigured, match=rf"{name}={bound.maximum + 1} is above"):
        env_bounded(name)
    monkeypatch.setenv(name, str(bound.maximum))
    assert env_bounded(name) == bound.maximum
    monkeypatch.delenv(name)
    assert env_bounded(name) == bound.default


def test_every_declared_default_lies_in_its_range():
    outside = {n: b for n, b in INTEGERS.items() if not b.minimum <= b.default <= b.maximum}
    assert not outside


def test_unset_variables_give_the_default(monkeypatch):
    monkeypatch.delenv("NOT_SET", raising=False)

    assert env_int("NOT_SET", 7) == 7
    assert env_list("NOT_SET", ["a"]) == ["a"]
    assert env_str("NOT_SET") is None


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example , ,b.example,")

    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_a_file_variable_supplies_the_value_without_its_trailing_newline(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t value\n")
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.setenv("TOKEN_FILE", str(secret))

    assert env_str("TOKEN") == "s3cr3t value"


def test_giving_a_variable_and_its_file_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "secret").write_text("one")
    monkeypatch.setenv("TOKEN", "two")
    monkeypatch.setenv("TOKEN_FILE", str(tmp_path / "secret"))

    with pytest.raises(ImproperlyConfigured, match="Set TOKEN or TOKEN_FILE, not both"):
        env_str("TOKEN")


def test_an_unreadable_file_is_an_error_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.setenv("TOKEN_FILE", str(tmp_path / "missing"))

    with pytest.raises(ImproperlyConfigured, match=r"TOKEN_FILE=.* cannot be read"):
        env_str("TOKEN")


# --- derived configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@redis:6379/0", "redis://redis:6379/0"),
        ("redis://user:pw@redis/1", "redis://user@redis/1"),
        ("rediss://:pw@[::1]:6380/0", "rediss://[::1]:6380/0"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
    ],
)
def test_redis_password_setting_replaces_a_password_in_the_url(url, expected):
    assert config.redis_url_without_password(url) == expected


def test_sqlite_runs_in_wal_mode_with_immediate_transactions_and_a_busy_timeout(tmp_path):
    database = config.database(f"sqlite:///{tmp_path}/db.sqlite3")

    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert database["OPTIONS"]["timeout"] > 0


def test_only_the_asgi_process_keeps_its_database_connection(tmp_path):
    for url in (f"sqlite:///{tmp_path}/db.sqlite3", "postgres://chat:pw@db:5432/chat"):
        assert config.database(url)["CONN_MAX_AGE"] == 0
        kept = config.database(url, asgi_process=True)
        assert kept["CONN_MAX_AGE"] == config.ASGI_CONNECTION_MAX_AGE_SECONDS > 0
        assert kept["CONN_HEALTH_CHECKS"] is True, "a kept connection is checked after a failure"


def test_postgres_url_selects_psycopg_and_the_password_setting_overrides_the_urls():
    database = config.database("postgres://chat:old@db:5432/chat", password="new")

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db", 5432, "chat")
    assert (database["USER"], database["PASSWORD"]) == ("chat", "new")


def test_no_channel_layer_is_configured():
    # The chat fans out through chat.services.fanout; Channels must not make a channel per
    # consumer nor listen on one.
    assert "CHANNEL_LAYERS" not in load_settings()["SETTINGS"]


def test_gunicorn_config_refuses_an_unknown_worker_class():
    result = gunicorn_print_config(GUNICORN_WORKER_CLASS="eventlet")

    assert result.returncode != 0
    assert "GUNICORN_WORKER_CLASS='eventlet' is not one of gevent, gthread, sync" in result.stderr


def test_default_database_is_on_the_data_volume_when_it_exists(tmp_path):
    data = tmp_path / "data"
    assert (
        config.default_database_url(tmp_path / "app", data)
        == f"sqlite:///{tmp_path}/app/db.sqlite3"
    )
    data.mkdir()
    assert config.default_database_url(tmp_path / "app", data) == f"sqlite:///{data}/db.sqlite3"


# --- settings.py, loaded in a fresh process with a given environment -------------------------

PRINT_SETTINGS = """
import json, django
from django.conf import settings as s
django.setup()
db = s.DATABASES["default"]
print(json.dumps({
    "DEBUG": s.DEBUG, "SECRET_KEY": s._wrapped.SECRET_KEY, "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "CSRF_TRUSTED_ORIGINS": s.CSRF_TRUSTED_ORIGINS,
    "SECURE_PROXY_SSL_HEADER": getattr(s, "SECURE_PROXY_SSL_HEADER", None),
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT, "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE, "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "DB_ENGINE": db["ENGINE"], "DB_NAME": db["NAME"], "DB_PASSWORD": db.get("PASSWORD"),
    "REDIS_URL": s.REDIS_URL, "REDIS_PASSWORD": s.REDIS_PASSWORD,
    "CACHE_LOCATION": s.CACHES["default"]["LOCATION"],
    "CACHE_PASSWORD": s.CACHES["default"]["OPTIONS"]["password"],
    "CHAT": {name: getattr(s, name) for name in dir(s) if name.startswith("CHAT_")},
    "ACCOUNT": {name: getattr(s, name) for name in dir(s) if name.startswith("ACCOUNT_")},
    "SETTINGS": [name for name in dir(s) if name.isupper()],
    "AXES": [s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds()],
    "LOG_LEVEL": s.LOGGING["root"]["level"],
    "STORAGE": s.STORAGES["staticfiles"]["BACKEND"],
}))
"""


def settings_process(**variables: str) -> subprocess.CompletedProcess:
    """settings.py loaded in a fresh process under the given environment (PRINT_SETTINGS)."""
    return subprocess.run(
        [servers.PYTHON, "-c", PRINT_SETTINGS],
        cwd=servers.APP_DIR,
        env=servers.app_env(DJANGO_SETTINGS_MODULE="djchat.settings", **variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load_settings(**variables: str) -> dict:
    result = settings_process(**variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_settings_defaults_are_safe_for_production():
    loaded = load_settings()

    assert loaded["DEBUG"] is False
    assert loaded["SECRET_KEY"] == ""  # the servers refuse to start, see test_deploy.py
    assert loaded["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1"]
    assert loaded["SECURE_PROXY_SSL_HEADER"] is None
    assert loaded["DB_ENGINE"] == "django.db.backends.sqlite3"
    assert loaded["DB_NAME"].endswith("db.sqlite3")
    assert loaded["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert loaded["CHAT"] == {
        "CHAT_ACCOUNT_MAX_SOCKETS": 20,
        "CHAT_ADDRESS_RATE_LIMIT_MESSAGES": 30,
        "CHAT_ALLOW_ANONYMOUS": True,
        "CHAT_MAX_ROOMS": 10000,
        "CHAT_HISTORY_SIZE": 50,
        "CHAT_MAX_MESSAGE_LENGTH": 2000,
        "CHAT_PRESENCE_TTL": 30,
        "CHAT_RATE_LIMIT_MESSAGES": 10,
        "CHAT_RATE_LIMIT_SECONDS": 10,
        "CHAT_RESUME_LIMIT": 1000,
        "CHAT_ROOM_LIST_CACHE_SECONDS": 2,
    }
    assert loaded["ACCOUNT"] == {"ACCOUNT_LOCKOUT_FAILURES": 5, "ACCOUNT_LOCKOUT_SECONDS": 900}
    assert loaded["AXES"] == [5, 900]
    assert loaded["STORAGE"].endswith("ManifestStaticFilesStorage")


def test_settings_read_every_documented_variable(tmp_path):
    (tmp_path / "key").write_text("k" * 60 + "\n")
    (tmp_path / "db-password").write_text("db-secret\n")
    (tmp_path / "redis-password").write_text("redis-secret\n")

    loaded = load_settings(
        DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"),
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="chat.example.com,127.0.0.1",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://chat.example.com",
        DJANGO_TRUST_X_FORWARDED_PROTO="true",
        DJANGO_HTTPS="true",
        DJANGO_HSTS_SECONDS="600",
        DJANGO_LOG_LEVEL="warning",
        DATABASE_URL="postgres://chat@db:5432/chat",
        DATABASE_PASSWORD_FILE=str(tmp_path / "db-password"),
        REDIS_URL="redis://:ignored@redis:6379/0",
        REDIS_PASSWORD_FILE=str(tmp_path / "redis-password"),
        CHAT_MAX_MESSAGE_LENGTH="11",
        CHAT_RATE_LIMIT_MESSAGES="12",
        CHAT_RATE_LIMIT_SECONDS="13",
        CHAT_HISTORY_SIZE="14",
        CHAT_RESUME_LIMIT="15",
        CHAT_ALLOW_ANONYMOUS="false",
        CHAT_PRESENCE_TTL="16",
        CHAT_ROOM_LIST_CACHE_SECONDS="17",
        ACCOUNT_LOCKOUT_FAILURES="18",
        ACCOUNT_LOCKOUT_SECONDS="19",
        CHAT_ADDRESS_RATE_LIMIT_MESSAGES="20",
        CHAT_ACCOUNT_MAX_SOCKETS="21",
        CHAT_MAX_ROOMS="22",
    )

    assert loaded["SECRET_KEY"] == "k" * 60
    assert loaded["ALLOWED_HOSTS"] == ["chat.example.com", "127.0.0.1"]
    assert loaded["CSRF_TRUSTED_ORIGINS"] == ["https://chat.example.com"]
    assert loaded["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert loaded["SECURE_SSL_REDIRECT"] is True
    assert loaded["SESSION_COOKIE_SECURE"] is loaded["CSRF_COOKIE_SECURE"] is True
    assert loaded["SECURE_HSTS_SECONDS"] == 600
    assert loaded["LOG_LEVEL"] == "WARNING"
    assert (loaded["DB_ENGINE"], loaded["DB_PASSWORD"]) == (
        "django.db.backends.postgresql",
        "db-secret",
    )
    assert loaded["REDIS_URL"] == "redis://redis:6379/0"
    assert loaded["CACHE_LOCATION"] == "redis://redis:6379/0"
    assert loaded["REDIS_PASSWORD"] == loaded["CACHE_PASSWORD"] == "redis-secret"
    assert loaded["CHAT"] == {
        "CHAT_ACCOUNT_MAX_SOCKETS": 21,
        "CHAT_ADDRESS_RATE_LIMIT_MESSAGES": 20,
        "CHAT_ALLOW_ANONYMOUS": False,
        "CHAT_MAX_ROOMS": 22,
        "CHAT_HISTORY_SIZE": 14,
        "CHAT_MAX_MESSAGE_LENGTH": 11,
        "CHAT_PRESENCE_TTL": 16,
        "CHAT_RATE_LIMIT_MESSAGES": 12,
        "CHAT_RATE_LIMIT_SECONDS": 13,
        "CHAT_RESUME_LIMIT": 15,
        "CHAT_ROOM_LIST_CACHE_SECONDS": 17,
    }
    assert loaded["AXES"] == [18, 19]


SETTINGS_INTEGERS = sorted(name for name in INTEGERS if not name.startswith("GUNICORN_"))
GUNICORN_INTEGERS = sorted(name for name in INTEGERS if name.startswith("GUNICORN_"))


def integers_read(loaded: dict) -> dict[str, int]:
    """The value settings.py took for each integer variable, from PRINT_SETTINGS' output."""
    return {
        "DJANGO_HSTS_SECONDS": loaded["SECURE_HSTS_SECONDS"],
        **{name: value for name, value in loaded["CHAT"].items() if name in INTEGERS},
        **loaded["ACCOUNT"],
    }


@pytest.mark.parametrize("end", ["minimum", "maximum"])
def test_settings_take_every_integer_at_each_end_of_its_declared_range(end):
    values = {name: getattr(INTEGERS[name], end) for name in SETTINGS_INTEGERS}

    loaded = load_settings(DJANGO_HTTPS="true", **{n: str(v) for n, v in values.items()})

    assert integers_read(loaded) == values


def test_settings_refuse_an_integer_outside_its_range_naming_variable_and_range():
    result = settings_process(CHAT_RESUME_LIMIT="0")

    assert result.returncode != 0
    message = "CHAT_RESUME_LIMIT=0 is below the minimum of 1 (CHAT_RESUME_LIMIT must be between 1"
    assert message in result.stderr


def gunicorn_print_config(**env: str) -> subprocess.CompletedProcess:
    """gunicorn's own view of gunicorn.conf.py under the given environment (--print-config)."""
    return subprocess.run(
        [servers.PYTHON, "-m", "gunicorn", "--print-config", "-c", "gunicorn.conf.py",
         "djchat.wsgi:application"],
        cwd=servers.APP_DIR,
        env=servers.app_env(DJANGO_DEBUG="true", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def printed_config(result: subprocess.CompletedProcess) -> dict[str, str]:
    """Setting name -> value as `gunicorn --print-config` prints them."""
    return dict(re.findall(r"^(\w+)\s+= (.*)$", result.stdout, re.MULTILINE))


def test_gunicorn_config_reads_its_variables():
    result = gunicorn_print_config(
        GUNICORN_BIND="127.0.0.1:9001",
        GUNICORN_WORKERS="3",
        GUNICORN_WORKER_CLASS="gthread",
        GUNICORN_WORKER_CONNECTIONS="50",
        GUNICORN_THREADS="6",
        GUNICORN_TIMEOUT="31",
        GUNICORN_GRACEFUL_TIMEOUT="32",
        GUNICORN_KEEPALIVE="4",
        GUNICORN_MAX_REQUESTS="500",
        GUNICORN_MAX_REQUESTS_JITTER="50",
    )
    assert result.returncode == 0, result.stderr
    printed = printed_config(result)

    assert printed["bind"] == "['127.0.0.1:9001']"
    assert printed["workers"] == "3"
    assert printed["worker_class"] == "gthread"
    assert printed["worker_connections"] == "50"
    assert printed["threads"] == "6"
    assert (printed["timeout"], printed["graceful_timeout"], printed["keepalive"]) == (
        "31",
        "32",
        "4",
    )
    assert (printed["max_requests"], printed["max_requests_jitter"]) == ("500", "50")


def test_gunicorn_config_defaults_to_gevent_workers():
    result = gunicorn_print_config()

    assert re.search(r"^worker_class\s+= gevent$", result.stdout, re.MULTILINE), result.stderr
    assert re.search(r"^bind\s+= \['0.0.0.0:8000'\]$", result.stdout, re.MULTILINE)


def test_gunicorn_config_never_recycles_workers_by_default():
    # Each recycled worker imports Django again; an operator opts in to bound a leak.
    printed = printed_config(gunicorn_print_config())

    assert (printed["max_requests"], printed["max_requests_jitter"]) == ("0", "0")


def test_gunicorn_config_runs_the_automatic_worker_count_by_default():
    # djchat/cpus.py's rule from the CPUs this process may use (test_cpus.py fakes the cgroup).
    assert printed_config(gunicorn_print_config())["workers"] == str(auto_workers(usable_cpus()))
    assert printed_config(gunicorn_print_config(GUNICORN_WORKERS="0"))["workers"] == str(
        auto_workers(usable_cpus())
    )


@pytest.mark.parametrize("end", ["minimum", "maximum"])
def test_gunicorn_config_takes_every_integer_at_each_end_of_its_declared_range(end):
    values = {name: getattr(INTEGERS[name], end) for name in GUNICORN_INTEGERS}

    result = gunicorn_print_config(**{name: str(value) for name, value in values.items()})

    assert result.returncode == 0, result.stderr
    printed = printed_config(result)
    read = {name: int(printed[name.removeprefix("GUNICORN_").lower()]) for name in values}
    if values["GUNICORN_WORKERS"] == 0:
        values["GUNICORN_WORKERS"] = auto_workers(usable_cpus())
    assert read == values


def test_gunicorn_config_refuses_an_integer_outside_its_range():
    result = gunicorn_print_config(GUNICORN_THREADS="65")

    assert result.returncode != 0
    assert "GUNICORN_THREADS=65 is above the maximum of 64" in result.stderr


@pytest.mark.parametrize(("value", "expected"), [("true", "-"), ("false", "None")])
def test_gunicorn_access_log_can_be_switched_off(value, expected):
    result = gunicorn_print_config(GUNICORN_ACCESS_LOG=value)

    assert re.search(rf"^accesslog\s+= {expected}$", result.stdout, re.MULTILINE), (
        result.stdout + result.stderr
    )


def test_gunicorn_config_turns_the_control_socket_off():
    # It would be created under $HOME, which the read-only container has not got.
    result = gunicorn_print_config()

    assert re.search(r"^control_socket_disable\s+= True$", result.stdout, re.MULTILINE), (
        result.stdout + result.stderr
    )


def test_gunicorn_config_never_reloads_by_default():
    printed = printed_config(gunicorn_print_config())

    assert (printed["reload"], printed["reload_extra_files"]) == ("False", "[]")


def test_gunicorn_reload_watches_every_module_and_template_from_the_start():
    # The cached template loader keeps a compiled template for the life of a worker, and views
    # are imported by the first request, after the reloader has taken its first look.
    printed = printed_config(gunicorn_print_config(GUNICORN_RELOAD="true"))

    assert printed["reload"] == "True"
    assert printed["reload_extra_files"] == repr(
        [f"{servers.APP_DIR}/**/*.py", f"{servers.APP_DIR}/*/templates/**/*"]
    )


def test_gunicorn_reload_turns_keep_alive_off():
    # Otherwise a reloading worker serves the old code on nginx's idle connections for up to
    # graceful_timeout.
    printed = printed_config(gunicorn_print_config(GUNICORN_RELOAD="true", GUNICORN_KEEPALIVE="75"))

    assert printed["keepalive"] == "0"
