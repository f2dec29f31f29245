"""A new base image is a new release: the app's tag digests the python base image's id, so a
converge after the base changed (a pull of a newer upstream with djchat_base_images_pull, or
the local base images rebuilt) builds a new app image and rolls it out like any release, with no
request failing meanwhile.

The test stands in for an upstream security update without a registry: it gives the scenario's
python base image a new id (the same image plus a label, under the same name), converges while
a client keeps asking for the home page, then puts the original back and converges again."""

from __future__ import annotations

import threading
import time

import pytest

from helpers import Stack, docker, unique


def image_id(name: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()


class Prober(threading.Thread):
    """GET / every 0.1 s on a new connection each time, as long as it runs; counts failures."""

    def __init__(self, stack: Stack):
        super().__init__(daemon=True)
        self.stack, self.stop, self.sent, self.failed = stack, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            self.sent += 1
            try:
                status = self.stack.get("/", timeout=10).status_code
            except OSError as error:
                status = repr(error)
            if status != 200:
                self.failed.append(status)
            time.sleep(0.1)


@pytest.mark.disruptive
@pytest.mark.timeout(1800)  # two converges, one of them building the app image
def test_a_new_base_image_rolls_out_a_new_release_without_a_failed_request(stack: Stack):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    base = stack.expect["python_image"]
    original_base = image_id(base)
    original_release = stack.service("wsgi").attrs["Config"]["Image"]
    refreshed = docker(
        "build", "--quiet", "--label", f"org.djchat.test.refreshed={unique('base')}",
        "--tag", base, "-",
        input_text=f"FROM {base}\n",
    )  # fmt: skip
    assert image_id(base) != original_base, refreshed.stdout
    try:
        prober = Prober(stack)
        prober.start()
        stack.playbook("site.yml", timeout=1500)
        time.sleep(1)
        prober.stop.set()
        prober.join()
        new_release = stack.service("wsgi").attrs["Config"]["Image"]
        assert new_release != original_release, "a new base must give the app a new tag"
        assert {c.attrs["Config"]["Image"] for c in stack.services(r"^(wsgi|asgi\d+)$")} == {
            new_release
        }
        assert not prober.failed, f"{len(prober.failed)} of {prober.sent} requests failed"
        print(f"{original_release} -> {new_release}: {prober.sent} requests, none failed")
    finally:
        docker("tag", original_base, base)
    # The original base is the original release again (its image was kept): nothing to build.
    stack.playbook("site.yml", timeout=1500)
    assert stack.service("wsgi").attrs["Config"]["Image"] == original_release
