"""Every bench profile, with the bench's harness on top (as bench/run.py and bench/cluster.py
deploy them), passes the role's validation: a range the app narrows (app/djchat/bounds.py) must
not leave `make bench` failing at its first converge."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from playbook import REPO_ROOT, render

BENCH = REPO_ROOT / "bench"
PROFILES = sorted(path.stem for path in (BENCH / "profiles").glob("*.yml"))
HARNESS_PORTS = {"djchat_http_port", "djchat_https_port"}  # render() picks free ones


@pytest.mark.parametrize("profile", PROFILES)
def test_bench_profile_passes_the_roles_validation(profile: str, tmp_path: Path):
    variables = {
        **yaml.safe_load((BENCH / "profiles" / f"{profile}.yml").read_text()),
        **{
            key: value
            for key, value in yaml.safe_load((BENCH / "harness.yml").read_text()).items()
            if key not in HARNESS_PORTS
        },
    }

    run = render(tmp_path / "render", variables)

    assert run.returncode == 0, "\n".join(run.failure_messages) or run.output
