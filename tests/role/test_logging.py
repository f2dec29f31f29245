"""djchat_log_driver and djchat_log_options as the role renders them into the compose file, which
`docker compose config` (Compose's own validation) must accept: with the rotation of a driver
that keeps files, and with a driver that takes no options at all."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from playbook import render

CASES = {
    "json-file": ({}, {"max-file": "3", "max-size": "10m"}),
    "local": ({"djchat_log_max_files": 2}, {"max-file": "2", "max-size": "10m"}),
    "journald": ({}, {}),
    "syslog": (
        {"djchat_log_options": {"syslog-address": "udp://logs.example.com:514", "tag": "djchat"}},
        {"syslog-address": "udp://logs.example.com:514", "tag": "djchat"},
    ),
}


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="djchat-logging-test-") as directory:
        yield Path(directory)


@pytest.mark.parametrize("driver", CASES)
def test_every_service_logs_through_the_driver_compose_accepts(scratch: Path, driver: str):
    variables, options = CASES[driver]
    run = render(scratch / driver, {"djchat_log_driver": driver, **variables})
    assert run.returncode == 0, f"{driver} was refused: {run.failure_messages}\n{run.output}"
    compose_file = scratch / driver / "compose.yml"

    config = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "config"],
        cwd=compose_file.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert config.returncode == 0, config.stderr
    services = yaml.safe_load(config.stdout)["services"]
    for name, service in services.items():
        assert service["logging"] == {"driver": driver, "options": options} or (
            not options and service["logging"] == {"driver": driver}
        ), f"{name}: {service['logging']}"
