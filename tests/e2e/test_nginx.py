"""What nginx does itself: static files with long-lived caching, gzip, no version banner."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from helpers import Stack

ONE_YEAR = 365 * 24 * 3600
ASSET = re.compile(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"')


@pytest.fixture(scope="module")
def assets(stack: Stack) -> list[str]:
    page = stack.get("/r/e2e-assets/").text
    found = sorted(set(ASSET.findall(page)))
    assert found, "the room page links no /static/ css or js"
    return found


def test_static_files_have_content_hashed_names(assets: list[str]):
    # ManifestStaticFilesStorage: the name changes with the content, so caching forever is safe.
    for path in assets:
        assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", path), f"{path} has no content hash"


def test_static_files_are_served_by_nginx_with_long_cache_headers(stack: Stack, assets: list[str]):
    for path in assets:
        response = stack.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        assert "X-Served-By" not in response.headers, (
            f"{path} was answered by the app ({response.headers['X-Served-By']}), not by nginx"
        )
        max_age = re.search(r"max-age=(\d+)", response.headers.get("Cache-Control", ""))
        assert int(max_age.group(1) if max_age else 0) >= ONE_YEAR, (
            f"{path}: Cache-Control {response.headers.get('Cache-Control')!r}, expected max-age "
            "of a year or more"
        )
        expires = parsedate_to_datetime(response.headers["Expires"])
        assert expires > datetime.now(UTC) + timedelta(days=364), f"{path}: Expires {expires}"


def test_unknown_static_file_is_a_404_from_nginx(stack: Stack):
    response = stack.get("/static/no-such-file.css")
    assert response.status_code == 404
    assert "X-Served-By" not in response.headers


@pytest.mark.parametrize("kind", ["static", "page"])
def test_responses_are_gzipped_when_the_client_accepts_it(
    stack: Stack, assets: list[str], kind: str
):
    path = assets[0] if kind == "static" else "/"
    compressed = stack.get(path, headers={"Accept-Encoding": "gzip"})
    assert compressed.status_code == 200
    assert compressed.headers.get("Content-Encoding") == "gzip", (
        f"{path}: no gzip (headers {dict(compressed.headers)})"
    )
    plain = stack.get(path, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    if kind == "static":
        assert compressed.content == plain.content  # requests decompressed it


def test_nginx_does_not_announce_its_version(stack: Stack):
    assert stack.get("/healthz").headers.get("Server") == "nginx"


def test_security_headers_are_sent(stack: Stack):
    headers = stack.get("/").headers
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"


def test_the_tls_private_key_is_a_secret_only_nginx_can_read(stack: Stack):
    """Under the 0700 secrets directory (no other account on the host can reach it, whatever uid
    nginx's is there), 0600 and owned by nginx's uid; the certificate directory holds no key."""
    if not stack.tls:
        pytest.skip("TLS is off in this scenario")
    secrets = stack.project_dir / "secrets"
    key = secrets / "tls" / "privkey.pem"
    nginx_uid = int(stack.service("nginx").exec("id", "-u").stdout)

    assert (stat.S_IMODE(secrets.stat().st_mode), secrets.stat().st_uid) == (0o700, 0)
    assert (stat.S_IMODE(key.stat().st_mode), key.stat().st_uid) == (0o600, nginx_uid)
    assert [path.name for path in (stack.project_dir / "tls").iterdir()] == ["fullchain.pem"]
    assert stack.service("nginx").exec("head", "-c", "10", "/run/secrets/tls/privkey.pem").stdout
