"""A new base image is a new release: the app's tag digests the python base image's id, so a
converge after the base changed (a pull of a newer upstream with djchat_base_images_pull, or
the local base images rebuilt) builds a new app image and rolls it out like any release, with no
request failing meanwhile.

The first test stands in for an upstream security update without a registry: it gives the
scenario's python base image a new id (the same image plus a label, under the same name),
converges while a client keeps asking for the home page, then puts the original back and
converges again.

The second takes the pull path itself (tasks/app_tag.yml) against a real registry, as Docker's
documentation runs one: a container of the registry image the scenario's prepare built from
Debian's docker-registry (djchat_base_images_extra: [registry], the default scenario only),
published on 127.0.0.1, which the engine reaches over plain HTTP without configuration. The base
images are pushed there, then a changed python image under the same reference: a converge without
djchat_base_images_pull keeps the local copy, one with it pulls the new image and rolls out a new
release with no failed request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from helpers import Stack, docker, unique, wait_until


def image_id(name: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()


def image_labels(name: str) -> dict[str, str]:
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", name).stdout
    return json.loads(labels) or {}


REFRESHED = "org.djchat.test.refreshed"


def refresh(image: str) -> str:
    """Give `image` a new id: the same image plus a label (REFRESHED, a fresh value, which images
    built on it inherit), under the same name. Returns the label's value."""
    value = unique("base")
    docker(
        "build", "--quiet", "--label", f"{REFRESHED}={value}", "--tag", image, "-",
        input_text=f"FROM {image}\n",
    )  # fmt: skip
    return value


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
    refresh(base)
    assert image_id(base) != original_base
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


# --- the pull path, against a registry on 127.0.0.1 ----------------------------------------------


@contextmanager
def local_registry(image: str) -> Iterator[str]:
    """A registry container from `image`, published on a port of 127.0.0.1 the engine picks
    (plain HTTP: the engine trusts registries on 127.0.0.0/8); yields its host:port. Its storage
    is the container's own, removed with it."""
    name = unique("djchat-e2e-registry")
    docker("run", "--detach", "--name", name, "--publish", "127.0.0.1::5000", image)
    try:
        # "127.0.0.1:32768", one line per binding.
        address = docker("port", name, "5000/tcp").stdout.split()[0]

        def answers() -> bool:
            with requests.Session() as session:
                session.trust_env = False  # no proxy from the environment for 127.0.0.1
                return session.get(f"http://{address}/v2/", timeout=5).status_code == 200

        wait_until(answers, timeout=60, interval=1.0, what=f"the registry on {address}")
        yield address
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def release(stack: Stack) -> str:
    """The app image the stack runs (wsgi's), after checking that every wsgi and asgi runs it."""
    image = stack.service("wsgi").attrs["Config"]["Image"]
    running = {c.attrs["Config"]["Image"] for c in stack.services(r"^(wsgi|asgi\d+)$")}
    assert running == {image}, f"wsgi and asgi run {running}, not one release"
    return image


@pytest.mark.disruptive
@pytest.mark.timeout(3000)  # pushes, three converges, two of them building the app image
def test_a_pulled_base_image_rolls_out_a_new_release_without_a_failed_request(stack: Stack):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    if not stack.expect.get("registry_image"):
        pytest.skip(
            "no registry image in this scenario: djchat_base_images_extra: [registry] "
            "(molecule test -s default)"
        )
    # djchat_base_images_pull pulls every base image, so all three come from the registry.
    bases = {kind: stack.expect[f"{kind}_image"] for kind in ("python", "nginx", "redis")}
    assert not any("@" in base for base in bases.values()), f"pinned by digest: {bases}"
    original_release = release(stack)
    pushed: list[str] = []
    with local_registry(stack.expect["registry_image"]) as registry:
        try:
            remote = {kind: f"{registry}/{base}" for kind, base in bases.items()}
            for kind, base in bases.items():
                docker("tag", base, remote[kind])
                pushed.append(remote[kind])
                docker("push", "--quiet", remote[kind], timeout=600)
            python = remote["python"]
            original_base = image_id(python)

            # The upstream's update: the same reference now names a changed image in the
            # registry, while this host keeps the copy it had (tagged back to it).
            label = refresh(python)
            refreshed_base = image_id(python)
            assert refreshed_base != original_base
            docker("push", "--quiet", python, timeout=600)
            docker("tag", original_base, python)

            images = {f"djchat_{kind}_image": reference for kind, reference in remote.items()}
            # Without djchat_base_images_pull the base present on the host is used: a new
            # release (the base's reference is a build argument) built on the old base.
            stack.playbook("site.yml", "-e", json.dumps(images), timeout=1500)
            old_release = release(stack)
            assert image_id(python) == original_base, "a converge without the pull pulled"
            assert REFRESHED not in image_labels(old_release), (
                f"{old_release} was built on the registry's new base, not the host's copy"
            )

            # With it the converge pulls the new base, builds on it and rolls it out.
            prober = Prober(stack)
            prober.start()
            try:
                pull = json.dumps({**images, "djchat_base_images_pull": True})
                pulled = stack.playbook("site.yml", "-e", pull, timeout=1500)
                time.sleep(1)
            finally:
                prober.stop.set()
                prober.join()
            assert image_id(python) == refreshed_base, (
                f"djchat_base_images_pull did not pull the registry's {python}:\n"
                f"{pulled.output[-3000:]}"
            )
            new_release = release(stack)
            assert new_release != old_release, "a pulled base must give the app a new tag"
            assert image_labels(new_release).get(REFRESHED) == label, (
                f"{new_release} was not built on the pulled base"
            )
            assert not prober.failed, f"{len(prober.failed)} of {prober.sent} requests failed"
            print(f"{old_release} -> {new_release}: {prober.sent} requests, none failed")
        finally:
            # Back to the scenario's own base images (the original release was kept: nothing
            # to build), then no image keeps the registry's references: untagged, the pulled
            # base lives on only under the releases built on it (teardown removes them).
            try:
                stack.playbook("site.yml", timeout=1500)
            finally:
                for reference in pushed:
                    docker("rmi", reference, check=False)
    assert release(stack) == original_release
    left = [ref for ref in pushed if docker("image", "inspect", ref, check=False).returncode == 0]
    assert not left, f"images still tagged with the registry's references: {left}"
