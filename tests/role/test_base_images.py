"""The local base images (playbooks/base_images.yml): the rootfs is bootstrapped only from a mirror
whose Release is signed by Debian's archive key (a mirror signed by another key stops the play,
nothing imported), the images' apt sources hold the suite's updates and security suites, and the
images carry every fix those suites had when they were built (apt finds nothing to upgrade)."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from playbook import REPO_ROOT, local_inventory, run_playbook

# What `make base-images` builds (make test-role runs it first); another prefix for a scratch build.
PREFIX = os.environ.get("DJCHAT_TEST_BASE_IMAGES_PREFIX", "djchat-local")
SUITE = "bookworm"
IMAGES = [f"{PREFIX}/{name}:{SUITE}" for name in ("python", "nginx", "redis")]
MIRROR = "http://deb.debian.org/debian"  # the role's defaults
SECURITY_MIRROR = "http://security.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def docker(*args: str, check: bool = True, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


@pytest.mark.parametrize("image", IMAGES)
def test_the_base_images_apt_sources_hold_the_updates_and_security_suites(image):
    sources = docker("run", "--rm", image, "cat", "/etc/apt/sources.list").stdout
    entries = [line.split() for line in sources.splitlines() if line.startswith("deb ")]
    assert entries == [
        ["deb", MIRROR, SUITE, "main"],
        ["deb", MIRROR, f"{SUITE}-updates", "main"],
        ["deb", SECURITY_MIRROR, f"{SUITE}-security", "main"],
    ], sources


@pytest.mark.parametrize("image", IMAGES)
def test_the_base_images_have_no_security_or_stable_update_pending(image):
    """apt in the image, against the image's own sources: nothing to upgrade, unless a suite was
    updated after the rootfs was upgraded (then the image is merely older than the fix: skipped,
    naming the rebuild)."""
    created = docker("image", "inspect", "--format", "{{.Created}}", f"{PREFIX}/debian:{SUITE}")
    seconds = re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", created.stdout).group(0)
    rootfs_upgraded = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    script = (
        "apt-get update -qq || exit 3; "
        "grep -h '^Date:' /var/lib/apt/lists/*Release; echo ---; "
        "apt-get -s -o Debug::NoLocking=1 dist-upgrade"
    )
    result = docker("run", "--rm", "--user", "0", image, "bash", "-c", script, check=False)
    if result.returncode == 3:
        pytest.skip(
            f"the Debian mirrors cannot be reached from a container: {result.stderr[-500:]}"
        )
    assert result.returncode == 0, result.stderr
    dates, plan = result.stdout.split("---\n", 1)
    suites_updated = [
        parsedate_to_datetime(line.split(":", 1)[1].strip()) for line in dates.splitlines()
    ]
    assert len(suites_updated) == 3, dates
    pending = [line for line in plan.splitlines() if line.startswith("Inst ")]
    if pending and max(suites_updated) > rootfs_upgraded:
        pytest.skip(
            f"a suite was updated ({max(suites_updated)}) after {image}'s rootfs"
            f" ({rootfs_upgraded}); rebuild: ansible-playbook playbooks/base_images.yml"
            " -e djchat_base_images_rebuild=true"
        )
    assert not pending, f"{image}: updates the image lacks:\n" + "\n".join(pending)


def signed_by_another_key(mirror: Path, gnupg_home: Path) -> None:
    """A mirror whose InRelease for SUITE is clear-signed by a throwaway key."""
    gnupg_home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(gnupg_home), "--passphrase", ""]
    subprocess.run(
        [*gpg, "--quick-gen-key", "not debian <test@invalid>", "ed25519", "sign", "never"],
        capture_output=True,
        check=True,
    )
    release = mirror / "debian" / "dists" / SUITE / "Release"
    release.parent.mkdir(parents=True)
    release.write_text(
        f"Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: {SUITE}\n"
        f"Date: {datetime.now(UTC):%a, %d %b %Y %H:%M:%S UTC}\n"
        "Architectures: amd64\nComponents: main\nSHA256:\n"
    )
    subprocess.run(
        [*gpg, "--clearsign", "--output", str(release.with_name("InRelease")), str(release)],
        capture_output=True,
        check=True,
    )


def test_a_mirror_not_signed_by_debians_archive_key_stops_the_bootstrap(tmp_path):
    signed_by_another_key(tmp_path / "mirror", tmp_path / "gnupg")
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prefix = f"djchat-supplytest-{uuid.uuid4().hex[:8]}"
    project = tmp_path / "project"
    try:
        result = run_playbook(
            REPO_ROOT / "playbooks/base_images.yml",
            {
                "djchat_base_images_prefix": prefix,
                "djchat_base_images_build_dir": str(project),
                "djchat_debian_mirror": f"http://127.0.0.1:{server.server_port}/debian",
            },
            inventory=local_inventory(tmp_path / "inventory.json"),
        )
    finally:
        server.shutdown()
        server.server_close()

    assert result.returncode != 0, result.output
    assert result.tasks_run[-1] == "djchat.stack.base_images : Remove the rootfs", result.tasks_run
    (failed,) = result.failed_results
    assert f"--keyring={KEYRING}" in failed["cmd"], failed["cmd"]
    said = failed["stdout"] + failed["stderr"]  # debootstrap writes its errors on stdout
    assert "E: Release signed by unknown key" in said, said
    assert not (project / "rootfs").exists()
    assert docker("image", "ls", "--quiet", f"{prefix}/*").stdout == ""
