"""Trusted proxies, the public scheme, the admin's and /readyz's addresses, as the role renders
them: nginx.conf (checked by nginx itself, `nginx -t` in the stack's nginx image), app.env and
the compose file, from render.yml runs side by side; and the contradictions validation refuses,
naming the variable. How the rendered nginx behaves is tests/e2e/test_proxy.py's, on a stack.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from playbook import REPO_ROOT, PlaybookRun, render

LOCAL_GROUP_VARS = REPO_ROOT / "inventory/local/group_vars/djchat/main.yml"
NGINX_IMAGE = yaml.safe_load(LOCAL_GROUP_VARS.read_text())["djchat_nginx_image"]

ACCEPTED = {
    # nginx is the edge (the default): nothing forwarded is believed.
    "edge": {},
    # TLS ended by a balancer in 10.0.0.0/8 or 2001:db8::/32; the admin from 192.0.2.0/24 on
    # localhost only.
    "balancer": {
        "djchat_trusted_proxies": ["10.0.0.0/8", "2001:db8::/32"],
        "djchat_public_scheme": "https",
        "djchat_admin_allowed_addresses": ["192.0.2.0/24", "198.51.100.7"],
        "djchat_admin_host": "localhost",
    },
    # TLS here too, behind a balancer that may also speak https to nginx.
    "balancer-and-tls": {
        "djchat_trusted_proxies": ["172.16.0.0/12"],
        "djchat_tls_enabled": True,
        "djchat_tls_self_signed": True,
    },
}

# variables -> the variable the refusal must name
REFUSED = {
    "host-bits-set": ({"djchat_trusted_proxies": ["10.0.0.1/8"]}, "djchat_trusted_proxies"),
    "not-an-address": ({"djchat_trusted_proxies": ["lb.example.com"]}, "djchat_trusted_proxies"),
    "trust-everyone": ({"djchat_trusted_proxies": ["0.0.0.0/0"]}, "djchat_trusted_proxies"),
    "admin-not-an-address": (
        {"djchat_admin_allowed_addresses": ["10.0.0.0/33"]},
        "djchat_admin_allowed_addresses",
    ),
    "admin-host-unknown": ({"djchat_admin_host": "admin.example.com"}, "djchat_admin_host"),
    "https-with-nothing-ending-tls": ({"djchat_public_scheme": "https"}, "djchat_public_scheme"),
    "http-with-tls": (
        {
            "djchat_public_scheme": "http",
            "djchat_tls_enabled": True,
            "djchat_tls_self_signed": True,
        },
        "djchat_public_scheme",
    ),
}


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="djchat-proxy-test-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def runs(scratch: Path) -> dict[str, PlaybookRun]:
    profiles = {**ACCEPTED, **{name: case[0] for name, case in REFUSED.items()}}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(render, scratch / name, variables)
            for name, variables in profiles.items()
        }
    return {name: future.result() for name, future in futures.items()}


def rendered(runs, scratch: Path, profile: str) -> tuple[str, dict[str, str], dict]:
    """nginx.conf, app.env and compose.yml of an accepted profile."""
    run = runs[profile]
    assert run.returncode == 0, f"{profile} was refused: {run.failure_messages}\n{run.output}"
    directory = scratch / profile
    lines = (directory / "app.env").read_text().splitlines()
    app_env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    compose = yaml.safe_load((directory / "compose.yml").read_text())
    return (directory / "nginx.conf").read_text(), app_env, compose


def nginx_test(config: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on `config` in the stack's nginx image, with the file the entrypoint writes
    at start (this host's address), a throwaway certificate and the upstream names resolving."""
    this_host = config.parent / "this-host.geo"
    this_host.write_text("172.18.0.1 1;\n")
    tls = config.parent / "tls"
    tls.mkdir(exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(tls / "privkey.pem"),
            "-out",
            str(tls / "fullchain.pem"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    (tls / "privkey.pem").chmod(0o644)
    return subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{config}:/etc/nginx/nginx.conf:ro",
            "-v",
            f"{this_host}:/tmp/djchat/this-host.geo:ro",
            "-v",
            f"{tls / 'fullchain.pem'}:/etc/djchat/tls/fullchain.pem:ro",
            "-v",
            f"{tls / 'privkey.pem'}:/run/secrets/tls/privkey.pem:ro",
            *[f"--add-host={name}:127.0.0.1" for name in ["wsgi", "asgi1", "asgi2"]],
            "--entrypoint",
            "nginx",
            NGINX_IMAGE,
            "-t",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def directives(config: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]*);", config, re.MULTILINE)


@pytest.mark.parametrize("profile", ACCEPTED)
def test_nginx_accepts_the_rendered_configuration(runs, scratch, profile):
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    config = scratch / profile / "nginx.conf"
    rendered(runs, scratch, profile)
    result = nginx_test(config)
    assert result.returncode == 0, f"nginx -t refused {config}:\n{result.stderr}"


def test_at_the_edge_nothing_forwarded_is_believed(runs, scratch):
    config, app_env, _ = rendered(runs, scratch, "edge")
    assert directives(config, "set_real_ip_from") == []
    assert "real_ip_header" not in config
    assert set(directives(config, "proxy_set_header X-Forwarded-Proto")) == {"$scheme"}
    assert set(directives(config, "proxy_set_header X-Forwarded-For")) == {"$remote_addr"}
    assert set(directives(config, "proxy_set_header X-Real-IP")) == {"$remote_addr"}
    assert app_env["DJANGO_HTTPS"] == "false"
    assert "Strict-Transport-Security $djchat_hsts" not in config


def test_behind_a_balancer_nginx_takes_the_client_from_the_trusted_ranges_only(runs, scratch):
    config, _, _ = rendered(runs, scratch, "balancer")
    assert directives(config, "set_real_ip_from") == ["10.0.0.0/8", "2001:db8::/32"]
    assert directives(config, "real_ip_header") == ["X-Forwarded-For"]
    assert directives(config, "real_ip_recursive") == ["on"]
    # The scheme: from the peer itself when it is a balancer, never from anyone else.
    assert re.search(
        r"geo \$realip_remote_addr \$djchat_peer_is_proxy \{\s*default 0;"
        r"\s*10\.0\.0\.0/8 1;\s*2001:db8::/32 1;\s*\}",
        config,
    ), config
    assert re.search(r'"1:https" https;\s*"1:http" http;', config)
    assert set(directives(config, "proxy_set_header X-Forwarded-Proto")) == {
        "$djchat_forwarded_proto"
    }
    assert set(directives(config, "proxy_set_header X-Forwarded-For")) == {"$remote_addr"}


def test_tls_at_a_balancer_makes_the_app_and_nginx_speak_https(runs, scratch):
    config, app_env, _ = rendered(runs, scratch, "balancer")
    assert app_env["DJANGO_HTTPS"] == "true"
    # The browser's origin is the balancer's https://name (port 443), not nginx's http port.
    assert app_env["DJANGO_CSRF_TRUSTED_ORIGINS"].split(",") == [
        "https://localhost",
        "https://127.0.0.1",
    ]
    assert re.search(
        r'map \$djchat_forwarded_proto \$djchat_hsts \{\s*default "";\s*'
        r'https "max-age=31536000; includeSubDomains";',
        config,
    ), config
    assert "add_header Strict-Transport-Security $djchat_hsts always;" in config


def test_the_admin_and_readyz_answer_allowed_addresses_only(runs, scratch):
    config, _, _ = rendered(runs, scratch, "balancer")
    admin = re.search(r"geo \$djchat_admin_allowed \{(.*?)\}", config, re.DOTALL)[1]
    assert re.findall(r"^\s*(\S+) 1;", admin, re.MULTILINE) == [
        "127.0.0.1",
        "::1",
        "192.0.2.0/24",
        "198.51.100.7",
    ]
    assert "include /tmp/djchat/this-host.geo;" in admin
    readyz = re.search(r"geo \$djchat_readyz_allowed \{(.*?)\}", config, re.DOTALL)[1]
    assert re.findall(r"^\s*(\S+) 1;", readyz, re.MULTILINE) == [
        "127.0.0.1",
        "::1",
        "192.0.2.0/24",
        "198.51.100.7",
        "10.0.0.0/8",
        "2001:db8::/32",
    ]
    location = re.search(r"location /admin/ \{(.*?)\n        \}", config, re.DOTALL)[1]
    assert re.search(r"if \(\$djchat_admin_host = 0\) \{\s*return 404;", location), location
    assert re.search(r"if \(\$djchat_admin_allowed = 0\) \{\s*return 403;", location), location
    assert "limit_req zone=djchat_login" in location
    assert re.search(r"map \$host \$djchat_admin_host \{\s*default 0;\s*localhost 1;", config)
    location = re.search(r"location = /readyz \{(.*?)\n        \}", config, re.DOTALL)[1]
    assert re.search(r"if \(\$djchat_readyz_allowed = 0\) \{\s*return 403;", location), location


def test_the_app_containers_are_named_after_their_service_not_their_id(runs, scratch):
    _, _, compose = rendered(runs, scratch, "edge")
    services = compose["services"]
    assert {name: services[name].get("hostname") for name in ["wsgi", "asgi1", "asgi2"]} == {
        "wsgi": "wsgi",
        "asgi1": "asgi1",
        "asgi2": "asgi2",
    }


@pytest.mark.parametrize("case", REFUSED)
def test_validation_refuses_contradictions_naming_the_variable(runs, case):
    run = runs[case]
    _, variable = REFUSED[case]
    assert run.returncode != 0, f"{case} was accepted:\n{run.output}"
    assert any(variable in message for message in run.failure_messages), (
        f"{case}: no failure names {variable}: {run.failure_messages}\n{run.output}"
    )
    assert "Render the nginx configuration" not in run.tasks_run
