"""What the app image is built from is what the locks name, byte for byte: every pin of the app's
lock (and of the controller's) carries the sha256 of its files; the wheelhouse the controller
downloads keeps only files with one of those hashes (tasks/wheelhouse.yml, the role's own tasks
here); the image build installs with --require-hashes, so a wheel changed after the download, or a
pin without a hash, stops the build (a real `docker build` of app/Dockerfile's dependency stage,
with the role's build arguments, offline, on the local python base image). Base images from a
registry can be pinned by digest (name:tag@sha256:...): validation accepts that form and no
other, the Dockerfile builds from the pinned reference (its PYTHON_IMAGE build argument, so the
app's content tag, a digest of the build arguments, changes with it), and the role looks the image
up and pulls it as name@sha256:..., how the engine records it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from playbook import APP_DIR, REPO_ROOT, free_port, run_playbook

PLAYBOOK = Path(__file__).resolve().parent / "supply_chain.yml"
PYTHON_IMAGE = "djchat-local/python:bookworm"  # playbooks/base_images.yml (make base-images)
# Two pure-Python pins of the app's lock: small wheels, no dependencies among the app's others.
SAMPLE = ("sqlparse", "asgiref")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
DOCKERFILE = APP_DIR / "Dockerfile"


def stages(dockerfile: str) -> dict[str, str]:
    """Each stage of a Dockerfile by its name (the unnamed last one as ""), from its FROM line."""
    found: dict[str, str] = {}
    for block in re.split(r"^(?=FROM )", dockerfile, flags=re.MULTILINE)[1:]:
        name = re.match(r"FROM \S+(?: AS (\S+))?", block)
        found[name.group(1) or ""] = block
    return found


def lock_entries(text: str) -> dict[str, str]:
    """Each pin of a pip-compile output, by package name, with its --hash lines."""
    entries: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            name = match.group(1).lower()
            entries[name] = line
        elif name and line.startswith("    --hash="):
            entries[name] += "\n" + line
        else:
            name = None
    return entries


def hashes_of(entry: str) -> set[str]:
    return set(re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))


def sample_lock(*, unhashed: bool = False, wrong_hash: str = "") -> str:
    """A lock of SAMPLE's pins as the app's lock has them; `unhashed`: without any hash (as the
    lock was before hashes, where pip checks nothing unless told to require them), `wrong_hash`:
    that pin with the hash of other bytes."""
    entries = lock_entries((APP_DIR / "requirements.lock").read_text())
    lines = []
    for name in SAMPLE:
        entry = entries[name]
        if unhashed:
            entry = entry.splitlines()[0].removesuffix(" \\")
        elif name == wrong_hash:
            other = hashlib.sha256(b"not the file PyPI serves").hexdigest()
            entry = f"{entry.splitlines()[0]}\n    --hash=sha256:{other}"
        lines.append(entry)
    return "\n".join(lines) + "\n"


def run(tmp: Path, lock: str, **variables: object):
    """The playbook with an app directory holding `lock`; returns the run and the build context
    on the target (the wheelhouse in its wheels/)."""
    app = tmp / "app"
    app.mkdir(exist_ok=True)
    (app / "manage.py").write_text("")
    (app / "requirements.lock").write_text(lock)
    (tmp / "render").mkdir(exist_ok=True)
    project = tmp / "project"
    result = run_playbook(
        PLAYBOOK,
        {
            "render_dir": str(tmp / "render"),
            "djchat_project_dir": str(project),
            "djchat_controller_cache_dir": str(tmp / "cache"),
            "djchat_app_source_dir": str(app),
            "djchat_python_image": PYTHON_IMAGE,
            "djchat_bind_address": "127.0.0.1",
            "djchat_http_port": free_port(),
            **variables,
        },
    )
    return result, project / "build" / "app"  # the build context, where the wheelhouse goes


def docker_build(
    context: Path, build_args: dict, *command: str, target: str = ""
) -> subprocess.CompletedProcess[str]:
    """`docker build` of `context` with `build_args` (and `target`) without a network; when it
    succeeded and `command` is given, the result of `command` in a container of the image."""
    tag = f"djchat-supplytest/hashes:{uuid.uuid4().hex[:12]}"
    arguments = [f"--build-arg={name}={value}" for name, value in build_args.items()]
    try:
        built = subprocess.run(
            ["docker", "build", "--network", "none", "--progress", "plain", "-t", tag]
            + arguments
            + ([f"--target={target}"] if target else [])
            + [str(context)],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if built.returncode != 0 or not command:
            return built
        return subprocess.run(
            ["docker", "run", "--rm", "--network", "none", tag, *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        subprocess.run(["docker", "image", "rm", "--force", tag], capture_output=True, check=False)


def install_context(tmp: Path, lock: str, wheels: Path) -> Path:
    """A build context for app/Dockerfile's dependency stages (the rest needs the app's source):
    the Dockerfile, the lock and the wheels in wheels/, as the role lays them out."""
    context = tmp / f"context-{uuid.uuid4().hex[:8]}"
    context.mkdir()
    shutil.copy(DOCKERFILE, context / "Dockerfile")
    (context / "requirements.lock").write_text(lock)
    shutil.copytree(wheels, context / "wheels")
    return context


def build_args_of(render: Path) -> dict:
    return json.loads((render / "build_args.json").read_text())


def dependency_stage(build_args: dict) -> str:
    """The stage app/Dockerfile's builder starts from with these arguments."""
    (builder,) = re.findall(r"^FROM (\S+) AS builder$", DOCKERFILE.read_text(), re.MULTILINE)
    return builder.replace("${PIP_SOURCE}", build_args["PIP_SOURCE"])


@pytest.mark.parametrize("lock", ["app/requirements.lock", "requirements-dev.txt"])
def test_every_pin_of_a_lock_carries_the_hashes_of_its_files(lock):
    text = (REPO_ROOT / lock).read_text()
    entries = lock_entries(text)
    assert len(entries) == len(re.findall(r"^\S+==", text, re.MULTILINE)) > 10
    unhashed = sorted(name for name, entry in entries.items() if not hashes_of(entry))
    assert not unhashed, (
        f"{lock}: pins without --hash (run `make lock` / `make lock-dev`): {unhashed}"
    )


@pytest.mark.parametrize("wheelhouse", [True, False])
def test_the_image_build_installs_with_require_hashes(tmp_path, wheelhouse):
    result, _ = run(
        tmp_path,
        sample_lock(),
        djchat_wheelhouse_enabled=wheelhouse,
        djchat_pip_index_url="https://pypi.example.com/simple",
    )
    assert result.returncode == 0, result.output
    build_args = build_args_of(tmp_path / "render")
    assert build_args["PIP_SOURCE"] == ("wheelhouse" if wheelhouse else "index")
    # With the wheelhouse no index is asked: the URL is not passed (nor part of the image tag).
    assert build_args.get("PIP_INDEX_URL") == (
        None if wheelhouse else "https://pypi.example.com/simple"
    )
    every = stages(DOCKERFILE.read_text())
    assert [name for name, text in every.items() if "pip install" in text] == [
        "dependencies-index",
        "dependencies-wheelhouse",
    ]
    installs = [
        block
        for block in every[dependency_stage(build_args)].split("RUN ")
        if "pip install" in block
    ]
    assert len(installs) == 1, installs
    assert "--require-hashes --requirement /tmp/requirements.lock" in installs[0], installs[0]
    assert ("--no-index --find-links /tmp/wheels" in installs[0]) == wheelhouse, installs[0]


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """The build context holding the role's wheelhouse of the sample lock (in wheels/),
    downloaded and unpacked as a deploy does."""
    tmp = tmp_path_factory.mktemp("wheelhouse")
    result, build = run(tmp, sample_lock(), djchat_wheelhouse_enabled=True, download_wheels=True)
    assert result.returncode == 0, result.output
    return build


def test_the_wheelhouse_holds_exactly_the_locked_files(wheelhouse):
    entries = lock_entries(sample_lock())
    wheels = sorted((wheelhouse / "wheels").glob("*.whl"))
    assert [wheel.name.split("-")[0].lower() for wheel in wheels] == sorted(SAMPLE), wheelhouse
    for wheel in wheels:
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert digest in hashes_of(entries[wheel.name.split("-")[0].lower()]), wheel.name


def test_the_wheelhouse_download_refuses_pins_without_hashes(tmp_path):
    result, build = run(
        tmp_path, sample_lock(unhashed=True), djchat_wheelhouse_enabled=True, download_wheels=True
    )
    assert result.returncode != 0
    stderr = result.failed_results[0]["stderr"]
    assert "Hashes are required in --require-hashes mode" in stderr, stderr
    assert "sqlparse==" in stderr, stderr  # the first pin: pip stops there
    assert not (build / "wheels").exists()


def test_the_wheelhouse_download_refuses_a_file_whose_hash_is_not_in_the_lock(tmp_path):
    result, build = run(
        tmp_path,
        sample_lock(wrong_hash="sqlparse"),
        djchat_wheelhouse_enabled=True,
        download_wheels=True,
    )
    assert result.returncode != 0
    stderr = result.failed_results[0]["stderr"]
    assert "DO NOT MATCH THE HASHES" in stderr, stderr
    assert "sqlparse" in stderr, stderr
    assert not (build / "wheels").exists()


def test_the_offline_image_build_installs_the_locked_wheels(tmp_path, wheelhouse):
    build_args = build_args_of(wheelhouse.parent.parent.parent / "render")
    context = install_context(tmp_path, sample_lock(), wheelhouse / "wheels")
    imports = "import asgiref, sqlparse; print(sqlparse.__file__, asgiref.__version__)"
    ran = docker_build(
        context,
        build_args,
        "/opt/venv/bin/python",
        "-c",
        imports,
        target=dependency_stage(build_args),
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    version = lock_entries(sample_lock())["asgiref"].split("==")[1].split()[0]
    assert ran.stdout.split() == [
        "/opt/venv/lib/python3.11/site-packages/sqlparse/__init__.py",
        version,
    ]


def test_a_wheel_changed_after_the_download_stops_the_image_build(tmp_path, wheelhouse):
    wheels = tmp_path / "wheels"
    shutil.copytree(wheelhouse / "wheels", wheels)
    (original,) = wheels.glob("sqlparse-*.whl")
    # Still a wheel pip would install: one module changed, nothing else.
    tampered = tmp_path / original.name
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "sqlparse/__init__.py":
                data += b"\nimport os  # tampered\n"
            target.writestr(item, data)
    shutil.move(tampered, original)
    build_args = build_args_of(wheelhouse.parent.parent.parent / "render")

    built = docker_build(
        install_context(tmp_path, sample_lock(), wheels),
        build_args,
        target=dependency_stage(build_args),
    )

    assert built.returncode != 0, built.stderr[-3000:]
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in built.stderr, built.stderr[-3000:]
    assert "sqlparse" in built.stderr


def test_pins_without_hashes_stop_the_image_build(tmp_path, wheelhouse):
    build_args = build_args_of(wheelhouse.parent.parent.parent / "render")
    lock = sample_lock(unhashed=True)

    built = docker_build(
        install_context(tmp_path, lock, wheelhouse / "wheels"),
        build_args,
        target=dependency_stage(build_args),
    )

    assert built.returncode != 0, built.stderr[-3000:]
    assert "Hashes are required in --require-hashes mode" in built.stderr, built.stderr[-3000:]


DIGEST = "sha256:" + hashlib.sha256(b"an image manifest").hexdigest()
# reference -> the name it is looked up and pulled by
ACCEPTED_REFERENCES = {
    "djchat-local/python:bookworm": "djchat-local/python:bookworm",
    f"python:3.11-slim-bookworm@{DIGEST}": f"python@{DIGEST}",
    f"python@{DIGEST}": f"python@{DIGEST}",
    f"registry.example.com:5000/team/python:3.11@{DIGEST}": (
        f"registry.example.com:5000/team/python@{DIGEST}"
    ),
}
REJECTED_REFERENCES = [
    "python:3.11@sha256:abc123",  # a digest is 64 hex digits
    f"python:3.11@{DIGEST.upper()}",
    "python:3.11@md5:" + "0" * 32,
    f"python:3.11@{DIGEST}@{DIGEST}",
    "python:3.11@",
    f"Python:3.11@{DIGEST}",
]


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory) -> dict[str, tuple]:
    """One validation and render per reference, as djchat_python_image (four at a time)."""

    def one(index_and_reference):
        index, reference = index_and_reference
        tmp = tmp_path_factory.mktemp(f"reference{index}")
        result, _ = run(tmp, sample_lock(), djchat_python_image=reference)
        return reference, (result, tmp / "render")

    references = [*ACCEPTED_REFERENCES, *REJECTED_REFERENCES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, enumerate(references)))


@pytest.mark.parametrize("reference", list(ACCEPTED_REFERENCES))
def test_a_base_image_pinned_by_digest_is_built_from_and_pulled_by_its_digest(
    reference_runs, reference
):
    result, render = reference_runs[reference]
    assert result.returncode == 0, result.failure_messages or result.output
    assert build_args_of(render)["PYTHON_IMAGE"] == reference
    # Both base stages (the dependencies' and the runtime's) are built from it.
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert [image for image in froms if "PYTHON_IMAGE" in image] == ["${PYTHON_IMAGE}"] * 2
    names = json.loads((render / "base_image_names.json").read_text())
    assert names[0] == ACCEPTED_REFERENCES[reference]


@pytest.mark.parametrize("reference", REJECTED_REFERENCES)
def test_validation_refuses_a_malformed_image_reference_naming_the_variables(
    reference_runs, reference
):
    result, render = reference_runs[reference]
    assert result.returncode != 0
    assert any(
        "djchat_python_image, djchat_nginx_image, djchat_redis_image and djchat_postgres_image "
        "must be image references" in message
        for message in result.failure_messages
    ), result.failure_messages or result.output
    assert not (render / "build_args.json").exists()
